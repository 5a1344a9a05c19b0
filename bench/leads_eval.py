"""Evaluate learned lead scoring on the real X Education data set, end to end through the REST API.

    DATABASE_URL=postgresql://… python3 -m bench.leads_eval [--datasets DIR] [--mode split|full]

`split` (default): import the stored training part (`leads_train.csv`, 80%) with converted leads in the SUCCESS
stage and the others in FAIL, train two learned models through the API — one logistic only, one `auto` (logistic and
boosted trees fitted on the same split, the trees kept only if they win on the model's hold-out) — activate the
`auto` one, import the held-out 20% (the rows of the full file that are not in the training part) as new leads,
which the active model scores as they arrive, and print ROC AUC on them and the conversion rate per routing tier
(80+, 50-79, <50) beside the logistic model's (its stored params scoring the same leads), and the time to score
one element with each.
`full`: import the whole file with outcomes and print the model's own hold-out metrics.

Columns left out because they leak the outcome (the sales team fills them in during or after contact):
Tags (the rep's notes on the conversation, e.g. "Will revert after reading the email", "Closed by Horizzon"),
Lead Quality (the rep's judgement), Lead Profile, the four Asymmetrique indexes and scores (assigned from the
profile after contact), Last Activity and Last Notable Activity (include sales-side steps such as "Had a Phone
Conversation" and "SMS Sent"). Also left out: the identifiers (Prospect ID becomes the title) and the target.
"""

import argparse
import asyncio
import csv
import io
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np

LEAKY = (
    "Tags",
    "Lead Quality",
    "Lead Profile",
    "Asymmetrique Activity Index",
    "Asymmetrique Profile Index",
    "Asymmetrique Activity Score",
    "Asymmetrique Profile Score",
    "Last Activity",
    "Last Notable Activity",
)
DROPPED = ("Lead Number", "Converted", *LEAKY)
TARGET = "Converted"
ID = "Prospect ID"
MISSING = ("", "Select")  # "Select" is the web form's unfilled default


def find_datasets(start: Path | None = None) -> Path | None:
    """`shared/datasets` beside the repository (or beside its parent, for worktrees)."""
    here = (start or Path(__file__)).resolve()
    for parent in here.parents:
        candidate = parent / "shared" / "datasets"
        if (candidate / "leads_x_education.csv").exists():
            return candidate
    return None


def read_rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def to_csv(rows: list[dict[str, str]], *, with_outcome: bool) -> str:
    """The rows as an import file: leaky columns out, `Select` blanked, the outcome as the stage."""
    columns = [c for c in rows[0] if c not in DROPPED]
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow([*columns, "Stage"] if with_outcome else columns)
    for row in rows:
        cells = ["" if row[c] in MISSING else row[c] for c in columns]
        if with_outcome:
            cells.append("SUCCESS" if row[TARGET] == "1" else "FAIL")
        writer.writerow(cells)
    return out.getvalue()


async def import_csv(client: httpx.AsyncClient, text: str, *, name: str, stage: bool = True) -> dict[str, Any]:
    from app.kit import background

    mapping = {"Prospect ID": "title", **({"Stage": "stage_code"} if stage else {})}
    response = await client.post(
        "/entity-types/lead/import",
        files={"file": (name, text.encode(), "text/csv")},
        data={"mapping": json.dumps(mapping), "create_fields": "true"},
    )
    response.raise_for_status()
    await background.drain()
    job: dict[str, Any] = (await client.get(f"/entity-types/lead/imports/{response.json()['id']}")).json()
    if job["status"] != "done":
        raise RuntimeError(f"import failed: {job['error']}")
    return job


async def train(
    client: httpx.AsyncClient, features: list[str], *, name: str = "learned", algorithm: str = "auto"
) -> dict[str, Any]:
    from app.kit import background

    body = {"name": name, "entity_type": "lead", "kind": "learned", "features": features}
    created = await client.post("/scoring/models", json=body | {"training": {"algorithm": algorithm}})
    created.raise_for_status()
    started = await client.post(f"/scoring/models/{created.json()['id']}/train")
    started.raise_for_status()
    await background.drain()
    model: dict[str, Any] = (await client.get(f"/scoring/models/{started.json()['id']}")).json()
    if model["status"] != "trained":
        raise RuntimeError(f"training failed: {model['error']}")
    return model


