"""Evaluate request triage on generated labelled requests with a known answer (no database needed).

    python3 -m bench.triage_eval [--count 3000] [--seed 1] [--encoders tfidf,embeddings]

Requests are written from paraphrased templates per category and intent, with synonyms, shared vocabulary across
categories ("order", "charged", "account"), typos and filler, so that single keywords are not enough; the urgency is
said in varied ways (or not at all: then it is `normal`). A seeded 80/20 split; for the category and the urgency it
prints the hold-out accuracy and macro-F1 of: the majority class, the TF-IDF fallback + softmax, the MiniLM
embeddings + softmax (when the `triage` extra is installed), and, per encoder, the precision of "the most similar
solved (training) request has the same category".
"""

import argparse
import random
import sys
import time
from collections import Counter
from typing import Any

import numpy as np

from app.triage import embeddings
from app.triage.classifier import Softmax, accuracy, macro_f1
from app.triage.model import Encoder, EncoderName
from app.triage.tfidf import unit

CATEGORIES: dict[str, list[str]] = {
    "billing": [
        "I was {charged} twice for my {plan} this month",
        "the {invoice} shows the wrong amount, can you {fix} it",
        "why did my {plan} price go up without notice",
        "{payment} failed but the money left my {bank}",
        "please send a corrected {invoice} with our VAT number",
        "my card keeps getting declined when I try to {pay} the {invoice}",
        "there is an extra fee on the {invoice} that I do not recognise",
        "I need to change the card you {charge} every month",
    ],
    "delivery": [
        "my {order} has not {arrived} yet, tracking has not moved for days",
        "the {parcel} was delivered to the wrong address",
        "courier says {delivered} but nothing is at my door",
        "the {parcel} arrived damaged, the box was crushed",
        "can I change the shipping address of my {order}",
        "when will my {order} ship, it says processing for a week",
        "part of my {order} is missing from the {parcel}",
        "the tracking number you sent does not work",
    ],
    "access": [
        "I cannot {login} to my {account}",
        "the password reset {email} never {arrived}",
        "my {account} got locked after too many attempts",
        "two factor code is not accepted when I {login}",
        "I lost my phone and cannot get the verification code to {login}",
        "it says invalid credentials although the password is right",
        "I am kicked out of my {account} every few minutes",
        "the {login} page just spins and never lets me in",
    ],
    "bug": [
        "the app {crashes} when I open the reports page",
        "export to csv gives an empty file",
        "the dashboard shows an error 500 after the last update",
        "buttons do nothing on the settings screen",
        "the search returns results from another project",
        "numbers in the chart are wrong since yesterday's release",
        "the mobile app {crashes} on startup after updating",
        "uploading an attachment fails with an unknown error",
    ],
    "refund": [
        "I want my money back for the {order}",
        "please {refund} the {plan} I cancelled last week",
        "I returned the item two weeks ago and still no {refund}",
        "how long does a {refund} take to reach my {bank}",
        "I was promised a {refund} for the broken item",
        "cancel the {order} and return the payment please",
        "the {refund} amount is less than what I paid",
        "I sent the product back, when do I get reimbursed",
    ],
    "account": [
        "how do I change the {email} address on my {account}",
        "please close my {account} and delete my data",
        "I want to add a colleague to our team {account}",
        "can I transfer the {account} to another owner",
        "how do I change the name of our company in the profile",
        "please export all my personal data",
        "I want to downgrade to a smaller {plan}",
        "how can I rename my workspace",
    ],
}

SYNONYMS: dict[str, list[str]] = {
    "charged": ["charged", "billed", "debited", "invoiced"],
    "charge": ["charge", "bill", "debit"],
    "plan": ["subscription", "plan", "membership", "license"],
    "invoice": ["invoice", "bill", "receipt", "statement"],
    "fix": ["fix", "correct", "sort out", "look into"],
    "payment": ["payment", "transaction", "the charge"],
    "bank": ["bank account", "card", "account", "credit card"],
    "pay": ["pay", "settle", "clear"],
    "order": ["order", "purchase", "package", "shipment"],
    "arrived": ["arrived", "come", "shown up", "reached me"],
    "parcel": ["parcel", "package", "box", "delivery"],
    "delivered": ["delivered", "dropped off", "handed over"],
    "login": ["log in", "sign in", "login", "get in"],
    "account": ["account", "profile", "workspace", "user"],
    "email": ["email", "e-mail", "mail", "message"],
    "crashes": ["crashes", "freezes", "closes itself", "hangs"],
    "refund": ["refund", "reimbursement", "money back", "repayment"],
}

