"""POST /elements/{id}/merge: values, links, tasks, comments and history move to the survivor, all or nothing."""

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from gql import GraphQLRequest
from sqlalchemy import text

from app.db import unit_of_work
from tests.conftest import Tenant
from tests.dataquality.conftest import KeyedClient
from tests.factories import create_element, create_field, create_type, created
from tests.graphql.conftest import http_client


async def leads(client: httpx.AsyncClient, **settings: bool) -> None:
    await create_type(client, "lead", **({"settings": settings} if settings else {}))
    await create_field(client, "lead", "email", "email")
    await create_field(client, "lead", "phone", "phone")
    await create_field(client, "lead", "budget", "integer")
    await create_field(client, "lead", "secret", "string")


async def merge(client: httpx.AsyncClient, survivor: str, *merged: str, **body: Any) -> httpx.Response:
    return await client.post(f"/elements/{survivor}/merge", json={"merged_ids": list(merged), **body})


async def history(client: httpx.AsyncClient, element_id: str) -> list[dict[str, Any]]:
    response = await client.get(f"/elements/{element_id}/history")
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


async def children(client: httpx.AsyncClient, element_id: str) -> list[str]:
    response = await client.get(f"/elements/{element_id}/links", params={"direction": "children"})
    assert response.status_code == 200, response.text
    return sorted(e["id"] for e in response.json()["items"])


async def add_comment(app: FastAPI, tenant: Tenant, element_id: str, words: str) -> None:
    """A comment, as a rule's `add_comment` action writes it."""
    async with unit_of_work(app.state.sessionmaker) as session:
        await session.execute(
            text(
                "INSERT INTO timeline_entries (workspace_id, element_id, kind, data) "
                "VALUES (:w, :e, 'comment', jsonb_build_object('text', CAST(:t AS text)))"
            ),
            {"w": tenant.workspace_id, "e": uuid.UUID(element_id), "t": words},
        )


async def world(app: FastAPI, tenant: Tenant, client: httpx.AsyncClient) -> dict[str, str]:
    """A survivor and two duplicates with links (company -> lead, lead -> lead), a task and a comment."""
    await leads(client)
    await create_type(client, "company", preset="list")
    for parent, child in (("company", "lead"), ("lead", "lead")):
        created(await client.post("/relations", json={"parent_type": parent, "child_type": child}))
    ids = {
        "survivor": await create_element(client, "lead", title="Ann Lee", values={"phone": "+7 916 123-45-67"}),
        "first": await create_element(
            client, "lead", title="Ann Lee (2)", values={"email": "ann@x.io", "phone": "8 916 1234567", "budget": 7}
        ),
        "second": await create_element(client, "lead", title="ann lee", values={"budget": 9, "secret": "s3"}),
        "company": await create_element(client, "company", title="Acme"),
        "other_company": await create_element(client, "company", title="Beta"),
        "child": await create_element(client, "lead", title="Referred by Ann"),
    }
    out = {name: element["id"] for name, element in ids.items()}
    for parent, child in (
        ("company", "survivor"),
        ("company", "first"),  # the survivor has it already: dropped
        ("other_company", "second"),  # moved
        ("first", "child"),  # moved: the survivor becomes the parent
        ("survivor", "second"),  # would link the survivor to itself: dropped
    ):
        created(await client.post(f"/elements/{out[parent]}/links", json={"child_id": out[child]}))
    out["task"] = created(await client.post("/tasks", json={"title": "Call Ann", "element_id": out["first"]}))["id"]
    await add_comment(app, tenant, out["second"], "met at the fair")
    return out


