"""People who log in see what their roles allow: `own` (assigned to me or created by me) and `department` (mine and
the departments below it), in lists, searches, counts, cursor pages and boards, through REST and GraphQL alike."""

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from gql import GraphQLRequest

from tests.conftest import Tenant, make_client
from tests.factories import create_element, create_type, created, default_pipeline
from tests.graphql.conftest import http_client

PASSWORD = "correct horse battery"


@dataclass
class Org:
    people: dict[str, httpx.AsyncClient]
    tokens: dict[str, str]
    users: dict[str, str]
    departments: dict[str, str]
    elements: dict[str, str]  # title -> id
    pipeline_id: str


async def login(app: FastAPI, tenant: Tenant, email: str) -> str:
    async with make_client(app, None) as anonymous:
        response = await anonymous.post(
            "/auth/login", json={"email": email, "password": PASSWORD, "workspace_id": str(tenant.workspace_id)}
        )
    assert response.status_code == 200, response.text
    return str(response.json()["access_token"])


@pytest.fixture
async def org(app: FastAPI, tenant: Tenant, client: httpx.AsyncClient) -> AsyncIterator[Org]:
    """Sales (Alice) > Sales EU (Bob, Dave); Support (Carol). Alice reads her department's deals, the others their
    own; one deal each, Bob two, and one nobody's."""
    await create_type(client, "deal")
    pipeline = await default_pipeline(client, "deal")
    sales = created(await client.post("/departments", json={"name": "Sales"}))["id"]
    sales_eu = created(await client.post("/departments", json={"name": "Sales EU", "parent_id": sales}))["id"]
    support = created(await client.post("/departments", json={"name": "Support"}))["id"]
    grant = {"entity_type": "deal", "add": "all", "update": "own"}
    own = created(await client.post("/roles", json={"name": "own", "grants": [{**grant, "read": "own"}]}))["id"]
    team = created(await client.post("/roles", json={"name": "team", "grants": [{**grant, "read": "department"}]}))
    people = {"alice": (sales, team["id"]), "bob": (sales_eu, own), "dave": (sales_eu, own), "carol": (support, own)}
    users = {}
    for name, (department, role) in people.items():
        body = {"name": name, "email": f"{name}@example.com", "password": PASSWORD, "department_id": department}
        users[name] = created(await client.post("/users", json={**body, "role_ids": [role]}))["id"]
    elements = {}
    for title, owner in (("a1", "alice"), ("b1", "bob"), ("b2", "bob"), ("c1", "carol"), ("d1", "dave")):
        elements[title] = (await create_element(client, "deal", title=title, assigned_to=users[owner]))["id"]
    elements["nobody"] = (await create_element(client, "deal", title="nobody"))["id"]
    tokens = {name: await login(app, tenant, f"{name}@example.com") for name in ("alice", "bob", "carol")}
    clients = {name: make_client(app, token) for name, token in tokens.items()}
    try:
        yield Org(
            clients, tokens, users, {"sales": sales, "sales_eu": sales_eu, "support": support}, elements, pipeline["id"]
        )
    finally:
        for http in clients.values():
            await http.aclose()


async def titles(http: httpx.AsyncClient, **params: Any) -> tuple[list[str], int]:
    """Every title a person lists, walking the cursor one element per page, and the total of the first page."""
    seen: list[str] = []
    cursor = None
    total = None
    while True:
        page = (
            await http.get(
                "/entity-types/deal/elements",
                params={"limit": 1, "with_total": True, "sort": "title", **({"cursor": cursor} if cursor else {})},
            )
        ).json()
        total = page["total"] if total is None else total
        seen.extend(e["title"] for e in page["items"])
        cursor = page["next_cursor"]
        if not cursor:
            return seen, total


