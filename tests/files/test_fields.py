"""The `file` field kind: its settings, and the files an element's value may name (checked on every write path)."""

import uuid
from typing import Any

import httpx
from fastapi import FastAPI
from sqlalchemy import select

from app.automation import runner
from app.db import unit_of_work
from app.kit import background
from app.outbox.models import OutboxEvent
from app.settings import Settings
from tests.conftest import Tenant
from tests.factories import create_element, create_field, create_type, created
from tests.files.conftest import stored, upload
from tests.security.test_stored_errors import NoWaker

PNG = b"\x89PNG\r\n\x1a\n" + b"0" * 100


def errors(response: httpx.Response) -> dict[str, str]:
    assert response.status_code == 422, response.text
    return {e["field"]: e["message"] for e in response.json()["errors"]}


class TestFieldSettings:
    async def test_a_file_field_keeps_its_limits(self, client: httpx.AsyncClient, docs: dict[str, Any]) -> None:
        fields = {f["code"]: f for f in (await client.get("/entity-types/deal/fields")).json()["items"]}
        assert fields["photo"]["type"] == "file"
        assert fields["photo"]["max_size_bytes"] == 1000
        assert fields["photo"]["allowed_mime_types"] == ["image/*"]
        assert fields["attachments"]["multiple"] is True
        assert fields["attachments"]["max_size_bytes"] is None
        changed = await client.patch(
            "/entity-types/deal/fields/photo", json={"max_size_bytes": 2000, "allowed_mime_types": ["IMAGE/PNG"]}
        )
        assert changed.status_code == 200, changed.text
        assert (changed.json()["max_size_bytes"], changed.json()["allowed_mime_types"]) == (2000, ["image/png"])

    async def test_limits_only_on_file_fields_and_well_formed(
        self, client: httpx.AsyncClient, docs: dict[str, Any]
    ) -> None:
        wrong = await client.post(
            "/entity-types/deal/fields", json={"code": "note", "type": "string", "max_size_bytes": 10}
        )
        assert errors(wrong) == {"max_size_bytes": "only file fields take max_size_bytes"}
        bad = await client.post(
            "/entity-types/deal/fields",
            json={"code": "scan", "type": "file", "allowed_mime_types": ["pdf", "a/b/c"], "max_size_bytes": 0},
        )
        assert set(errors(bad)) == {"allowed_mime_types.0", "allowed_mime_types.1", "max_size_bytes"}
        too_many = await client.post(
            "/entity-types/deal/fields",
            json={"code": "scan", "type": "file", "allowed_mime_types": [f"image/x{i}" for i in range(51)]},
        )
        assert too_many.status_code == 422
        default = await client.post("/entity-types/deal/fields", json={"code": "scan", "type": "file", "default": "x"})
        assert errors(default) == {"default": "file fields take no default"}

    async def test_not_sortable_and_only_presence_filters(
        self, client: httpx.AsyncClient, docs: dict[str, Any]
    ) -> None:
        photo = await upload(client, PNG, "a.png", "image/png")
        with_photo = await create_element(client, "deal", title="with", values={"photo": photo["id"]})
        await create_element(client, "deal", title="without")
        sort = await client.get("/entity-types/deal/elements", params={"sort": "photo"})
        assert errors(sort) == {"sort": "field 'photo' (file) cannot be sorted on"}
        equal = await client.post(
            "/entity-types/deal/elements/search", json={"filter": {"field": "photo", "op": "eq", "value": photo["id"]}}
        )
        assert list(errors(equal).values()) == ["'eq' does not apply to file field 'photo' (is_null)"]
        for is_null, titles in ((False, ["with"]), (True, ["without"])):
            found = await client.post(
                "/entity-types/deal/elements/search",
                json={"filter": {"field": "photo", "op": "is_null", "value": is_null}},
            )
            assert [e["title"] for e in found.json()["items"]] == titles
        assert with_photo["values"] == {"photo": photo["id"]}


