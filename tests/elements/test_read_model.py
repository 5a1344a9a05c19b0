"""The read model (one typed table per entity type) must always equal the EAV record (`element_values`).

Every write path is exercised, then each element's projection row is compared with what its value rows say.
"""

import uuid
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import asyncpg
import httpx
import pytest

from app.readmodel.compiler import built_json
from app.readmodel.ddl import table_name
from tests.factories import create_element, create_field, create_type, default_pipeline

VALUE_COLUMNS = ("value_text", "value_number", "value_bool", "value_date", "value_datetime", "value_ref")


async def _projection_matches_record(database_url: str, type_id: str) -> int:
    """Assert every element of the type has exactly the values of its EAV rows in its projection row."""
    connection = await asyncpg.connect(database_url)
    try:
        fields = await connection.fetch(
            "SELECT id, code, multiple FROM fields WHERE entity_type_id = $1", uuid.UUID(type_id)
        )
        elements = await connection.fetch("SELECT id FROM elements WHERE entity_type_id = $1", uuid.UUID(type_id))
        rows = {
            row["id"]: dict(row)
            for row in await connection.fetch(f"SELECT * FROM {table_name(uuid.UUID(type_id))}")  # noqa: S608
        }
        assert set(rows) == {e["id"] for e in elements}, "one projection row per element, no more"
        values = await connection.fetch(
            "SELECT v.* FROM element_values v JOIN elements e ON e.id = v.element_id "
            "WHERE e.entity_type_id = $1 ORDER BY v.element_id, v.field_id, v.position",
            uuid.UUID(type_id),
        )
        record: dict[tuple[uuid.UUID, uuid.UUID], list[Any]] = {}
        for value in values:
            typed = next((value[c] for c in VALUE_COLUMNS if value[c] is not None), None)
            record.setdefault((value["element_id"], value["field_id"]), []).append(typed)
        for element in elements:
            projected = rows[element["id"]]
            for field in fields:
                items = record.get((element["id"], field["id"]), [])
                expected = (items or None) if field["multiple"] else (items[0] if items else None)
                assert projected[field["code"]] == expected, (field["code"], element["id"])
            assert set(projected) == {"id"} | {f["code"] for f in fields}, "one column per field"
        # The body rendered on write is the JSON built from the row now.
        bodies = await connection.fetch(
            f"SELECT e.id, e.body::text AS stored, {built_json('t.code', 's.code')}::text AS built "  # noqa: S608
            "FROM elements e JOIN entity_types t ON t.id = e.entity_type_id LEFT JOIN stages s ON s.id = e.stage_id "
            "WHERE e.entity_type_id = $1",
            uuid.UUID(type_id),
        )
        for body in bodies:
            assert body["stored"] == body["built"], body["id"]
        return len(elements)
    finally:
        await connection.close()


@pytest.fixture
async def typed(client: httpx.AsyncClient) -> dict[str, Any]:
    entity_type = await create_type(client, "deal")
    await create_type(client, "company")
    await create_field(client, "deal", "name", "string")
    await create_field(client, "deal", "notes", "text")
    await create_field(client, "deal", "seats", "integer")
    await create_field(client, "deal", "budget", "money")
    await create_field(client, "deal", "ratio", "decimal")
    await create_field(client, "deal", "vip", "boolean")
    await create_field(client, "deal", "signed_on", "date")
    await create_field(client, "deal", "call_at", "datetime")
    await create_field(client, "deal", "tags", "enum", multiple=True, options=[{"value": "a"}, {"value": "b"}])
    await create_field(client, "deal", "company", "reference", target_type="company")
    return entity_type