class TestMerge:
    async def test_survivor_takes_values_links_tasks_comments_and_history(
        self, app: FastAPI, tenant: Tenant, client: httpx.AsyncClient
    ) -> None:
        ids = await world(app, tenant, client)
        response = await merge(client, ids["survivor"], ids["first"], ids["second"])
        assert response.status_code == 200, response.text
        result = response.json()
        survivor = result["survivor"]
        # Survivor wins (title, phone), its empty fields are filled from the others in their order.
        assert survivor["title"] == "Ann Lee"
        assert survivor["values"] == {"phone": "+7 916 123-45-67", "email": "ann@x.io", "budget": 7, "secret": "s3"}
        assert {(t["field"], t["from_id"], str(t["value"])) for t in result["taken"]} == {
            ("email", ids["first"], "ann@x.io"),
            ("budget", ids["first"], "7"),
            ("secret", ids["second"], "s3"),
        }
        assert (result["links_moved"], result["links_dropped"], result["tasks_moved"], result["comments_moved"]) == (
            2,
            2,
            1,
            1,
        )
        assert result["recycle_bin"] is True
        # Links: the survivor is where the duplicates were.
        assert await children(client, ids["company"]) == [ids["survivor"]]
        assert await children(client, ids["other_company"]) == [ids["survivor"]]
        assert await children(client, ids["survivor"]) == [ids["child"]]
        # The task and the comment are the survivor's now.
        tasks = (await client.get("/tasks", params={"element_id": ids["survivor"]})).json()["items"]
        assert [t["id"] for t in tasks] == [ids["task"]]
        entries = await history(client, ids["survivor"])
        comment = next(e for e in entries if e["kind"] == "comment")
        assert comment["data"] == {"text": "met at the fair", "moved_from": ids["second"]}
        merged = next(e for e in entries if e["kind"] == "merged")
        assert merged["data"]["merged_ids"] == [ids["first"], ids["second"]]
        assert {(t["field"], t["from_id"], t.get("value")) for t in merged["data"]["taken"]} == {
            ("email", ids["first"], "ann@x.io"),
            ("budget", ids["first"], 7),
            ("secret", ids["second"], "s3"),
        }
        # The duplicates are in the recycle bin, pointing at the survivor.
        for name in ("first", "second"):
            element = (await client.get(f"/elements/{ids[name]}")).json()
            assert element["deleted_at"] is not None
            kinds = [(e["kind"], e["data"]) for e in await history(client, ids[name])]
            assert ("merged_into", {"survivor_id": ids["survivor"]}) in kinds
        assert (await client.get(f"/elements/{ids['first']}/links", params={"direction": "parents"})).json()[
            "items"
        ] == []

    async def test_per_field_choice_and_no_filling(self, client: httpx.AsyncClient) -> None:
        await leads(client)
        survivor = await create_element(client, "lead", title="Old name", values={"budget": 1})
        other = await create_element(client, "lead", title="New name", values={"email": "n@x.io", "budget": 2})
        response = await merge(
            client, survivor["id"], other["id"], fields={"title": other["id"], "budget": other["id"]}, fill_empty=False
        )
        assert response.status_code == 200, response.text
        result = response.json()["survivor"]
        assert (result["title"], result["values"]) == ("New name", {"budget": 2})
        assert result["version"] == survivor["version"] + 1

    async def test_a_value_hidden_from_some_role_stays_out_of_the_history(
        self, client: httpx.AsyncClient, role_client: KeyedClient
    ) -> None:
        await leads(client)
        await role_client(
            name="no secrets",
            grants=[{"entity_type": "lead", "read": "all"}],
            field_rules=[{"entity_type": "lead", "field": "secret", "access": "hidden"}],
        )
        survivor = await create_element(client, "lead", title="a")
        other = await create_element(client, "lead", title="b", values={"secret": "s3", "budget": 4})
        response = await merge(client, survivor["id"], other["id"])
        assert response.status_code == 200, response.text
        assert response.json()["survivor"]["values"] == {"secret": "s3", "budget": 4}
        merged = next(e for e in await history(client, survivor["id"]) if e["kind"] == "merged")
        assert sorted(merged["data"]["taken"], key=lambda t: t["field"]) == [
            {"field": "budget", "from_id": other["id"], "value": 4},
            {"field": "secret", "from_id": other["id"]},
        ]

    async def test_without_a_recycle_bin_the_duplicates_are_deleted(
        self, app: FastAPI, client: httpx.AsyncClient
    ) -> None:
        await leads(client, recycle_bin_enabled=False)
        survivor = await create_element(client, "lead", title="a")
        other = await create_element(client, "lead", title="a", values={"budget": 3})
        response = await merge(client, survivor["id"], other["id"])
        assert response.status_code == 200, response.text
        assert response.json()["recycle_bin"] is False
        assert (await client.get(f"/elements/{other['id']}")).status_code == 404
        async with unit_of_work(app.state.sessionmaker) as session:
            kinds = await session.scalars(
                text("SELECT kind FROM timeline_entries WHERE element_id = :e ORDER BY id"),
                {"e": uuid.UUID(other["id"])},
            )
            assert "merged_into" in list(kinds)


