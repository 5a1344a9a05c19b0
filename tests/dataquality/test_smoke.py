import httpx
from tests.factories import create_element, create_field, create_type


async def test_smoke(client: httpx.AsyncClient) -> None:
    await create_type(client, "lead")
    await create_field(client, "lead", "email", "email")
    await create_field(client, "lead", "phone", "phone")
    await create_field(client, "lead", "tags", "string", multiple=True)
    await create_field(client, "lead", "budget", "integer")
    await create_field(client, "lead", "code", "string")
    a = await create_element(client, "lead", title="ACME, Inc.", values={"email": "Ann@x.com", "phone": "+7 916 123-45-67", "budget": 5, "code": "AB-1", "tags": ["x", "yyyy"]})
    b = await create_element(client, "lead", title="acme inc", values={"email": "ann@x.com", "phone": "8 (916) 123 45 67", "budget": 50, "code": "zz"})
    await create_element(client, "lead", title="John Smith")
    await create_element(client, "lead", title="Jon Smith")
    r = await client.patch("/entity-types/lead/fields/budget", json={"max": 10, "required": True})
    assert r.status_code == 200, r.text
    r = await client.patch("/entity-types/lead/fields/code", json={"pattern": "[A-Z]{2}-[0-9]"})
    assert r.status_code == 200, r.text
    r = await client.patch("/entity-types/lead/fields/tags", json={"max_length": 2})
    assert r.status_code == 200, r.text
    r = await client.get("/data-quality/report", params={"entity_type": "lead"})
    print(r.text)
    assert r.status_code == 200
    r = await client.post(f"/elements/{a['id']}/merge", json={"merged_ids": [b["id"]]})
    print(r.text)
    assert r.status_code == 200