URGENCY: dict[str, list[str]] = {
    "critical": [
        "our whole team is blocked",
        "production is down for all our customers",
        "we are losing sales every minute",
        "this is an emergency",
        "nobody in the company can work",
        "all of our stores are affected right now",
    ],
    "high": [
        "please help today",
        "I need this solved by tomorrow",
        "this is quite urgent for me",
        "I have a deadline this afternoon",
        "please answer as soon as possible",
        "it is the third time I write about this",
    ],
    "normal": ["", "", "thanks", "thank you", "regards", "kind regards"],
    "low": [
        "no rush",
        "whenever you have time",
        "just a question for later",
        "not urgent at all",
        "when you get a chance",
        "low priority, just curious",
    ],
}
URGENCY_WEIGHTS = {"critical": 0.12, "high": 0.23, "normal": 0.4, "low": 0.25}
OPENERS = ["hi", "hello", "hey team", "good morning", "dear support", "", "", ""]
FILLER = ["", "", "I tried again this morning", "my name is on the account", "I use the web version", "see below"]
ENDINGS = ["", "", "thanks in advance", "best", "cheers", "please advise"]


def _typo(text: str, rng: random.Random, rate: float) -> str:
    words = text.split(" ")
    for i, word in enumerate(words):
        if len(word) > 3 and rng.random() < rate:
            j = rng.randrange(len(word) - 1)
            kind = rng.random()
            if kind < 0.4:  # swap two letters
                word = word[:j] + word[j + 1] + word[j] + word[j + 2 :]
            elif kind < 0.7:  # drop one
                word = word[:j] + word[j + 1 :]
            else:  # double one
                word = word[:j] + word[j] + word[j:]
            words[i] = word
    return " ".join(words)


def _fill(template: str, rng: random.Random) -> str:
    out = template
    for key, options in SYNONYMS.items():
        while "{" + key + "}" in out:
            out = out.replace("{" + key + "}", rng.choice(options), 1)
    return out


HELD = 2  # the last templates of each category and the last urgency phrases of each level: unseen paraphrases


def _pick(options: list[str], rng: random.Random, unseen: bool | None) -> str:
    if unseen is None:
        return rng.choice(options)
    return rng.choice(options[-HELD:] if unseen else options[:-HELD])


def generate(count: int, seed: int = 1, *, typo_rate: float = 0.06, unseen: bool | None = None) -> list[dict[str, str]]:
    """`count` requests, each {"text", "category", "urgency"}; the same seed gives the same requests. `unseen`:
    only the held-back templates and urgency phrases (True), only the others (False), or any (None)."""
    rng = random.Random(seed)
    names = list(CATEGORIES)
    urgencies = list(URGENCY_WEIGHTS)
    weights = list(URGENCY_WEIGHTS.values())
    out = []
    for _ in range(count):
        category = rng.choice(names)
        urgency = rng.choices(urgencies, weights)[0]
        body = _fill(_pick(CATEGORIES[category], rng, unseen), rng)
        cue = _pick(URGENCY[urgency], rng, unseen)
        parts = [rng.choice(OPENERS), body, rng.choice(FILLER)]
        parts.insert(rng.choice([1, 3]) if cue else 1, cue)
        parts.append(rng.choice(ENDINGS))
        text = ", ".join(p for p in parts if p)
        text = _typo(text, rng, typo_rate)
        if rng.random() < 0.3:
            text = text.capitalize()
        out.append({"text": text, "category": category, "urgency": urgency})
    return out


def _scores(truth: list[str], predicted: list[str]) -> str:
    return f"accuracy {accuracy(truth, predicted):.3f}  macro-F1 {macro_f1(truth, predicted):.3f}"


def _split_report(
    name: str, label: str, model: Softmax, x: np.ndarray, truth: list[str], results: dict[str, Any], part: str
) -> None:
    predicted = model.predict(x)
    results[f"{part}/{name}/{label}"] = (accuracy(truth, predicted), macro_f1(truth, predicted))
    print(f"  {label:9s} {name + ' + softmax':28s} {_scores(truth, predicted)}")


