import httpx
import pytest
from fastapi import FastAPI

from tests.conftest import make_client


class TestAuthentication:
    @pytest.mark.parametrize(
        "headers",
        [{}, {"Authorization": "Bearer nope"}, {"Authorization": "Basic abc"}, {"Authorization": "Bearer sf_x_y"}],
    )
    async def test_missing_or_bad_key_is_401_problem(self, app: FastAPI, headers: dict[str, str]) -> None:
        async with make_client(app, None) as anonymous:
            response = await anonymous.get("/entity-types", headers=headers)
        assert response.status_code == 401
        assert response.headers["content-type"] == "application/problem+json"
        assert response.headers["www-authenticate"].startswith("Bearer")


class TestApiKeys:
    async def test_secret_is_shown_once_and_lists_show_prefix(self, client: httpx.AsyncClient) -> None:
        created = await client.post("/api-keys", json={"name": "ci", "role": "editor"})
        assert created.status_code == 201
        body = created.json()
        assert body["api_key"].startswith(f"sf_{body['prefix']}_")
        listed = (await client.get("/api-keys")).json()["items"]
        mine = next(k for k in listed if k["id"] == body["id"])
        assert "api_key" not in mine
        assert mine["role"] == "editor"
        assert mine["prefix"] == body["prefix"]

    async def test_last_used_is_recorded(self, app: FastAPI, client: httpx.AsyncClient) -> None:
        created = (await client.post("/api-keys", json={"name": "ci", "role": "viewer"})).json()
        async with make_client(app, created["api_key"]) as http:
            assert (await http.get("/entity-types")).status_code == 200
        listed = (await client.get("/api-keys")).json()["items"]
        assert next(k for k in listed if k["id"] == created["id"])["last_used_at"] is not None

    async def test_revoked_key_is_401(self, app: FastAPI, client: httpx.AsyncClient) -> None:
        created = (await client.post("/api-keys", json={"name": "tmp", "role": "editor"})).json()
        assert (await client.delete(f"/api-keys/{created['id']}")).status_code == 204
        async with make_client(app, created["api_key"]) as http:
            assert (await http.get("/entity-types")).status_code == 401

    async def test_editor_writes_data_but_cannot_manage_keys(self, app: FastAPI, client: httpx.AsyncClient) -> None:
        created = (await client.post("/api-keys", json={"name": "ed", "role": "editor"})).json()
        async with make_client(app, created["api_key"]) as editor:
            assert (await editor.post("/entity-types", json={"code": "deal", "title": "Deal"})).status_code == 201
            assert (await editor.get("/api-keys")).status_code == 403
            assert (await editor.post("/api-keys", json={"name": "x", "role": "admin"})).status_code == 403

    async def test_bad_role_is_422(self, client: httpx.AsyncClient) -> None:
        response = await client.post("/api-keys", json={"name": "x", "role": "owner"})
        assert response.status_code == 422
        assert response.json()["errors"][0]["field"] == "role"

    async def test_keys_of_another_workspace_are_404(
        self, client: httpx.AsyncClient, other_client: httpx.AsyncClient
    ) -> None:
        created = (await client.post("/api-keys", json={"name": "x", "role": "viewer"})).json()
        assert (await other_client.delete(f"/api-keys/{created['id']}")).status_code == 404
