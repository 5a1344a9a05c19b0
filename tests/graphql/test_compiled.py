"""Typed list queries answered by the compiled path (app/api/graphql/compiled.py): each answer is compared with the
normal execution's (GRAPHQL_COMPILED_LISTS off), key for key and in order, for the admin, a viewer, an own-scoped
role with a hidden field and another workspace."""

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from app.api.graphql import router
from app.settings import Settings
from tests.access.test_element_scopes import key_with_role, make_role
from tests.conftest import Tenant, make_client, make_tenant
from tests.factories import create_element, create_field, create_type

Ask = Callable[..., Awaitable[dict[str, Any]]]
GRADES = [{"value": "A"}, {"value": "B"}, {"value": "C"}]

PAGE = """
query Page($filter: GadgetFilter, $first: Int!, $after: String) {
  list: gadgets(filter: $filter, sort: "-price", first: $first, after: $after) {
    total: totalCount
    pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
    edges {
      cursor
      node { id name: title grade price weight count serial launchedOn seenAt tags flags isOk secret stageCode }
    }
  }
}
"""
EVERYTHING = """
{
  gadgets(first: 4, sort: "title") {
    __typename
    totalCount
    pageInfo { __typename hasNextPage endCursor }
    edges {
      __typename
      cursor
      node {
        __typename id entityType pipelineId stageId stageCode title assignedToId amount currency source beginDate
        closeDate score values version createdAt updatedAt movedAt deletedAt
        stage { __typename id pipelineId code title semantic color sort timeLimitMinutes }
      }
    }
  }
}
"""


@pytest.fixture
async def gadgets(client: httpx.AsyncClient) -> None:
    """A type with a field of every kind the compiled path writes, a hidden one (`secret`), and 9 elements."""
    await create_gadget_type(client)
    for i in range(9):
        await create_element(client, "gadget", **gadget(i))


async def create_gadget_type(client: httpx.AsyncClient) -> None:
    await create_type(client, "gadget", settings={"pipelines_enabled": True})
    await create_field(client, "gadget", "grade", "enum", options=GRADES)
    await create_field(client, "gadget", "price", "money")
    await create_field(client, "gadget", "weight", "decimal")
    await create_field(client, "gadget", "count", "integer", min=0, max=1000)
    await create_field(client, "gadget", "serial", "integer")
    await create_field(client, "gadget", "launched_on", "date")
    await create_field(client, "gadget", "seen_at", "datetime")
    await create_field(client, "gadget", "tags", "string", multiple=True)
    await create_field(client, "gadget", "flags", "enum", options=GRADES, multiple=True)
    await create_field(client, "gadget", "is_ok", "boolean")
    await create_field(client, "gadget", "secret", "decimal")


