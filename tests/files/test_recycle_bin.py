"""Files follow their element: into the recycle bin and back, and away with it for good; uploads nobody took are
pruned after FILES_UNBOUND_HOURS."""

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from fastapi import FastAPI

from app.kit import background
from app.retention import service as retention_service
from app.settings import Settings
from tests.conftest import Tenant
from tests.factories import create_element, create_field, create_type
from tests.files.conftest import file_rows, stored, stored_paths, upload

PNG = b"\x89PNG\r\n\x1a\n"


def anonymous(app: FastAPI) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver")


async def test_deleted_element_takes_its_files_to_the_recycle_bin_and_back(
    app: FastAPI, tenant: Tenant, client: httpx.AsyncClient, docs: dict[str, Any]
) -> None:
    photo = await upload(client, PNG, "p.png", "image/png")
    element = await create_element(client, "deal", title="x", values={"photo": photo["id"]})
    link = (await client.get(f"/files/{photo['id']}/url")).json()["url"]
    assert (await client.delete(f"/elements/{element['id']}")).status_code == 204
    await background.drain()
    async with anonymous(app) as http:
        assert (await http.get(link)).status_code == 404  # a link given before is dead while it is in the bin
    assert (await client.get(f"/files/{photo['id']}")).status_code == 404
    assert (await client.get(f"/files/{photo['id']}/url")).status_code == 404
    taken = await client.post("/entity-types/deal/elements", json={"title": "y", "values": {"photo": photo["id"]}})
    assert taken.status_code == 422
    assert taken.json()["errors"] == [
        {"field": "values.photo", "message": f"file {photo['id']} is in the recycle bin with its element"}
    ]
    assert await stored(app, tenant.workspace_id, photo["id"])  # kept, only unreadable

    assert (await client.post(f"/elements/{element['id']}/restore")).status_code == 200
    assert (await client.get(f"/files/{photo['id']}")).status_code == 200
    async with anonymous(app) as http:
        restored = await http.get(link)
    assert restored.status_code == 200
    assert restored.content == PNG


async def test_an_element_deleted_for_good_takes_its_files_bytes_and_rows(
    app: FastAPI, tenant: Tenant, client: httpx.AsyncClient
) -> None:
    await create_type(client, "memo", settings={"recycle_bin_enabled": False})
    await create_field(client, "memo", "scans", "file", multiple=True)
    first, second = await upload(client, b"one"), await upload(client, b"two")
    loose = await upload(client, b"loose")
    element = await create_element(client, "memo", title="x", values={"scans": [first["id"], second["id"]]})
    assert await stored(app, tenant.workspace_id, first["id"])
    assert (await client.delete(f"/elements/{element['id']}")).status_code == 204
    await background.drain()
    for file in (first, second):
        assert not await stored(app, tenant.workspace_id, file["id"])
        assert (await client.get(f"/files/{file['id']}")).status_code == 404
    assert await file_rows(app, tenant.workspace_id) == 1  # only the loose upload's row is left
    assert await stored(app, tenant.workspace_id, loose["id"])


async def test_a_type_deleted_with_its_elements_takes_their_files(
    app: FastAPI, tenant: Tenant, settings: Settings, client: httpx.AsyncClient, docs: dict[str, Any]
) -> None:
    photo = await upload(client, PNG, "p.png", "image/png")
    await create_element(client, "deal", title="x", values={"photo": photo["id"]})
    assert (await client.delete("/entity-types/deal", params={"force": "true"})).status_code == 204
    await background.drain()
    assert not await stored(app, tenant.workspace_id, photo["id"])
    assert await file_rows(app, tenant.workspace_id) == 0


async def test_the_retention_pass_prunes_uploads_nobody_took_and_keeps_the_others(
    app: FastAPI, tenant: Tenant, settings: Settings, client: httpx.AsyncClient, docs: dict[str, Any]
) -> None:
    loose = await upload(client, b"never attached")
    photo = await upload(client, PNG, "p.png", "image/png")
    await create_element(client, "deal", title="x", values={"photo": photo["id"]})
    engine = app.state.engine
    soon = await retention_service.prune(engine, settings, workspaces=[tenant.workspace_id])
    assert soon.deleted["files"] == 0
    later = datetime.now(UTC) + timedelta(hours=settings.FILES_UNBOUND_HOURS, minutes=1)
    report = await retention_service.prune(engine, settings, workspaces=[tenant.workspace_id], now=later)
    assert report.deleted["files"] == 1
    assert (await client.get(f"/files/{loose['id']}")).status_code == 404
    assert [p.name for p in stored_paths(app, tenant.workspace_id)] == [photo["id"]]
    assert (await client.get(f"/files/{photo['id']}")).status_code == 200