async def features_of(client: httpx.AsyncClient) -> list[str]:
    fields = (await client.get("/entity-types/lead/fields")).json()["items"]
    usable = {"enum", "string", "integer", "decimal", "boolean"}
    return [f["code"] for f in fields if f["type"] in usable]


async def held_out_leads(client: httpx.AsyncClient) -> dict[str, dict[str, Any]]:
    """Title -> element of the leads still in a process stage (the held-out ones)."""
    out: dict[str, dict[str, Any]] = {}
    cursor = None
    while True:
        body: dict[str, Any] = {"filter": {"field": "stage_code", "op": "eq", "value": "NEW"}, "limit": 500}
        if cursor:
            body["cursor"] = cursor
        page = (await client.post("/entity-types/lead/elements/search", json=body)).json()
        out.update({e["title"]: e for e in page["items"]})
        cursor = page["next_cursor"]
        if not cursor:
            return out


def print_metrics(title: str, metrics: dict[str, Any]) -> None:
    print(f"\n{title}")
    print(
        f"  {metrics.get('algorithm')}: ROC AUC {metrics['roc_auc']}, log loss {metrics['log_loss']}, "
        f"Brier {metrics.get('brier')}, train_size {metrics['train_size']}, holdout_size {metrics['holdout_size']}, "
        f"base rate {metrics['base_rate']}"
    )
    for candidate in metrics.get("candidates") or []:
        kept = "kept" if candidate["chosen"] else "not kept"
        print(
            f"    candidate {candidate['algorithm']:<24} ROC AUC {candidate['roc_auc']}, log loss "
            f"{candidate['log_loss']}, Brier {candidate['brier']} ({kept})"
        )
    print("  calibration (decile: mean predicted -> observed):")
    for b in metrics["calibration"]:
        print(f"    {b['decile']:>2}: {b['mean_predicted']:.3f} -> {b['observed_rate']:.3f}  (n={b['count']})")


