"""Who may upload and read files: roles, the element a file is bound to, hidden fields, other workspaces."""

from typing import Any

import httpx
from fastapi import FastAPI

from tests.conftest import make_client
from tests.factories import create_element, create_type, created
from tests.files.conftest import upload

PNG = b"\x89PNG\r\n\x1a\n"


async def role_key(client: httpx.AsyncClient, name: str, **role: Any) -> str:
    created(await client.post("/roles", json={"name": name, **role}))
    return str(created(await client.post("/api-keys", json={"name": name, "role": name}))["api_key"])


class TestUpload:
    async def test_a_viewer_cannot_upload(self, viewer_client: httpx.AsyncClient) -> None:
        response = await viewer_client.post("/files", files={"file": ("a.txt", b"a", "text/plain")})
        assert response.status_code == 403, response.text
        assert response.json()["type"].endswith("/forbidden")

    async def test_a_role_that_adds_elements_may_upload_one_that_only_reads_may_not(
        self, app: FastAPI, client: httpx.AsyncClient, docs: dict[str, Any]
    ) -> None:
        adder = await role_key(
            client, "Deal desk", level="viewer", grants=[{"entity_type": "deal", "read": "own", "add": "all"}]
        )
        reader = await role_key(client, "Deal reader", level="viewer", grants=[{"entity_type": "deal", "read": "all"}])
        async with make_client(app, adder) as desk, make_client(app, reader) as readers:
            assert (await desk.post("/files", files={"file": ("a.png", PNG, "image/png")})).status_code == 201
            assert (await readers.post("/files", files={"file": ("a.png", PNG, "image/png")})).status_code == 403

    async def test_no_key_no_upload(self, app: FastAPI) -> None:
        async with make_client(app, None) as anonymous:
            assert (await anonymous.post("/files", files={"file": ("a.txt", b"a", "text/plain")})).status_code == 401


class TestRead:
    async def test_reading_a_bound_file_needs_read_on_its_element_and_field(
        self, app: FastAPI, client: httpx.AsyncClient, docs: dict[str, Any]
    ) -> None:
        await create_type(client, "note")
        photo = await upload(client, PNG, "p.png", "image/png")
        loose = await upload(client, b"loose")
        element = await create_element(client, "deal", title="x", values={"photo": photo["id"]})
        others = await role_key(client, "Notes only", grants=[{"entity_type": "note", "read": "all", "add": "all"}])
        hiding = await role_key(
            client,
            "Deals without photos",
            grants=[{"entity_type": "deal", "read": "all"}],
            field_rules=[{"entity_type": "deal", "field": "photo", "access": "hidden"}],
        )
        readers = await role_key(client, "Deal readers", grants=[{"entity_type": "deal", "read": "all"}])
        async with (
            make_client(app, others) as notes,
            make_client(app, hiding) as hidden,
            make_client(app, readers) as deal,
        ):
            for http in (notes, hidden):
                assert (await http.get(f"/files/{photo['id']}")).status_code == 404
                assert (await http.get(f"/files/{photo['id']}/url")).status_code == 404
                # A file no element holds yet is the workspace's.
                assert (await http.get(f"/files/{loose['id']}")).status_code == 200
            assert (await hidden.get(f"/elements/{element['id']}")).json()["values"] == {}
            shown = await deal.get(f"/files/{photo['id']}")
            assert shown.status_code == 200
            assert shown.json()["element_id"] == element["id"]
            assert (await deal.get(f"/files/{photo['id']}/url")).status_code == 200

    async def test_another_workspaces_file_is_404_everywhere(
        self, client: httpx.AsyncClient, other_client: httpx.AsyncClient
    ) -> None:
        file = await upload(client)
        for path in (f"/files/{file['id']}", f"/files/{file['id']}/url"):
            assert (await other_client.get(path)).status_code == 404
