import httpx

from app.kit import background
from tests.factories import create_element, create_field, lead_type

FACTORS = [
    {"field": "industry", "kind": "enum", "points": {"it": 30, "bank": 20}},
    {"field": "budget", "kind": "range", "ranges": [{"min": 0, "max": 1000, "points": 5}, {"min": 1000, "points": 20}]},
    {"field": "email", "kind": "presence", "points": 10},
    {"field": "title", "kind": "contains", "text": "URGENT", "points": 15, "weight": 2, "label": "urgent title"},
]


async def _model(client: httpx.AsyncClient) -> dict[str, object]:
    response = await client.post(
        "/scoring/models", json={"name": "fit", "entity_type": "lead", "kind": "factors", "factors": FACTORS}
    )
    assert response.status_code == 201, response.text
    return dict(response.json())


class TestFactorScoring:
    async def test_hand_computed_scores_and_explanation(self, client: httpx.AsyncClient) -> None:
        await lead_type(client)
        model = await _model(client)
        assert (model["version"], model["status"], model["active"]) == (1, "trained", False)
        hot = await create_element(
            client, "lead", title="not urgent?", values={"industry": "bank", "budget": 1500, "email": "a@b.co"}
        )
        # Totals range over 0..90 (30 + 20 + 10 + 2*15); 20 + 20 + 10 + 30 = 80 -> 1 + round(99 * 80 / 90) = 89.
        response = await client.post(f"/elements/{hot['id']}/score", json={"model_id": model["id"]})
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["score"] == 89
        assert (body["model_id"], body["version"]) == (model["id"], 1)
        assert [(e["feature"], e["contribution"]) for e in body["explanation"]] == [
            ("industry", 20),
            ("budget", 20),
            ("email", 10),
            ("urgent title", 30),
        ]
        assert body["explanation"][1]["value"] == 1500
        # Stored on the element as the system field `score`.
        assert (await client.get(f"/elements/{hot['id']}")).json()["score"] == 89

        cold = await create_element(client, "lead", title="x", values={"industry": "it"})
        cold_score = (await client.post(f"/elements/{cold['id']}/score", json={"model_id": model["id"]})).json()
        assert cold_score["score"] == 1 + round(99 * 30 / 90)  # 34
        nothing = await create_element(client, "lead", title="x")
        none_score = (await client.post(f"/elements/{nothing['id']}/score", json={"model_id": model["id"]})).json()
        assert none_score["score"] == 1

    async def test_active_model_scores_new_and_changed_elements(self, client: httpx.AsyncClient) -> None:
        await lead_type(client)
        model = await _model(client)
        before = await create_element(client, "lead", values={"industry": "it"})
        assert before["score"] is None
        activated = await client.post(f"/scoring/models/{model['id']}/activate")
        assert activated.status_code == 200
        assert activated.json()["active"] is True
        # Activation scores the elements that were there before it, in the background.
        await background.drain()
        assert (await client.get(f"/elements/{before['id']}")).json()["score"] == 34
        created = await create_element(client, "lead", values={"industry": "it"})
        assert created["score"] == 34
        changed = await client.patch(f"/elements/{created['id']}", json={"values": {"email": "x@y.org"}})
        assert changed.json()["score"] == 1 + round(99 * 40 / 90)
        batch = await client.post(
            "/entity-types/lead/elements/batch",
            json={"items": [{"op": "create", "data": {"values": {"industry": "bank"}}}]},
        )
        assert batch.json()["items"][0]["score"] == 1 + round(99 * 20 / 90)
        # The score filters and sorts like any system field.
        listed = await client.post(
            "/entity-types/lead/elements/search",
            json={"filter": {"field": "score", "op": "gte", "value": 20}, "sort": "-score"},
        )
        assert [e["score"] for e in listed.json()["items"]] == [45, 34, 23]
        # Scoring with the active model needs no model id.
        scored = await client.post(f"/elements/{before['id']}/score")
        assert scored.json()["score"] == 34
        timeline = (await client.get(f"/elements/{before['id']}/history")).json()["items"]
        assert timeline[-1]["kind"] == "scored"

    async def test_one_active_model_per_type(self, client: httpx.AsyncClient) -> None:
        await lead_type(client)
        first = await _model(client)
        second = await _model(client)
        assert second["version"] == 2
        await client.post(f"/scoring/models/{first['id']}/activate")
        await client.post(f"/scoring/models/{second['id']}/activate")
        models = (await client.get("/scoring/models", params={"entity_type": "lead"})).json()["items"]
        assert [(m["version"], m["active"]) for m in models] == [(1, False), (2, True)]

    async def test_invalid_models_are_refused(self, client: httpx.AsyncClient) -> None:
        await lead_type(client)
        await create_field(client, "lead", "notes", "text")
        response = await client.post(
            "/scoring/models",
            json={
                "name": "bad",
                "entity_type": "lead",
                "kind": "factors",
                "factors": [
                    {"field": "nope", "kind": "presence", "points": 1},
                    {"field": "email", "kind": "range", "ranges": [{"min": 1, "points": 1}]},
                    {"field": "industry", "kind": "enum", "points": {"farm": 3}},
                ],
            },
        )
        assert response.status_code == 422
        assert [e["field"] for e in response.json()["errors"]] == [
            "factors[0].field",
            "factors[1].field",
            "factors[2].points",
        ]
        learned = await client.post(
            "/scoring/models", json={"name": "l", "entity_type": "lead", "kind": "learned", "features": ["notes"]}
        )
        assert learned.status_code == 422
        assert learned.json()["errors"][0]["field"] == "features[0]"
        shape = await client.post("/scoring/models", json={"name": "l", "entity_type": "lead", "kind": "learned"})
        assert shape.status_code == 422
        no_model = await create_element(client, "lead")
        assert (await client.post(f"/elements/{no_model['id']}/score")).status_code == 409

    async def test_models_are_per_workspace(self, client: httpx.AsyncClient, other_client: httpx.AsyncClient) -> None:
        await lead_type(client)
        model = await _model(client)
        assert (await other_client.get(f"/scoring/models/{model['id']}")).status_code == 404
        assert (await other_client.post(f"/scoring/models/{model['id']}/activate")).status_code == 404
