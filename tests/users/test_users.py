import httpx

from tests.factories import create_element, create_type, create_user, lead_type


class TestUsers:
    async def test_create_list_update_and_load(self, client: httpx.AsyncClient) -> None:
        await lead_type(client)
        ann = await create_user(client, "Ann", "senior", capacity=3, timezone="Europe/Berlin")
        assert ann["tier"] == "senior"
        assert ann["load"] == 0
        element = await create_element(client, "lead", title="a", assigned_to=ann["id"])
        await create_element(client, "lead", title="b", assigned_to=ann["id"])
        # Closed elements are not load.
        moved = await client.post(f"/elements/{element['id']}/move", json={"stage_code": "SUCCESS"})
        assert moved.status_code == 200
        listed = (await client.get("/users", params={"tier": "senior"})).json()["items"]
        assert [(u["name"], u["load"]) for u in listed] == [("Ann", 1)]
        patched = await client.patch(f"/users/{ann['id']}", json={"capacity": 5, "active": False})
        assert patched.status_code == 200
        assert (patched.json()["capacity"], patched.json()["active"], patched.json()["load"]) == (5, False, 1)

    async def test_bad_input_and_duplicates(self, client: httpx.AsyncClient) -> None:
        bad = await client.post("/users", json={"name": "", "email": "nope", "tier": "boss", "timezone": "Mars/Base"})
        assert bad.status_code == 422
        assert {e["field"] for e in bad.json()["errors"]} >= {"name", "email", "tier", "timezone"}
        await create_user(client, "Bob", email="bob@example.com")
        again = await client.post("/users", json={"name": "Bob 2", "email": "BOB@example.com"})
        assert again.status_code == 409

    async def test_assigned_to_must_be_a_user_of_the_workspace(
        self, client: httpx.AsyncClient, other_client: httpx.AsyncClient
    ) -> None:
        await create_type(client, "lead")
        foreign = await create_user(other_client, "Eve")
        response = await client.post("/entity-types/lead/elements", json={"assigned_to": foreign["id"]})
        assert response.status_code == 422
        assert response.json()["errors"][0]["field"] == "assigned_to"
        mine = await create_user(client, "Max")
        element = await create_element(client, "lead", assigned_to=mine["id"])
        patch = await client.patch(f"/elements/{element['id']}", json={"assigned_to": foreign["id"]})
        assert patch.status_code == 422
        batch = await client.post(
            "/entity-types/lead/elements/batch",
            json={"items": [{"op": "create", "data": {}}, {"op": "create", "data": {"assigned_to": foreign["id"]}}]},
        )
        assert batch.status_code == 422
        assert batch.json()["errors"][0]["field"] == "items[1].assigned_to"
        # A user with assigned elements cannot be deleted.
        assert (await client.delete(f"/users/{mine['id']}")).status_code == 409

    async def test_users_are_per_workspace(self, client: httpx.AsyncClient, other_client: httpx.AsyncClient) -> None:
        user = await create_user(client, "Zed")
        assert (await other_client.get(f"/users/{user['id']}")).status_code == 404
        assert (await other_client.get("/users")).json()["items"] == []

    async def test_viewer_cannot_create(self, viewer_client: httpx.AsyncClient) -> None:
        response = await viewer_client.post("/users", json={"name": "V", "email": "v@example.com"})
        assert response.status_code == 403