@asynccontextmanager
async def refusing_to_delete(app: FastAPI, element_id: str) -> AsyncIterator[None]:
    """PostgreSQL refuses to put this element in the recycle bin (a failure after the merge's first writes)."""
    name = f"dq_refuse_{uuid.uuid4().hex[:8]}"
    uuid.UUID(element_id)  # only a real id goes into the DDL
    async with unit_of_work(app.state.sessionmaker) as session:
        await session.execute(
            text(
                f"CREATE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
                "RAISE EXCEPTION 'refused by the test' USING ERRCODE = 'check_violation'; END $$"
            )
        )
        await session.execute(
            text(
                f"CREATE TRIGGER {name} BEFORE UPDATE ON elements FOR EACH ROW "
                f"WHEN (OLD.id = '{element_id}' AND NEW.deleted_at IS NOT NULL) EXECUTE FUNCTION {name}()"
            )
        )
    try:
        yield
    finally:
        async with unit_of_work(app.state.sessionmaker) as session:
            await session.execute(text(f"DROP TRIGGER {name} ON elements"))
            await session.execute(text(f"DROP FUNCTION {name}()"))


async def everything(client: httpx.AsyncClient, ids: dict[str, str]) -> dict[str, Any]:
    """What a merge could change, as the API shows it."""
    seen: dict[str, Any] = {}
    for name in ("survivor", "first", "second", "company", "other_company"):
        seen[name] = (await client.get(f"/elements/{ids[name]}")).json()
        seen[f"{name} history"] = await history(client, ids[name])
        seen[f"{name} children"] = await children(client, ids[name])
    seen["tasks"] = (await client.get("/tasks")).json()
    return seen


class TestAllOrNothing:
    async def test_a_failure_after_the_first_writes_leaves_everything_as_it_was(
        self, app: FastAPI, tenant: Tenant, client: httpx.AsyncClient
    ) -> None:
        ids = await world(app, tenant, client)
        before = await everything(client, ids)
        async with refusing_to_delete(app, ids["second"]):
            response = await merge(client, ids["survivor"], ids["first"], ids["second"])
        # The survivor was updated, links and tasks moved and `first` deleted before `second` failed.
        assert response.status_code == 409, response.text
        assert await everything(client, ids) == before
        # And the same merge goes through once nothing refuses it.
        assert (await merge(client, ids["survivor"], ids["first"], ids["second"])).status_code == 200

    async def test_a_value_todays_rules_refuse_fails_the_merge(self, client: httpx.AsyncClient) -> None:
        await leads(client)
        survivor = await create_element(client, "lead", title="a")
        other = await create_element(client, "lead", title="b", values={"budget": 50})
        assert (await client.patch("/entity-types/lead/fields/budget", json={"max": 10})).status_code == 200
        response = await merge(client, survivor["id"], other["id"])
        assert response.status_code == 422, response.text
        assert response.json()["errors"] == [{"field": "values.budget", "message": "must be at most 10"}]
        assert (await client.get(f"/elements/{survivor['id']}")).json() == survivor
        assert (await client.get(f"/elements/{other['id']}")).json()["deleted_at"] is None
        # Choosing the survivor's own (empty) value instead goes through.
        response = await merge(client, survivor["id"], other["id"], fields={"budget": survivor["id"]})
        assert response.status_code == 200, response.text


