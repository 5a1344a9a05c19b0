"""Users, scoring models and routing policies through GraphQL, and an element's assignee and score."""

import math
import random
import uuid
from typing import Any

import httpx
from fastapi import FastAPI
from gql import GraphQLRequest

from app.kit import background
from tests.factories import create_element, create_field, create_type, create_user, lead_type
from tests.graphql.conftest import Run, http_client

USER_FIELDS = "id name email tier capacity timezone active load"
CREATE_USER = f"""
mutation($input: UserCreateInput!) {{
  createUser(input: $input) {{
    __typename
    ... on User {{ {USER_FIELDS} }}
    ... on Error {{ code message }}
    ... on ValidationError {{ fields {{ field message }} }}
  }}
}}
"""
MODEL_FIELDS = "id name entityType kind version status active factors features error metrics { rocAuc trainSize }"
CREATE_MODEL = f"""
mutation($input: ScoringModelCreateInput!) {{
  createScoringModel(input: $input) {{
    __typename ... on ScoringModel {{ {MODEL_FIELDS} }} ... on ValidationError {{ fields {{ field }} }}
  }}
}}
"""
SCORE = """
mutation($id: UUID!, $model: UUID) {
  scoreElement(id: $id, modelId: $model) {
    __typename
    ... on ElementScore { score modelId version explanation { feature value contribution } }
    ... on Error { code message }
  }
}
"""
FACTORS: list[dict[str, Any]] = [
    {"field": "industry", "kind": "enum", "points": {"it": 30, "bank": 20}},
    {"field": "budget", "kind": "range", "ranges": [{"min": 0, "max": 1000, "points": 5}, {"min": 1000, "points": 20}]},
    {"field": "email", "kind": "presence", "points": 10},
    {"field": "title", "kind": "contains", "text": "URGENT", "points": 15, "weight": 2, "label": "urgent title"},
]


class TestUsers:
    async def test_create_list_get_update(self, client: httpx.AsyncClient, run: Run) -> None:
        created = (await run(CREATE_USER, input={"name": "Ann", "email": "ann@example.com", "tier": "senior"}))[
            "createUser"
        ]
        assert created["__typename"] == "User", created
        assert (created["tier"], created["capacity"], created["timezone"], created["load"]) == ("senior", 20, "UTC", 0)
        await run(CREATE_USER, input={"name": "Bob", "email": "bob@example.com"})
        listed = await run("{ all: users { name tier } seniors: users(tier: senior) { name } }")
        assert listed["all"] == [{"name": "Ann", "tier": "senior"}, {"name": "Bob", "tier": "regular"}]
        assert listed["seniors"] == [{"name": "Ann"}]

        updated = await run(
            """mutation($id: UUID!) { updateUser(id: $id, input: {capacity: 3, active: false}) {
              __typename ... on User { capacity active name } } }""",
            id=created["id"],
        )
        assert updated["updateUser"] == {"__typename": "User", "capacity": 3, "active": False, "name": "Ann"}
        one = await run(f"query($id: UUID!) {{ user(id: $id) {{ {USER_FIELDS} }} }}", id=created["id"])
        assert (one["user"]["capacity"], one["user"]["active"]) == (3, False)
        assert (await client.get(f"/users/{created['id']}")).json()["capacity"] == 3

    async def test_errors_are_typed(self, app: FastAPI, client: httpx.AsyncClient, run: Run) -> None:
        await create_user(client, "Ann", email="ann@example.com")
        taken = (await run(CREATE_USER, input={"name": "Other", "email": "ANN@example.com"}))["createUser"]
        assert (taken["__typename"], taken["code"]) == ("Conflict", "conflict")
        bad = (await run(CREATE_USER, input={"name": "", "email": "nope", "timezone": "Mars/Base", "capacity": -1}))[
            "createUser"
        ]
        assert bad["__typename"] == "ValidationError"
        assert {f["field"] for f in bad["fields"]} == {"name", "email", "timezone", "capacity"}
        assert len((await run("{ users { id } }"))["users"]) == 1

    async def test_viewer_cannot_create_users(
        self, app: FastAPI, client: httpx.AsyncClient, viewer_client: httpx.AsyncClient
    ) -> None:
        key = viewer_client.headers["Authorization"].removeprefix("Bearer ")
        async with http_client(app, key) as session:
            result = await session.execute(
                GraphQLRequest(CREATE_USER, variable_values={"input": {"name": "X", "email": "x@example.com"}})
            )
        assert result["createUser"]["__typename"] == "Forbidden"