async def test_projection_equals_the_record_after_every_write(
    client: httpx.AsyncClient, typed: dict[str, Any], database_url: str
) -> None:
    company = await create_element(client, "company", title="ACME")
    full = {
        "name": "big one",
        "notes": "n" * 5000,
        "seats": 12,
        "budget": "1999.99",
        "ratio": 0.125,
        "vip": True,
        "signed_on": "2026-11-30",
        "call_at": "2026-12-01T10:00:00+03:00",
        "tags": ["a", "b"],
        "company": company["id"],
    }
    first = await create_element(client, "deal", title="first", values=full)
    second = await create_element(client, "deal", title="second", values={"seats": 3})
    # Batch creates and updates.
    response = await client.post(
        "/entity-types/deal/elements/batch",
        json={
            "items": [
                {"op": "create", "data": {"title": f"b{i}", "values": {"seats": i, "tags": ["b"]}}} for i in range(5)
            ]
            + [{"op": "update", "id": second["id"], "data": {"values": {"vip": False, "seats": None}}}]
        },
    )
    assert response.status_code == 200, response.text
    # Updates: change, clear, and system-field only (the projection stays).
    response = await client.patch(f"/elements/{first['id']}", json={"values": {"seats": 13, "notes": None}})
    assert response.status_code == 200, response.text
    response = await client.patch(f"/elements/{first['id']}", json={"title": "renamed"})
    assert response.status_code == 200, response.text
    # Moves.
    pipeline = await default_pipeline(client, "deal")
    response = await client.post(f"/elements/{first['id']}/move", json={"stage_code": "IN_PROGRESS"})
    assert response.status_code == 200, response.text
    assert pipeline["id"]
    assert await _projection_matches_record(database_url, typed["id"]) == 7
    # A stage's new code shows in its elements (rendered again).
    stage = next(s for s in pipeline["stages"] if s["code"] == "IN_PROGRESS")
    response = await client.patch(f"/stages/{stage['id']}", json={"code": "WORKING"})
    assert response.status_code == 200, response.text
    assert (await client.get(f"/elements/{first['id']}")).json()["stage_code"] == "WORKING"
    assert await _projection_matches_record(database_url, typed["id"]) == 7

    # A field added later is a new, empty column; values written to it are projected.
    await create_field(client, "deal", "region", "string")
    response = await client.patch(f"/elements/{second['id']}", json={"values": {"region": "north"}})
    assert response.status_code == 200, response.text
    assert await _projection_matches_record(database_url, typed["id"]) == 7
    # A field removed takes its column with it.
    response = await client.delete("/entity-types/deal/fields/ratio")
    assert response.status_code == 204, response.text
    assert await _projection_matches_record(database_url, typed["id"]) == 7

    # Delete to the recycle bin and restore (the projection row stays), and a purge (it goes).
    response = await client.delete(f"/elements/{first['id']}")
    assert response.status_code == 204, response.text
    assert await _projection_matches_record(database_url, typed["id"]) == 7
    response = await client.post(f"/elements/{first['id']}/restore")
    assert response.status_code in (200, 409), response.text
    assert await _projection_matches_record(database_url, typed["id"]) == 7


async def test_projection_of_a_type_without_recycle_bin_loses_purged_rows(
    client: httpx.AsyncClient, database_url: str
) -> None:
    entity_type = await create_type(client, "ticket", settings={"recycle_bin_enabled": False})
    await create_field(client, "ticket", "level", "integer")
    kept = await create_element(client, "ticket", values={"level": 1})
    gone = await create_element(client, "ticket", values={"level": 2})
    response = await client.delete(f"/elements/{gone['id']}")
    assert response.status_code == 204, response.text
    assert await _projection_matches_record(database_url, entity_type["id"]) == 1
    response = await client.get(
        "/entity-types/ticket/elements", params={"filter": '{"field": "level", "op": "gte", "value": 0}'}
    )
    assert [e["id"] for e in response.json()["items"]] == [kept["id"]]


async def test_an_element_without_a_rendered_body_reads_the_same(
    client: httpx.AsyncClient, typed: dict[str, Any], database_url: str
) -> None:
    """A row written with the render trigger off (a data-only restore, say) is rendered at read time instead."""
    element = await create_element(client, "deal", title="bare", values={"seats": 2, "tags": ["a"]})
    before = (await client.get(f"/elements/{element['id']}")).json()
    listed = (await client.get("/entity-types/deal/elements")).json()["items"]
    connection = await asyncpg.connect(database_url)
    try:
        async with connection.transaction():
            await connection.execute("ALTER TABLE elements DISABLE TRIGGER elements_zz_render_body")
            await connection.execute("UPDATE elements SET body = NULL WHERE id = $1", uuid.UUID(element["id"]))
            await connection.execute("ALTER TABLE elements ENABLE TRIGGER elements_zz_render_body")
        assert await connection.fetchval("SELECT body FROM elements WHERE id = $1", uuid.UUID(element["id"])) is None
    finally:
        await connection.close()
    assert (await client.get(f"/elements/{element['id']}")).json() == before
    assert (await client.get("/entity-types/deal/elements")).json()["items"] == listed