class TestRest:
    async def test_own_scope_pages_counts_searches_and_boards_only_their_elements(self, org: Org) -> None:
        bob = org.people["bob"]
        assert await titles(bob) == (["b1", "b2"], 2)
        search = await bob.post(
            "/entity-types/deal/elements/search",
            json={"filter": {"field": "title", "op": "starts_with", "value": "b"}, "with_total": True},
        )
        assert sorted(e["title"] for e in search.json()["items"]) == ["b1", "b2"]
        board = (await bob.get(f"/pipelines/{org.pipeline_id}/board")).json()
        assert sum(stage["count"] for stage in board["stages"]) == 2
        assert sorted(e["title"] for stage in board["stages"] for e in stage["elements"]) == ["b1", "b2"]
        assert (await bob.get(f"/elements/{org.elements['c1']}")).status_code == 404

    async def test_department_scope_follows_the_tree(self, org: Org, client: httpx.AsyncClient) -> None:
        alice = org.people["alice"]
        assert await titles(alice) == (["a1", "b1", "b2", "d1"], 4)
        board = (await alice.get(f"/pipelines/{org.pipeline_id}/board")).json()
        assert sum(stage["count"] for stage in board["stages"]) == 4
        # Sales EU moves under Support: Alice's department no longer holds Bob and Dave.
        moved = await client.patch(
            f"/departments/{org.departments['sales_eu']}", json={"parent_id": org.departments["support"]}
        )
        assert moved.status_code == 200, moved.text
        assert await titles(alice) == (["a1"], 1)

    async def test_what_a_person_creates_is_theirs_and_their_heads(self, org: Org) -> None:
        made = await org.people["bob"].post("/entity-types/deal/elements", json={"title": "b3"})
        assert made.status_code == 201, made.text
        assert (await titles(org.people["bob"]))[0] == ["b1", "b2", "b3"]
        assert "b3" in (await titles(org.people["alice"]))[0]
        assert "b3" not in (await titles(org.people["carol"]))[0]
        # On the boards too, counted once whether it is theirs by assignment or by creation.
        mine = await org.people["bob"].post(
            "/entity-types/deal/elements", json={"title": "b4", "assigned_to": org.users["bob"]}
        )
        assert mine.status_code == 201, mine.text
        for person, expected in (("bob", ["b1", "b2", "b3", "b4"]), ("alice", ["a1", "b1", "b2", "b3", "b4", "d1"])):
            board = (await org.people[person].get(f"/pipelines/{org.pipeline_id}/board")).json()
            assert sum(stage["count"] for stage in board["stages"]) == len(expected)
            assert sorted(e["title"] for stage in board["stages"] for e in stage["elements"]) == expected

    async def test_an_update_needs_the_scope(self, org: Org) -> None:
        carol = org.people["carol"]
        assert (await carol.patch(f"/elements/{org.elements['c1']}", json={"title": "c1!"})).status_code == 200
        assert (await carol.patch(f"/elements/{org.elements['b1']}", json={"title": "mine"})).status_code == 404
        # Alice reads Bob's deal through her department but may only update her own.
        refused = await org.people["alice"].patch(f"/elements/{org.elements['b1']}", json={"title": "mine"})
        assert refused.status_code == 403
        assert refused.json()["errors"] == [{"field": "permission", "message": "deal.update"}]


class TestGraphQL:
    QUERY = """query($after: String) { elements(type: "deal", first: 1, after: $after, sort: "title") {
        totalCount pageInfo { hasNextPage endCursor } edges { node { title } } } }"""

    async def walk(self, app: FastAPI, token: str) -> tuple[list[str], int]:
        seen: list[str] = []
        after = None
        total = 0
        async with http_client(app, token) as session:
            while True:
                page = (await session.execute(GraphQLRequest(self.QUERY, variable_values={"after": after})))["elements"]
                total = total or page["totalCount"]
                seen.extend(edge["node"]["title"] for edge in page["edges"])
                if not page["pageInfo"]["hasNextPage"]:
                    return seen, total
                after = page["pageInfo"]["endCursor"]

    async def test_connections_follow_own_and_department_scopes(self, app: FastAPI, org: Org) -> None:
        assert await self.walk(app, org.tokens["bob"]) == (["b1", "b2"], 2)
        assert await self.walk(app, org.tokens["alice"]) == (["a1", "b1", "b2", "d1"], 4)
        assert await self.walk(app, org.tokens["carol"]) == (["c1"], 1)
        async with http_client(app, org.tokens["bob"]) as session:
            board = await session.execute(
                GraphQLRequest(
                    "query($id: UUID!) { board(pipelineId: $id) { stages { count elements { title } } } }",
                    variable_values={"id": org.pipeline_id},
                )
            )
        assert sum(stage["count"] for stage in board["board"]["stages"]) == 2