async def evaluate(datasets: Path, mode: str) -> None:
    from app.db import unit_of_work
    from app.main import create_app
    from app.scoring.learned import compile_params, probability_to_score, roc_auc
    from app.settings import get_settings
    from app.workspaces import service as workspace_service

    settings = get_settings()
    app = create_app(settings)
    full = read_rows(datasets / "leads_x_education.csv")
    started = time.monotonic()
    async with app.router.lifespan_context(app):
        async with unit_of_work(app.state.sessionmaker) as session:
            workspace, key = await workspace_service.create_workspace(session, name=f"leads-eval-{mode}")
        print(f"workspace {workspace.id}")
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app),
            base_url="http://eval/api/v1",
            headers={"Authorization": f"Bearer {key}"},
            timeout=600,
        ) as client:
            if mode == "full":
                job = await import_csv(client, to_csv(full, with_outcome=True), name="leads_x_education.csv")
                print(f"imported {job['imported']} leads ({job['rejected']} rejected)")
                model = await train(client, await features_of(client))
                print_metrics(
                    f"learned model on the full file (its own stratified hold-out), v{model['version']}:",
                    model["metrics"],
                )
                print(f"\n(done in {time.monotonic() - started:.0f} s)")
                return
            train_rows = read_rows(datasets / "leads_train.csv")
            train_ids = {r[ID] for r in train_rows}
            held_out = [r for r in full if r[ID] not in train_ids]
            job = await import_csv(client, to_csv(train_rows, with_outcome=True), name="leads_train.csv")
            print(f"imported {job['imported']} training leads ({job['rejected']} rejected)")
            features = await features_of(client)
            clock = time.monotonic()
            logistic = await train(client, features, name="logistic", algorithm="logistic")
            logistic_seconds = time.monotonic() - clock
            clock = time.monotonic()
            model = await train(client, features)
            auto_seconds = time.monotonic() - clock
            print_metrics(
                f"logistic only (trained in {logistic_seconds:.1f} s), on its own hold-out:", logistic["metrics"]
            )
            print_metrics(f"auto (trained in {auto_seconds:.1f} s), on the same hold-out:", model["metrics"])
            (await client.post(f"/scoring/models/{model['id']}/activate")).raise_for_status()
            job = await import_csv(client, to_csv(held_out, with_outcome=False), name="held_out.csv", stage=False)
            print(f"imported {job['imported']} held-out leads, scored on arrival by the active model")
            leads = await held_out_leads(client)
    y = np.array([1.0 if r[TARGET] == "1" else 0.0 for r in held_out])
    rows = [leads[r[ID]]["values"] for r in held_out]
    active = np.array([float(leads[r[ID]]["score"]) for r in held_out])
    baseline = np.array([probability_to_score(float(p)) for p in compile_params(logistic["params"]).proba(rows)])
    print(f"\nclosing note: held-out leads (the 20% not in leads_train.csv): {len(held_out)}, converted {int(y.sum())}")
    print(f"  {'':<34}{'logistic':>12}{model['metrics']['algorithm'] + ' (active)':>34}")
    print(f"  {'ROC AUC of the score':<34}{roc_auc(y, baseline):>12.4f}{roc_auc(y, active):>34.4f}")
    for name, low, high in (("80+ (senior)", 80, 100), ("50-79 (regular)", 50, 79), ("<50 (automatic)", 1, 49)):
        cells = []
        for scores in (baseline, active):
            mask = (scores >= low) & (scores <= high)
            rate = float(y[mask].mean()) if mask.any() else float("nan")
            cells.append(f"{rate:6.1%} of {int(mask.sum()):>4}")
        print(f"  {'converted, tier ' + name:<34}{cells[0]:>12}{cells[1]:>34}")
    print("  time per element (numpy, compiled model cached as in the engine):")
    for title, params in (("logistic", logistic["params"]), (model["metrics"]["algorithm"], model["params"])):
        one, batch, explain = scoring_times(params, rows)
        print(
            f"    {title:<24} one element {one:5.0f} µs, in a batch of 1000 {batch:4.0f} µs, "
            f"explained {explain:5.0f} µs"
        )
    print(f"  (done in {time.monotonic() - started:.0f} s)")


def scoring_times(params: dict[str, Any], rows: list[dict[str, Any]]) -> tuple[float, float, float]:
    """Microseconds per element: scored alone (as a create is), in a batch of 1000 (an import), and explained; the
    best of five rounds each (the machine is shared)."""
    from app.scoring.learned import compile_params

    model = compile_params(params)
    sample = rows[:100]
    batch_rows = (rows * (1000 // len(rows) + 1))[:1000]

    def best(run: Any, count: int) -> float:
        rounds = []
        for _ in range(5):
            clock = time.perf_counter()
            run()
            rounds.append((time.perf_counter() - clock) / count)
        return min(rounds) * 1e6

    one = best(lambda: [model.proba([row]) for row in sample], len(sample))
    batch = best(lambda: model.proba(batch_rows), len(batch_rows))
    explain = best(lambda: [model.explain(row) for row in sample], len(sample))
    return one, batch, explain


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", type=Path, default=None, help="Folder with leads_x_education.csv")
    parser.add_argument("--mode", choices=("split", "full"), default="split")
    args = parser.parse_args()
    datasets = args.datasets or find_datasets()
    if datasets is None:
        sys.exit("leads_x_education.csv not found: pass --datasets DIR")
    if not os.environ.get("DATABASE_URL"):
        sys.exit("set DATABASE_URL to a PostgreSQL database (it is migrated, and a new workspace is used)")
    from app.cli import run_migrations
    from app.settings import get_settings

    run_migrations(get_settings().database_url)  # Alembic runs its own event loop: before ours
    asyncio.run(evaluate(datasets, args.mode))


if __name__ == "__main__":
    main()