class TestAssignee:
    async def test_generic_and_typed_elements_resolve_their_user(self, client: httpx.AsyncClient, run: Run) -> None:
        await lead_type(client)
        ann = await create_user(client, "Ann", tier="senior")
        element = await create_element(client, "lead", title="Acme", assigned_to=ann["id"])
        await create_element(client, "lead", title="Nobody's")
        generic = await run(
            "query($id: UUID!) { element(id: $id) { assignedToId assignedTo { id name tier load } } }",
            id=element["id"],
        )
        assert generic["element"] == {
            "assignedToId": ann["id"],
            "assignedTo": {"id": ann["id"], "name": "Ann", "tier": "senior", "load": 1},
        }
        typed = await run('{ leads(sort: "title") { edges { node { title assignedTo { name } } } } }')
        assert [(e["node"]["title"], e["node"]["assignedTo"]) for e in typed["leads"]["edges"]] == [
            ("Acme", {"name": "Ann"}),
            ("Nobody's", None),
        ]
        # Inputs and filters take the user's id.
        created = await run(
            """mutation($user: UUID) { createLead(input: {title: "Typed", assignedTo: $user}) {
              ... on Lead { assignedTo { name } } } }""",
            user=ann["id"],
        )
        assert created["createLead"] == {"assignedTo": {"name": "Ann"}}
        mine = await run(
            'query($u: UUID) { leads(filter: {assignedTo: {eq: $u}}, sort: "title") { totalCount } }', u=ann["id"]
        )
        assert mine["leads"]["totalCount"] == 2
        stranger = await run(
            """mutation($user: UUID) { createLead(input: {title: "x", assignedTo: $user}) {
              __typename ... on ValidationError { fields { field } } } }""",
            user=str(uuid.uuid4()),
        )
        assert stranger["createLead"] == {"__typename": "ValidationError", "fields": [{"field": "assignedTo"}]}