def gadget(i: int, prefix: str = "gadget") -> dict[str, Any]:
    """Every third value left empty; prices tie in pairs (the id breaks the tie on the cursor)."""
    values: dict[str, Any] = {
        "grade": "ABC"[i % 3],
        "price": 100 + (i // 2) * 0.5,
        "weight": 1.25 * i,
        "count": i * 7,
        "serial": 900_000_000_000 + i,
        "launched_on": f"2026-0{1 + i % 9}-1{i % 10}",
        "seen_at": f"2026-03-0{1 + i % 9}T10:1{i}:00.12{i}Z",
        "tags": [f"t{i}", "all"],
        "flags": ["A", "C"][: 1 + i % 2],
        "is_ok": i % 2 == 0,
        "secret": 40 + i,
    }
    if i % 3 == 2:
        values = {k: v for k, v in values.items() if k in ("grade", "price")}
    body: dict[str, Any] = {"title": f"{prefix} {i}", "values": values}
    if i % 4 == 0:
        body.update(amount=1000 + i, currency="EUR", begin_date="2026-02-01", source="web")
    return body


@pytest.fixture
def compiled_answers(monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    """Whether each request since was answered by the compiled path."""
    answered: list[bool] = []
    answer = router.compiled.answer

    async def spy(*args: Any, **kwargs: Any) -> bytes | None:
        body = await answer(*args, **kwargs)
        answered.append(body is not None)
        return body

    monkeypatch.setattr(router.compiled, "answer", spy)
    return answered


async def graphql(http: httpx.AsyncClient, query: str, variables: dict[str, Any]) -> dict[str, Any]:
    response = await http.post("http://testserver/graphql", json={"query": query, "variables": variables})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = json.loads(response.content)
    return body


@pytest.fixture
def ask(settings: Settings, compiled_answers: list[bool], monkeypatch: pytest.MonkeyPatch) -> Ask:
    """`await ask(http, query, compiled=True, **variables)`: the compiled answer, after checking it is the normal
    execution's (same keys in the same order, same values) and that the compiled path gave it (or not)."""

    async def run(http: httpx.AsyncClient, query: str, *, compiled: bool = True, **variables: Any) -> dict[str, Any]:
        compiled_answers.clear()
        fast = await graphql(http, query, variables)
        assert compiled_answers == [compiled]
        monkeypatch.setattr(settings, "GRAPHQL_COMPILED_LISTS", False)
        try:
            normal = await graphql(http, query, variables)
        finally:
            monkeypatch.setattr(settings, "GRAPHQL_COMPILED_LISTS", True)
        assert json.dumps(fast) == json.dumps(normal)
        return fast

    return run


@pytest.fixture
async def own_client(app: FastAPI, tenant: Tenant, client: httpx.AsyncClient) -> AsyncIterator[httpx.AsyncClient]:
    """A key whose role reads only its own gadgets and not their `secret`."""
    await make_role(
        app,
        tenant,
        name="own gadgets",
        grants=[{"entity_type": "gadget", "read": "own", "add": "all", "update": "own"}],
        field_rules=[{"entity_type": "gadget", "field": "secret", "access": "hidden"}],
    )
    async with make_client(app, await key_with_role(client, "own gadgets")) as http:
        yield http


async def pages(ask: Ask, http: httpx.AsyncClient, first: int, **variables: Any) -> list[dict[str, Any]]:
    """Every page of PAGE, each checked against normal execution."""
    found: list[dict[str, Any]] = []
    after = None
    while True:
        page = (await ask(http, PAGE, first=first, after=after, **variables))["data"]["list"]
        found.append(page)
        if not page["pageInfo"]["hasNextPage"]:
            return found
        after = page["pageInfo"]["endCursor"]


@pytest.mark.usefixtures("gadgets")
class TestSameAnswers:
    async def test_pages_with_aliases_variables_and_every_kind_of_value(self, ask: Ask, client: httpx.AsyncClient):
        found = await pages(ask, client, 4)
        assert [len(p["edges"]) for p in found] == [4, 4, 1]
        assert found[0]["total"] == 9
        assert found[1]["pageInfo"]["hasPreviousPage"] is True
        assert found[0]["edges"][0]["node"]["name"] == "gadget 8"
        nodes = {e["node"]["name"]: e["node"] for page in found for e in page["edges"]}
        seventh = nodes["gadget 7"]
        assert (seventh["grade"], seventh["price"], seventh["serial"]) == ("B", 101.5, 900_000_000_007)
        assert (seventh["tags"], seventh["flags"], seventh["launchedOn"]) == (["t7", "all"], ["A", "C"], "2026-08-17")
        assert seventh["seenAt"] == "2026-03-08T10:17:00.127000+00:00"
        assert nodes["gadget 8"]["serial"] is None

    async def test_filters(self, ask: Ask, client: httpx.AsyncClient):
        filters: list[dict[str, Any]] = [
            {"grade": {"in": ["A", "B"]}},
            {"launchedOn": {"gte": "2026-03-01"}, "isOk": {"eq": True}},
            {"or": [{"count": {"gt": 30}}, {"tags": {"eq": "t1"}}]},
            {"seenAt": {"isNull": True}},
        ]
        for typed_filter in filters:
            assert (await ask(client, PAGE, first=50, filter=typed_filter))["data"]["list"]["edges"]

    async def test_system_fields_stage_and_typenames(self, ask: Ask, client: httpx.AsyncClient):
        data = (await ask(client, EVERYTHING))["data"]["gadgets"]
        node = data["edges"][0]["node"]
        assert node["__typename"] == "Gadget"
        assert node["stage"]["code"] == node["stageCode"]
        assert node["amount"] == 1000.0
        assert node["createdAt"].endswith("+00:00")

    async def test_a_viewer(self, ask: Ask, app: FastAPI, client: httpx.AsyncClient):
        async with make_client(app, await key_with_role(client, "viewer")) as viewer:
            assert len((await ask(viewer, PAGE, first=50))["data"]["list"]["edges"]) == 9

    async def test_own_scope_and_hidden_field(self, ask: Ask, client: httpx.AsyncClient, own_client: httpx.AsyncClient):
        for i in range(3):
            body = gadget(i, prefix="mine")
            secret = body["values"].pop("secret", None)
            mine = await create_element(own_client, "gadget", **body)
            if secret is not None:  # the role may not write it either: the admin does
                response = await client.patch(f"/elements/{mine['id']}", json={"values": {"secret": secret}})
                assert response.status_code == 200, response.text
        found = await pages(ask, own_client, 2)
        nodes = [e["node"] for p in found for e in p["edges"]]
        assert sorted(n["name"] for n in nodes) == ["mine 0", "mine 1", "mine 2"]
        assert found[0]["total"] == 3
        assert all(n["secret"] is None for n in nodes)
        admin = [e["node"] for e in (await ask(client, PAGE, first=50))["data"]["list"]["edges"]]
        assert len(admin) == 12
        assert {n["secret"] for n in admin if n["name"].startswith("mine ")} == {40, 41, None}

    async def test_another_workspace_sees_only_its_own(self, ask: Ask, app: FastAPI, client: httpx.AsyncClient):
        other = await make_tenant(app, "other")
        async with make_client(app, other.admin_key) as theirs:
            await create_gadget_type(theirs)
            await create_element(theirs, "gadget", **gadget(1, prefix="theirs"))
            their_page = (await ask(theirs, PAGE, first=50))["data"]["list"]
            assert [e["node"]["name"] for e in their_page["edges"]] == ["theirs 1"]
            assert their_page["total"] == 1
        our_names = [e["node"]["name"] for e in (await ask(client, PAGE, first=50))["data"]["list"]["edges"]]
        assert "theirs 1" not in our_names
        assert len(our_names) == 9


@pytest.mark.usefixtures("gadgets")
class TestExecutedNormally:
    """What the compiled path does not answer gets the normal execution's answer and errors."""

    @pytest.mark.parametrize(
        ("query", "variables"),
        [
            ("{ gadgets(first: 2) { edges { node { title assignedTo { name } } } } }", {}),  # a resolver of its own
            ("{ gadgets(first: 2) { totalCount } entityTypes { code } }", {}),  # two root fields
            ("{ gadgets(first: 2) { edges { node { ...F } } } } fragment F on Gadget { title }", {}),
            ("{ gadgets(first: 2) { edges { node { title @include(if: true) } } } }", {}),
            ("{ gadgets(first: 0) { totalCount } }", {}),  # refused by the resolver
            ('{ gadgets(after: "nonsense") { totalCount } }', {}),  # a bad cursor
            ("query($f: GadgetFilter) { gadgets(filter: $f) { totalCount } }", {"f": {"grade": {"eq": "Z"}}}),
            ("{ gadgets { edges { node { nope } } } }", {}),  # not valid
        ],
    )
    async def test_same_answer_and_errors(
        self, ask: Ask, client: httpx.AsyncClient, query: str, variables: dict[str, Any]
    ):
        answer = await ask(client, query, compiled=False, **variables)
        assert answer.get("data") or answer.get("errors")

    async def test_turned_off(
        self,
        settings: Settings,
        compiled_answers: list[bool],
        client: httpx.AsyncClient,
        monkeypatch: pytest.MonkeyPatch,
    ):
        monkeypatch.setattr(settings, "GRAPHQL_COMPILED_LISTS", False)
        await graphql(client, PAGE, {"first": 5})
        assert compiled_answers == []