class TestValues:
    async def test_size_mime_and_multiple_are_enforced_on_every_write(
        self, app: FastAPI, tenant: Tenant, client: httpx.AsyncClient, docs: dict[str, Any]
    ) -> None:
        big = await upload(client, b"0" * 1001, "big.png", "image/png")
        pdf = await upload(client, b"%PDF-1.7", "a.pdf", "application/pdf")
        text = await upload(client, b"plain", "a.txt", "text/plain")
        png = await upload(client, PNG, "a.png", "image/png")
        refused = await client.post(
            "/entity-types/deal/elements",
            json={"title": "x", "values": {"photo": big["id"], "attachments": [pdf["id"], text["id"], pdf["id"]]}},
        )
        assert errors(refused) == {
            "values.photo": f"file {big['id']} has 1001 bytes, over the field's limit of 1000",
            "values.attachments[1]": f"file {text['id']} is text/plain, not one of the field's types "
            "(application/pdf, image/*)",
            "values.attachments[2]": f"file {pdf['id']} is named more than once",
        }
        as_list = await client.post(
            "/entity-types/deal/elements", json={"title": "x", "values": {"photo": [png["id"]]}}
        )
        assert errors(as_list) == {"values.photo": "takes a single value, not a list"}
        unknown = uuid.uuid4()
        missing = await client.post(
            "/entity-types/deal/elements", json={"title": "x", "values": {"photo": str(unknown)}}
        )
        assert errors(missing) == {"values.photo": f"file {unknown} not found"}
        element = await create_element(
            client, "deal", title="ok", values={"photo": png["id"], "attachments": [pdf["id"], big["id"]]}
        )
        assert element["values"] == {"photo": png["id"], "attachments": [pdf["id"], big["id"]]}
        assert (await client.get(f"/files/{png['id']}")).json()["element_id"] == element["id"]
        # The batch path checks the same way, item by item.
        batch = await client.post(
            "/entity-types/deal/elements/batch",
            json={
                "items": [
                    {"op": "create", "data": {"title": "b", "values": {"photo": text["id"]}}},
                    {"op": "update", "id": element["id"], "data": {"values": {"photo": big["id"]}}},
                ]
            },
        )
        assert set(errors(batch)) == {"items[0].values.photo", "items[1].values.photo"}

    async def test_a_file_belongs_to_one_element(self, client: httpx.AsyncClient, docs: dict[str, Any]) -> None:
        png = await upload(client, PNG, "a.png", "image/png")
        first = await create_element(client, "deal", title="first", values={"photo": png["id"]})
        second = await client.post(
            "/entity-types/deal/elements", json={"title": "second", "values": {"photo": png["id"]}}
        )
        assert errors(second) == {"values.photo": f"file {png['id']} belongs to another element"}
        again = await client.patch(
            f"/elements/{first['id']}", json={"title": "renamed", "values": {"photo": png["id"]}}
        )
        assert again.status_code == 200, again.text  # its own element may name it again
        elsewhere = await client.patch(f"/elements/{first['id']}", json={"values": {"attachments": [png["id"]]}})
        assert errors(elsewhere) == {"values.attachments[0]": f"file {png['id']} is in another field of this element"}
        moved = await client.patch(
            f"/elements/{first['id']}", json={"values": {"photo": None, "attachments": [png["id"]]}}
        )
        assert moved.status_code == 200, moved.text
        assert moved.json()["values"] == {"attachments": [png["id"]]}
        assert (await client.get(f"/files/{png['id']}")).status_code == 200

    async def test_a_file_taken_out_of_a_value_is_purged(
        self, app: FastAPI, tenant: Tenant, client: httpx.AsyncClient, docs: dict[str, Any]
    ) -> None:
        kept, dropped = (
            await upload(client, b"%PDF-1", "k.pdf", "application/pdf"),
            await upload(client, b"%PDF-2", "d.pdf", "application/pdf"),
        )
        element = await create_element(client, "deal", title="x", values={"attachments": [kept["id"], dropped["id"]]})
        changed = await client.patch(f"/elements/{element['id']}", json={"values": {"attachments": [kept["id"]]}})
        assert changed.status_code == 200, changed.text
        await background.drain()
        assert (await client.get(f"/files/{dropped['id']}")).status_code == 404
        assert not await stored(app, tenant.workspace_id, dropped["id"])
        assert await stored(app, tenant.workspace_id, kept["id"])
        reuse = await client.patch(f"/elements/{element['id']}", json={"values": {"attachments": [dropped["id"]]}})
        assert errors(reuse) == {"values.attachments[0]": f"file {dropped['id']} not found"}

    async def test_another_workspaces_file_is_never_bound(
        self, client: httpx.AsyncClient, other_client: httpx.AsyncClient, docs: dict[str, Any]
    ) -> None:
        theirs = await upload(other_client, PNG, "theirs.png", "image/png")
        refused = await client.post(
            "/entity-types/deal/elements", json={"title": "x", "values": {"photo": theirs["id"]}}
        )
        assert errors(refused) == {"values.photo": f"file {theirs['id']} not found"}
        assert (await other_client.get(f"/files/{theirs['id']}")).json()["element_id"] is None
        assert (await client.get(f"/files/{theirs['id']}")).status_code == 404

    async def test_deleting_the_field_purges_its_files(
        self, app: FastAPI, tenant: Tenant, client: httpx.AsyncClient, docs: dict[str, Any]
    ) -> None:
        png = await upload(client, PNG, "a.png", "image/png")
        await create_element(client, "deal", title="x", values={"photo": png["id"]})
        assert (await client.delete("/entity-types/deal/fields/photo")).status_code == 204
        await background.drain()
        assert (await client.get(f"/files/{png['id']}")).status_code == 404
        assert not await stored(app, tenant.workspace_id, png["id"])

    async def test_a_tunnel_copy_leaves_the_files_with_the_source(
        self, app: FastAPI, settings: Settings, tenant: Tenant, client: httpx.AsyncClient
    ) -> None:
        await create_type(client, "doc", settings={"pipelines_enabled": True})
        await create_field(client, "doc", "scan", "file")
        await create_field(client, "doc", "note", "string")
        archive = created(
            await client.post(
                "/entity-types/doc/pipelines", json={"title": "Archive", "stages": [{"code": "KEPT", "title": "Kept"}]}
            )
        )
        rule = await client.post(
            "/automation/rules",
            json={
                "name": "Archive a copy",
                "entity_type": "doc",
                "trigger": {"type": "element.created"},
                "condition": {"field": "stage_code", "op": "ne", "value": "KEPT"},
                "actions": [{"type": "move_to_pipeline", "params": {"pipeline_id": archive["id"], "mode": "copy"}}],
            },
        )
        assert rule.status_code == 201, rule.text
        scan = await upload(client, b"scan")
        element = await create_element(client, "doc", title="x", values={"scan": scan["id"], "note": "kept"})
        async with unit_of_work(app.state.sessionmaker) as session:
            event_id = await session.scalar(
                select(OutboxEvent.event_id).where(
                    OutboxEvent.workspace_id == tenant.workspace_id,
                    OutboxEvent.event_type == "element.created",
                    OutboxEvent.element_id == uuid.UUID(element["id"]),
                )
            )
        assert event_id is not None
        await runner.process_event(app.state.sessionmaker, settings, NoWaker(), event_id)
        items = (await client.get("/entity-types/doc/elements", params={"sort": "created_at"})).json()["items"]
        assert [(e["title"], e["stage_code"], e["values"]) for e in items] == [
            ("x", element["stage_code"], {"scan": scan["id"], "note": "kept"}),
            ("x", "KEPT", {"note": "kept"}),
        ]
        assert (await client.get(f"/files/{scan['id']}")).json()["element_id"] == element["id"]