def _memoised_embeddings() -> None:
    """Both embedding variants read the same embeddings: encode each list of texts once."""
    encode = embeddings.encode
    memo: dict[tuple[str, ...], np.ndarray] = {}

    def cached(texts: Any) -> np.ndarray:
        key = tuple(texts)
        if key not in memo:
            memo[key] = encode(texts)
        return memo[key]

    embeddings.encode = cached  # type: ignore[assignment]


def evaluate(count: int, seed: int, encoders: list[EncoderName]) -> dict[str, Any]:
    """Train on 80 % of `count` requests from the seen templates; test on the other 20 % (same templates, other
    requests) and on as many requests written only from the held-back templates and urgency phrases."""
    _memoised_embeddings()
    held = count // 5
    train = generate(count - held, seed, unseen=False)
    parts = {"seen": generate(held, seed + 1, unseen=False), "unseen": generate(held, seed + 2, unseen=True)}
    print(
        f"{len(train)} generated requests to train; held out: {held} from the same templates (seen), "
        f"{held} from held-back templates and urgency phrases (unseen paraphrases); seed {seed}"
    )
    print("categories:", dict(sorted(Counter(d["category"] for d in train).items())))
    print("urgencies: ", dict(sorted(Counter(d["urgency"] for d in train).items())))
    results: dict[str, Any] = {}
    fitted: dict[str, tuple[Encoder, dict[str, Softmax], np.ndarray]] = {}
    variants: list[tuple[str, EncoderName, bool]] = [("tfidf", "tfidf", False)] if "tfidf" in encoders else []
    if "embeddings" in encoders:
        variants += [("embeddings", "embeddings", False), ("embeddings+tfidf", "embeddings", True)]
    for name, kind, hybrid in variants:
        started = time.perf_counter()
        encoder = Encoder.fit(kind, [d["text"] for d in train], hybrid=hybrid)
        x = encoder.features([d["text"] for d in train])
        models = {label: Softmax.fit(x, [d[label] for d in train]) for label in ("category", "urgency")}
        fitted[name] = (encoder, models, encoder.similarity_vectors(x))
        print(f"fitted {name} + softmax in {time.perf_counter() - started:.1f} s")
    for part, data in parts.items():
        print(f"held-out {part}:")
        features = {name: encoder.features([d["text"] for d in data]) for name, (encoder, _, _) in fitted.items()}
        for label in ("category", "urgency"):
            truth = [d[label] for d in data]
            majority = Counter(d[label] for d in train).most_common(1)[0][0]
            results[f"{part}/majority/{label}"] = (accuracy(truth, [majority] * len(truth)), 0.0)
            print(f"  {label:9s} {'majority (' + majority + ')':28s} {_scores(truth, [majority] * len(truth))}")
            for name, (_, models, _) in fitted.items():
                _split_report(name, label, models[label], features[name], truth, results, part)
            for name, (_, _, solved) in fitted.items():
                if name == "embeddings":  # the other simple classifier measured: nearest centroid
                    labels = np.array([d[label] for d in train])
                    classes = sorted(set(labels))
                    centroids = unit(np.stack([solved[labels == c].mean(axis=0) for c in classes]))
                    vectors = unit(features[name])
                    predicted = [classes[i] for i in (vectors @ centroids.T).argmax(axis=1)]
                    print(f"  {label:9s} {'embeddings + centroid':28s} {_scores(truth, predicted)}")
        for name, (encoder, _, solved) in fitted.items():
            vectors = encoder.similarity_vectors(features[name])
            nearest = (vectors @ solved.T).argmax(axis=1)
            same = float(np.mean([train[n]["category"] == d["category"] for d, n in zip(data, nearest, strict=True)]))
            results[f"{part}/{name}/similar"] = same
            print(f"  similar   {name:28s} most similar solved request has the same category: {same:.3f}")
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=3000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--encoders", default="tfidf,embeddings")
    args = parser.parse_args()
    encoders: list[EncoderName] = []
    for name in args.encoders.split(","):
        if name == "embeddings" and not embeddings.available():
            print("embeddings: skipped, the `triage` extra is not installed (pip install '.[triage]')")
            continue
        encoders.append("embeddings" if name == "embeddings" else "tfidf")
    started = time.perf_counter()
    evaluate(args.count, args.seed, encoders)
    print(f"total {time.perf_counter() - started:.1f} s")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