class TestScoring:
    async def test_factor_model_activate_score_and_filter_on_score(self, client: httpx.AsyncClient, run: Run) -> None:
        await lead_type(client)
        model = (
            await run(CREATE_MODEL, input={"name": "fit", "entityType": "lead", "kind": "factors", "factors": FACTORS})
        )["createScoringModel"]
        assert (model["__typename"], model["status"], model["version"], model["active"]) == (
            "ScoringModel",
            "trained",
            1,
            False,
        )
        assert model["factors"][0] == {**FACTORS[0], "weight": 1.0, "label": None, "default": 0.0}
        hot = await create_element(
            client, "lead", title="not urgent?", values={"industry": "bank", "budget": 1500, "email": "a@b.co"}
        )
        cold = await create_element(client, "lead", title="cold", values={"industry": "it"})

        # No active model yet: scoring without a model id is refused, as data.
        refused = (await run(SCORE, id=hot["id"]))["scoreElement"]
        assert refused["__typename"] == "Conflict"
        # Hand-computed: totals range over 0..90; 20 + 20 + 10 + 30 = 80 -> 1 + round(99 * 80 / 90) = 89.
        scored = (await run(SCORE, id=hot["id"], model=model["id"]))["scoreElement"]
        assert (scored["score"], scored["modelId"], scored["version"]) == (89, model["id"], 1)
        assert [(e["feature"], e["contribution"]) for e in scored["explanation"]] == [
            ("industry", 20),
            ("budget", 20),
            ("email", 10),
            ("urgent title", 30),
        ]
        assert scored["explanation"][1]["value"] == 1500

        activated = await run(
            "mutation($id: UUID!) { activateScoringModel(id: $id) { ... on ScoringModel { active } } }",
            id=model["id"],
        )
        assert activated["activateScoringModel"] == {"active": True}
        assert (await run(SCORE, id=cold["id"]))["scoreElement"]["score"] == 1 + round(99 * 30 / 90)  # 34
        # A factors model needs no training.
        untrainable = await run(
            "mutation($id: UUID!) { trainScoringModel(id: $id) { __typename ... on Error { code } } }",
            id=model["id"],
        )
        assert untrainable["trainScoringModel"] == {"__typename": "Conflict", "code": "conflict"}

        # The score on generic and typed elements, filtered and sorted.
        generic = await run('{ elements(type: "lead", sort: "-score") { edges { node { title score } } } }')
        assert [e["node"]["score"] for e in generic["elements"]["edges"]] == [89, 34]
        typed = await run('{ leads(filter: {score: {gte: 50}}, sort: "-score") { edges { node { title score } } } }')
        assert [e["node"] for e in typed["leads"]["edges"]] == [{"title": "not urgent?", "score": 89}]
        listed = await run(
            f'query($id: UUID!) {{ scoringModels(entityType: "lead") {{ id active }} '
            f"scoringModel(id: $id) {{ {MODEL_FIELDS} }} }}",
            id=model["id"],
        )
        assert listed["scoringModels"] == [{"id": model["id"], "active": True}]
        assert listed["scoringModel"]["active"] is True

    async def test_bad_models_are_typed_errors(self, client: httpx.AsyncClient, run: Run) -> None:
        await lead_type(client)
        no_factors = await run(CREATE_MODEL, input={"name": "x", "entityType": "lead", "kind": "factors"})
        assert no_factors["createScoringModel"]["__typename"] == "ValidationError"
        bad_factor = await run(
            CREATE_MODEL,
            input={
                "name": "x",
                "entityType": "lead",
                "kind": "factors",
                "factors": [{"field": "nope", "kind": "presence", "points": 1}],
            },
        )
        assert bad_factor["createScoringModel"]["__typename"] == "ValidationError"
        assert bad_factor["createScoringModel"]["fields"] == [{"field": "factors[0].field"}]
        assert (await run("{ scoringModels { id } }"))["scoringModels"] == []

    async def test_learned_model_trains_in_the_background(self, client: httpx.AsyncClient, run: Run) -> None:
        await lead_type(client)
        rng = random.Random(3)
        items = []
        for i in range(240):
            industry = rng.choice(["it", "bank", "retail"])
            budget = rng.uniform(0, 10000)
            logit = {"it": 1.5, "bank": 0.0, "retail": -1.5}[industry] + (budget - 5000) / 2000
            stage = "SUCCESS" if rng.random() < 1 / (1 + math.exp(-logit)) else "FAIL"
            values = {"industry": industry, "budget": round(budget, 2)}
            items.append({"op": "create", "data": {"title": f"l{i}", "stage_code": stage, "values": values}})
        response = await client.post("/entity-types/lead/elements/batch", json={"items": items})
        assert response.status_code == 200, response.text
        created = (
            await run(
                CREATE_MODEL,
                input={"name": "ml", "entityType": "lead", "kind": "learned", "features": ["industry", "budget"]},
            )
        )["createScoringModel"]
        assert (created["status"], created["features"]) == ("draft", ["industry", "budget"])
        training = await run(
            "mutation($id: UUID!) { trainScoringModel(id: $id) { ... on ScoringModel { id status } } }",
            id=created["id"],
        )
        assert training["trainScoringModel"]["status"] == "training"
        await background.drain()
        trained = (await run(f"query($id: UUID!) {{ scoringModel(id: $id) {{ {MODEL_FIELDS} }} }}", id=created["id"]))[
            "scoringModel"
        ]
        assert trained["status"] == "trained", trained["error"]
        assert trained["metrics"]["rocAuc"] > 0.7
        assert trained["metrics"]["trainSize"] > 150


ROUTE = """
mutation($id: UUID!) {
  routeElement(id: $id) {
    __typename
    ... on RouteDecision {
      tier score assignedToId assignedTo { name } overCapacity script reasons
      task { title description assignee { name } }
    }
    ... on Error { code message }
  }
}
"""
POLICY_FIELDS = "id name entityType active tiers { name minScore userTier userIds priority { field value } script }"


async def _routing_setup(client: httpx.AsyncClient) -> None:
    await create_type(client, "lead")
    await create_field(client, "lead", "rating", "integer")
    await create_field(client, "lead", "priority", "enum", options=[{"value": "high"}, {"value": "low"}])
    bands = [{"min": 0, "max": 50, "points": 0}, {"min": 50, "max": 80, "points": 60}, {"min": 80, "points": 90}]
    model = await client.post(
        "/scoring/models",
        json={
            "name": "rating",
            "entity_type": "lead",
            "kind": "factors",
            "factors": [{"field": "rating", "kind": "range", "ranges": bands}],
        },
    )
    assert (await client.post(f"/scoring/models/{model.json()['id']}/activate")).status_code == 200