class TestRefusals:
    async def test_roles(
        self, client: httpx.AsyncClient, viewer_client: httpx.AsyncClient, role_client: KeyedClient
    ) -> None:
        await leads(client)
        await create_type(client, "deal")
        a = (await create_element(client, "lead", title="a"))["id"]
        b = (await create_element(client, "lead", title="b"))["id"]
        response = await merge(viewer_client, a, b)
        assert response.status_code == 403, response.text
        no_delete = await role_client(
            name="no delete", grants=[{"entity_type": "lead", "read": "all", "update": "all"}]
        )
        response = await merge(no_delete, a, b)
        assert response.status_code == 403, response.text
        assert response.json()["errors"] == [{"field": "permission", "message": "lead.delete"}]
        outsider = await role_client(name="deals only", grants=[{"entity_type": "deal", "read": "all"}])
        assert (await merge(outsider, a, b)).status_code == 404
        own = await role_client(
            name="own leads",
            grants=[{"entity_type": "lead", "read": "own", "add": "all", "update": "own", "delete": "own"}],
        )
        mine = (await create_element(own, "lead", title="mine"))["id"]
        assert (await merge(own, mine, a)).status_code == 404  # `a` is not theirs to read
        assert (await merge(own, a, mine)).status_code == 404
        for element_id in (a, b):
            assert (await client.get(f"/elements/{element_id}")).json()["deleted_at"] is None

    async def test_another_workspace_ids_are_404(
        self, client: httpx.AsyncClient, other_client: httpx.AsyncClient
    ) -> None:
        await leads(client)
        await leads(other_client)
        ours = [(await create_element(client, "lead", title=t))["id"] for t in "ab"]
        theirs = (await create_element(other_client, "lead", title="c"))["id"]
        assert (await merge(other_client, ours[0], ours[1])).status_code == 404
        assert (await merge(other_client, theirs, ours[0])).status_code == 404
        assert (await merge(client, ours[0], theirs)).status_code == 404
        assert (await client.get(f"/elements/{ours[1]}")).json()["deleted_at"] is None

    async def test_bad_input(self, client: httpx.AsyncClient) -> None:
        await leads(client)
        await create_type(client, "deal")
        a, b, c = [(await create_element(client, "lead", title=t))["id"] for t in "abc"]
        deal = (await create_element(client, "deal", title="d"))["id"]
        gone = (await create_element(client, "lead", title="gone"))["id"]
        assert (await client.delete(f"/elements/{gone}")).status_code == 204
        cases: list[tuple[dict[str, Any], int]] = [
            ({"merged_ids": []}, 422),
            ({"merged_ids": [str(uuid.uuid4()) for _ in range(21)]}, 422),
            ({"merged_ids": [b, b]}, 422),
            ({"merged_ids": [a]}, 422),
            ({"merged_ids": [b], "colour": "red"}, 422),
            ({"merged_ids": [b], "fields": {"nope": b}}, 422),
            ({"merged_ids": [b], "fields": {"title": c}}, 422),
            ({"merged_ids": ["not-an-id"]}, 422),
            ({"merged_ids": [deal]}, 422),
            ({"merged_ids": [gone]}, 409),
            ({"merged_ids": [b], "version": 99}, 412),
        ]
        for body, status in cases:
            response = await client.post(f"/elements/{a}/merge", json=body)
            assert response.status_code == status, (body, response.text)
            assert response.headers["content-type"] == "application/problem+json"
        assert (await client.post(f"/elements/{uuid.uuid4()}/merge", json={"merged_ids": [b]})).status_code == 404
        assert (await client.get(f"/elements/{a}")).json()["version"] == 1
        assert (await client.get(f"/elements/{b}")).json()["deleted_at"] is None


class TestGraphQL:
    MUTATION = (
        "mutation($id: UUID!, $input: MergeElementInput!) { mergeElement(elementId: $id, input: $input) { "
        "__typename ... on MergeElementResult { survivor { id title values } mergedIds taken { field fromId value } } "
        "... on Error { code message } } }"
    )

    async def test_merge_and_refusal_as_data(
        self, app: FastAPI, tenant: Tenant, client: httpx.AsyncClient, viewer_client: httpx.AsyncClient
    ) -> None:
        await leads(client)
        a = (await create_element(client, "lead", title="a"))["id"]
        b = (await create_element(client, "lead", title="b", values={"budget": 5}))["id"]
        viewer_key = created(await client.post("/api-keys", json={"name": "v2", "role": "viewer"}))["api_key"]
        variables = {"id": a, "input": {"mergedIds": [b], "fields": [{"field": "title", "fromId": b}]}}
        async with http_client(app, viewer_key) as session:
            refused = await session.execute(GraphQLRequest(self.MUTATION, variable_values=variables))
        assert refused["mergeElement"]["__typename"] == "Forbidden"
        async with http_client(app, tenant.admin_key) as session:
            data = await session.execute(GraphQLRequest(self.MUTATION, variable_values=variables))
        result = data["mergeElement"]
        assert result["__typename"] == "MergeElementResult"
        assert (result["survivor"]["title"], result["survivor"]["values"]) == ("b", {"budget": 5})
        assert result["mergedIds"] == [b]
        assert sorted(t["field"] for t in result["taken"]) == ["budget", "title"]


@pytest.mark.parametrize("count", [1, 20])
async def test_up_to_twenty_at_once(client: httpx.AsyncClient, count: int) -> None:
    await leads(client)
    survivor = (await create_element(client, "lead", title="s"))["id"]
    items = [{"op": "create", "data": {"title": f"d{i}", "values": {"budget": i}}} for i in range(count)]
    response = await client.post("/entity-types/lead/elements/batch", json={"items": items})
    merged = [e["id"] for e in response.json()["items"]]
    response = await merge(client, survivor, *merged)
    assert response.status_code == 200, response.text
    assert response.json()["survivor"]["values"] == {"budget": 0}
    report = (await client.get("/data-quality/report", params={"entity_type": "lead"})).json()
    assert report["total"] == 1