async def test_deleting_a_type_drops_its_table(client: httpx.AsyncClient, database_url: str) -> None:
    entity_type = await create_type(client, "temp")
    await create_field(client, "temp", "level", "integer")
    await create_element(client, "temp", values={"level": 1})
    response = await client.delete("/entity-types/temp", params={"force": "true"})
    assert response.status_code == 204, response.text
    connection = await asyncpg.connect(database_url)
    try:
        assert await connection.fetchval("SELECT to_regclass($1)", table_name(uuid.UUID(entity_type["id"]))) is None
    finally:
        await connection.close()


async def test_lean_list_answers_as_the_service_does(client: httpx.AsyncClient, typed: dict[str, Any]) -> None:
    """PostgreSQL's JSON is the API's JSON: the same element read through the lean path and the write's answer."""
    element = await create_element(
        client, "deal", title="same", amount="10.50", values={"seats": 2, "call_at": "2026-12-01T10:00:00Z"}
    )
    fetched = (await client.get(f"/elements/{element['id']}")).json()
    listed = (await client.get("/entity-types/deal/elements")).json()["items"][0]
    assert fetched == listed
    assert {k: v for k, v in fetched.items() if k != "values"} == {k: v for k, v in element.items() if k != "values"}
    assert fetched["values"] == element["values"]
    assert fetched["created_at"].endswith("Z")
    assert datetime.fromisoformat(fetched["created_at"]) <= datetime.now(UTC)
    assert Decimal(str(fetched["amount"])) == Decimal("10.50")


async def test_a_field_added_to_a_type_with_elements_is_indexed_concurrently(
    client: httpx.AsyncClient, typed: dict[str, Any], database_url: str
) -> None:
    from app.kit import background

    await create_element(client, "deal", values={"seats": 1})
    field = await create_field(client, "deal", "score_b", "integer")
    assert field["index_state"] == "building"
    await background.drain()
    response = await client.get("/entity-types/deal/fields/score_b")
    assert response.json()["index_state"] == "ready"
    text_field = await create_field(client, "deal", "memo", "text")
    assert text_field["index_state"] == "none"
    response = await client.patch("/entity-types/deal/fields/memo", json={"indexed": True})
    assert response.status_code == 200, response.text
    await background.drain()
    # A trigram index where the server has pg_trgm (the embedded PostgreSQL has not): said on the field.
    trigrams = await _has_trigrams(database_url)
    assert (await client.get("/entity-types/deal/fields/memo")).json()["index_state"] == (
        "ready" if trigrams else "failed"
    )


async def _has_trigrams(database_url: str) -> bool:
    connection = await asyncpg.connect(database_url)
    try:
        return bool(await connection.fetchval("SELECT count(*) FROM pg_extension WHERE extname = 'pg_trgm'"))
    finally:
        await connection.close()


async def test_the_last_and_first_dates_read_back_as_written(client: httpx.AsyncClient) -> None:
    """asyncpg stores date.max/date.min as PostgreSQL's infinity/-infinity: the JSON PostgreSQL builds says the date."""
    await create_type(client, "span")
    element = await create_element(client, "span", begin_date="0001-01-01", close_date="9999-12-31")
    fetched = (await client.get(f"/elements/{element['id']}")).json()
    listed = (await client.get("/entity-types/span/elements")).json()["items"][0]
    for body in (element, fetched, listed):
        assert (body["begin_date"], body["close_date"]) == ("0001-01-01", "9999-12-31")


async def test_a_title_search_pages_newest_first(client: httpx.AsyncClient) -> None:
    """A title substring (the trigram path where pg_trgm is installed) keeps the list's order and cursors."""
    await create_type(client, "firm")
    ids = [(await create_element(client, "firm", title=f"Acme {i}"))["id"] for i in range(5)]
    await create_element(client, "firm", title="Other")
    search = {"filter": {"field": "title", "op": "icontains", "value": "ACM"}, "limit": 2}
    seen: list[str] = []
    while True:
        body = (await client.post("/entity-types/firm/elements/search", json=search)).json()
        seen += [e["id"] for e in body["items"]]
        if not body["next_cursor"]:
            break
        search["cursor"] = body["next_cursor"]
    assert seen == ids[::-1]