class TestRouting:
    async def test_policies_and_routing(self, client: httpx.AsyncClient, run: Run) -> None:
        await _routing_setup(client)
        ann = await create_user(client, "Ann", tier="senior", capacity=1)
        tiers: list[dict[str, Any]] = [
            {
                "name": "hot",
                "minScore": 80,
                "userTier": "senior",
                "priority": {"field": "priority", "value": "high"},
                "script": "Call {{ title }} now, {{ assignee }}",
            },
            {"name": "rest", "minScore": 0},
        ]
        created = (
            await run(
                f"""mutation($input: RoutingPolicyCreateInput!) {{ createRoutingPolicy(input: $input) {{
                  __typename ... on RoutingPolicy {{ {POLICY_FIELDS} }} }} }}""",
                input={"name": "default", "entityType": "lead", "tiers": tiers},
            )
        )["createRoutingPolicy"]
        assert created["__typename"] == "RoutingPolicy", created
        assert created["tiers"][0]["priority"] == {"field": "priority", "value": "high"}
        assert created["tiers"][1]["userTier"] is None

        hot = await create_element(client, "lead", title="Acme", values={"rating": 95})
        decision = (await run(ROUTE, id=hot["id"]))["routeElement"]
        assert decision["__typename"] == "RouteDecision", decision
        assert (decision["tier"], decision["score"], decision["assignedTo"]) == ("hot", 100, {"name": "Ann"})
        assert decision["assignedToId"] == ann["id"]
        assert decision["script"] == "Call Acme now, Ann"
        assert decision["task"] == {
            "title": "Follow up: Acme",
            "description": "Call Acme now, Ann",
            "assignee": {"name": "Ann"},
        }
        assert decision["overCapacity"] is False
        element = await run(
            'query($id: UUID!) { element(id: $id) { assignedTo { name load } value(code: "priority") } }',
            id=hot["id"],
        )
        assert element["element"] == {"assignedTo": {"name": "Ann", "load": 1}, "value": "high"}

        # Ann is full: the next hot lead still goes to her, flagged as over capacity.
        hotter = await create_element(client, "lead", title="Bolt", values={"rating": 99})
        assert (await run(ROUTE, id=hotter["id"]))["routeElement"]["overCapacity"] is True
        cold = await create_element(client, "lead", title="Cold", values={"rating": 10})
        cold_decision = (await run(ROUTE, id=cold["id"]))["routeElement"]
        assert (cold_decision["tier"], cold_decision["assignedTo"]) == ("rest", None)

        updated = await run(
            """mutation($id: UUID!) { updateRoutingPolicy(id: $id, input: {name: "renamed", active: false}) {
              ... on RoutingPolicy { name active } } }""",
            id=created["id"],
        )
        assert updated["updateRoutingPolicy"] == {"name": "renamed", "active": False}
        listed = await run(f'{{ routingPolicies(entityType: "lead") {{ {POLICY_FIELDS} }} }}')
        assert [p["name"] for p in listed["routingPolicies"]] == ["renamed"]
        # No active policy left: routing is refused as data.
        refused = (await run(ROUTE, id=cold["id"]))["routeElement"]
        assert refused["__typename"] in {"Conflict", "NotFound"}, refused

        deleted = await run(
            "mutation($id: UUID!) { deleteRoutingPolicy(id: $id) { __typename } }",
            id=created["id"],
        )
        assert deleted["deleteRoutingPolicy"] == {"__typename": "Deleted"}
        assert (await run("{ routingPolicies { id } }"))["routingPolicies"] == []

    async def test_bad_policies_are_typed_errors(self, client: httpx.AsyncClient, run: Run) -> None:
        await _routing_setup(client)
        bad = await run(
            """mutation { createRoutingPolicy(input: {name: "p", entityType: "lead",
              tiers: [{name: "a", minScore: 50, stageCode: "NOPE"}]}) {
              __typename ... on ValidationError { fields { field message } } } }"""
        )
        error = bad["createRoutingPolicy"]
        assert error["__typename"] == "ValidationError"
        assert error["fields"], error
        assert (await run("{ routingPolicies { id } }"))["routingPolicies"] == []
