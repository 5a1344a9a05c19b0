"""element_values has no foreign keys (for write speed); triggers must still remove the values of deleted rows."""

import asyncpg
import httpx

from tests.factories import create_element, create_field, create_type, lead_type


async def _value_rows(database_url: str, element_id: str) -> int:
    connection = await asyncpg.connect(database_url)
    try:
        count: int = await connection.fetchval("SELECT count(*) FROM element_values WHERE element_id = $1", element_id)
        return count
    finally:
        await connection.close()


async def test_deleting_an_element_deletes_its_values(client: httpx.AsyncClient, database_url: str) -> None:
    await create_type(client, "note", settings={"recycle_bin_enabled": False})
    await create_field(client, "note", "words", "integer")
    element = await create_element(client, "note", values={"words": 12})
    assert await _value_rows(database_url, element["id"]) == 1
    assert (await client.delete(f"/elements/{element['id']}")).status_code == 204
    assert await _value_rows(database_url, element["id"]) == 0


async def test_deleting_a_type_deletes_its_elements_values(client: httpx.AsyncClient, database_url: str) -> None:
    await lead_type(client)
    element = await create_element(client, "lead", values={"budget": 10, "industry": "it"})
    assert await _value_rows(database_url, element["id"]) == 2
    response = await client.delete("/entity-types/lead", params={"force": "true"})
    assert response.status_code == 204, response.text
    assert await _value_rows(database_url, element["id"]) == 0
