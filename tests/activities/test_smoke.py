import httpx
from tests.factories import create_element, lead_type

async def test_smoke(client: httpx.AsyncClient) -> None:
    await lead_type(client)
    lead = await create_element(client, "lead", title="ACME")
    r = await client.post("/activities", json={"kind": "call", "direction": "outgoing", "subject": "Intro", "starts_at": "2026-12-01T10:00:00Z", "ends_at": "2026-12-01T10:05:30Z", "outcome": "answered", "element_ids": [lead["id"]], "participants": [{"name": "Bob", "phone": "+100"}], "payload": {"x": 1}})
    print(r.status_code, r.text)
    assert r.status_code == 201
    aid = r.json()["id"]
    r = await client.post(f"/elements/{lead['id']}/move", json={"stage_code": "IN_PROGRESS"})
    r = await client.get(f"/elements/{lead['id']}/timeline", params={"limit": 2})
    print(r.status_code, r.text)
    r2 = await client.get(f"/elements/{lead['id']}/timeline", params={"limit": 2, "cursor": r.json()["next_cursor"]})
    print(r2.status_code, r2.text)
    r = await client.get("/activities", params={"element_id": lead["id"], "kind": ["call"]})
    print(r.status_code, r.text)
    r = await client.patch(f"/activities/{aid}", json={"subject": "Intro 2", "duration_seconds": 60})
    print(r.status_code, r.text)
    r = await client.post(f"/activities/{aid}/complete", json={})
    print(r.status_code, r.text)
    r = await client.delete(f"/activities/{aid}")
    print(r.status_code, r.text)
