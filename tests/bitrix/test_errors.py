"""Every error of the facade's contract is a 4xx in Bitrix24's shape, never a 5xx; one workspace's key never sees
another's types or items; a viewer key reads but does not write."""

from typing import Any

import httpx
import pytest
from aiohttp import ClientResponseError
from fastapi import FastAPI

from tests.bitrix.conftest import client, webhook
from tests.conftest import make_client, make_tenant

pytestmark = pytest.mark.slow


async def post(server: str, key: str, method: str, **kwargs: Any) -> httpx.Response:
    async with httpx.AsyncClient(timeout=30) as http:
        return await http.post(webhook(server, key) + method, **kwargs)


def refused(response: httpx.Response, status: int, error: str | None = None) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    body: dict[str, Any] = response.json()
    assert set(body) == {"error", "error_description"}, body
    assert body["error_description"]
    if error is not None:
        assert body["error"] == error, body
    return body


@pytest.fixture(scope="module")
async def smart(server: str, app: FastAPI) -> dict[str, Any]:
    """A workspace with a smart process, a field and one item."""
    tenant = await make_tenant(app, "bitrix-errors")
    key = tenant.admin_key
    made = (await post(server, key, "crm.type.add", json={"fields": {"title": "Tickets"}})).json()["result"]["type"]
    etid = made["entityTypeId"]
    field = {"entityId": f"CRM_{etid}", "fieldName": "SIZE", "userTypeId": "integer"}
    assert (await post(server, key, "userfieldconfig.add", json={"field": field})).status_code == 200
    item = await post(server, key, "crm.item.add", json={"entityTypeId": etid, "fields": {"title": "one"}})
    return {"key": key, "etid": etid, "item": item.json()["result"]["item"]["id"], "app": app}


class TestTransport:
    async def test_wrong_key_is_401(self, server: str, smart: dict[str, Any]) -> None:
        refused(await post(server, "sf_000000000000_nope", "crm.type.list"), 401, "INVALID_CREDENTIALS")
        refused(await post(server, "not-a-key", "crm.type.list"), 401)

    async def test_unknown_method(self, server: str, smart: dict[str, Any]) -> None:
        refused(await post(server, smart["key"], "crm.deal.frobnicate"), 404, "ERROR_METHOD_NOT_FOUND")
        async with httpx.AsyncClient(timeout=30) as http:
            refused(await http.post(f"{server}/rest/1/{smart['key']}/"), 404, "ERROR_METHOD_NOT_FOUND")

    async def test_method_names_query_strings_and_forms(self, server: str, smart: dict[str, Any]) -> None:
        key, etid = smart["key"], smart["etid"]
        for method in ("CRM.Item.List.json", "crm.item.list"):
            listed = await post(server, key, f"{method}?entityTypeId={etid}&select%5B%5D=id&unknown=1")
            assert listed.status_code == 200, listed.text
            assert listed.json()["result"]["items"] == [{"id": smart["item"]}]
            assert listed.json()["total"] == 1
            assert "next" not in listed.json()
            assert set(listed.json()["time"]) >= {"start", "finish", "duration", "operating"}
        form = await post(server, key, "crm.item.get", data={"entityTypeId": str(etid), "id": str(smart["item"])})
        assert form.json()["result"]["item"]["title"] == "one"
        async with httpx.AsyncClient(timeout=30) as http:
            got = await http.get(webhook(server, key) + f"crm.item.get?entityTypeId={etid}&id={smart['item']}")
        assert got.json()["result"]["item"]["id"] == smart["item"]

    async def test_malformed_bodies(self, server: str, smart: dict[str, Any]) -> None:
        key = smart["key"]
        json_type = {"content-type": "application/json"}
        refused(await post(server, key, "crm.type.list", content=b"{not json", headers=json_type), 400)
        refused(await post(server, key, "crm.type.list", content=b"[1, 2]", headers=json_type), 400)
        form = {"content-type": "application/x-www-form-urlencoded"}
        refused(await post(server, key, "crm.type.list", content=b"a=%FF%FE", headers=form), 400)
        deep = "filter" + "[a]" * 40 + "=1"
        refused(await post(server, key, "crm.item.list", content=deep.encode(), headers=form), 400)
        nested: Any = 1
        for _ in range(60):
            nested = {"a": nested}
        refused(await post(server, key, "crm.item.list", json={"filter": nested}), 400)

    async def test_a_5xx_never_reaches_the_client(self, server: str, smart: dict[str, Any]) -> None:
        """fast-bitrix24 gets a 4xx at once (a 5xx it would retry for a quarter of a minute)."""
        with pytest.raises(ClientResponseError) as caught:
            await client(server, smart["key"]).call("crm.item.list", {"entityTypeId": "x"}, raw=True)
        assert caught.value.status == 400


class TestArguments:
    async def test_bad_ids(self, server: str, smart: dict[str, Any]) -> None:
        key, etid = smart["key"], smart["etid"]
        refused(await post(server, key, "crm.item.get", json={"entityTypeId": etid, "id": "abc"}), 400)
        refused(await post(server, key, "crm.item.get", json={"entityTypeId": etid, "id": 10**12}), 400, "NOT_FOUND")
        refused(await post(server, key, "crm.item.get", json={"entityTypeId": etid}), 400, "ERROR_ARGUMENT")
        refused(await post(server, key, "crm.item.list", json={"entityTypeId": 5}), 400, "NOT_FOUND")
        refused(await post(server, key, "crm.type.get", json={"id": [1, 2]}), 400)
        refused(await post(server, key, "crm.category.get", json={"entityTypeId": etid, "id": 999}), 400, "NOT_FOUND")
        refused(await post(server, key, "userfieldconfig.get", json={"id": 999_999}), 400, "NOT_FOUND")
        stage = {"stageId": f"DT{etid}_999:NEW"}
        refused(
            await post(
                server, key, "crm.item.update", json={"entityTypeId": etid, "id": smart["item"], "fields": stage}
            ),
            400,
        )

    async def test_unknown_filter_fields_and_bad_orders(self, server: str, smart: dict[str, Any]) -> None:
        key, etid = smart["key"], smart["etid"]
        listing = {"entityTypeId": etid}
        refused(await post(server, key, "crm.item.list", json={**listing, "filter": {">nope": 1}}), 400)
        refused(await post(server, key, "crm.item.list", json={**listing, "filter": {"%opportunity": "1"}}), 400)
        refused(await post(server, key, "crm.item.list", json={**listing, "filter": {">stageId": "x"}}), 400)
        refused(await post(server, key, "crm.item.list", json={**listing, "order": {"id": "sideways"}}), 400)
        refused(await post(server, key, "crm.item.list", json={**listing, "order": {"nope": "asc"}}), 400)
        refused(await post(server, key, "crm.item.list", json={**listing, "filter": "id=1"}), 400)
        refused(await post(server, key, "crm.status.list", json={"filter": {"NOPE": 1}}), 400)
        history = {"entityTypeId": etid, "filter": {"NOPE": 1}}
        refused(await post(server, key, "crm.stagehistory.list", json=history), 400)

    async def test_bad_values(self, server: str, smart: dict[str, Any]) -> None:
        key, etid = smart["key"], smart["etid"]
        for fields in (
            {"opportunity": "lots"},
            {"opportunity": "1.005"},
            {f"ufCrm{etid}_Size": "big"},
            {"currencyId": "dollars"},
            {"begindate": "yesterday"},
            {"assignedById": 424242},
        ):
            refused(await post(server, key, "crm.item.add", json={"entityTypeId": etid, "fields": fields}), 400)
        refused(
            await post(server, key, "crm.type.add", json={"fields": {"title": "X", "isStagesEnabled": "maybe"}}), 400
        )
        refused(await post(server, key, "crm.type.add", json={"fields": {}}), 400, "ERROR_ARGUMENT")

    async def test_type_delete_is_refused_while_items_exist(self, server: str, smart: dict[str, Any]) -> None:
        refused(await post(server, smart["key"], "crm.type.delete", json={"id": smart["etid"]}), 400, "ERROR_CONFLICT")

    async def test_writes_are_audited_and_reads_are_not(self, server: str, smart: dict[str, Any]) -> None:
        async with make_client(smart["app"], smart["key"]) as rest:
            entries = (await rest.get("/audit", params={"limit": 200})).json()["items"]
        actions = [e["action"] for e in entries]
        assert "bitrix crm.item.add" in actions
        assert "bitrix crm.type.add" in actions
        assert not [a for a in actions if a.endswith((".list", ".get"))]


class TestBatch:
    async def test_51_commands_run_none(self, server: str, smart: dict[str, Any]) -> None:
        key, etid = smart["key"], smart["etid"]
        before = (await post(server, key, "crm.item.list", json={"entityTypeId": etid})).json()["total"]
        commands = {f"c{i}": f"crm.item.add?entityTypeId={etid}&fields[title]=b{i}" for i in range(51)}
        refused(await post(server, key, "batch", json={"cmd": commands}), 400, "ERROR_BATCH_LENGTH_EXCEEDED")
        after = (await post(server, key, "crm.item.list", json={"entityTypeId": etid})).json()["total"]
        assert after == before

    async def test_errors_halt_and_numeric_labels(self, server: str, smart: dict[str, Any]) -> None:
        key, etid = smart["key"], smart["etid"]
        commands = [
            f"crm.item.get?entityTypeId={etid}&id={smart['item']}",
            f"crm.item.get?entityTypeId={etid}&id=0",
            "no.such.method",
            f"crm.item.list?entityTypeId={etid}&select[]=id",
        ]
        answer = (await post(server, key, "batch", json={"halt": 0, "cmd": commands})).json()["result"]
        assert answer["result"]["0"]["item"]["id"] == smart["item"]
        assert set(answer["result"]) == {"0", "3"}
        assert answer["result_error"]["1"]["error"] == "NOT_FOUND"
        assert answer["result_error"]["2"]["error"] == "ERROR_METHOD_NOT_FOUND"
        assert answer["result_total"] == {"3": 1}
        halted = (await post(server, key, "batch", json={"halt": 1, "cmd": commands})).json()["result"]
        assert halted["result"] == [{"item": halted["result"][0]["item"]}]
        assert set(halted["result_error"]) == {"1"}
        clean = (await post(server, key, "batch", json={"cmd": commands[:1]})).json()["result"]
        assert isinstance(clean["result"], list)
        assert clean["result_error"] == []

    async def test_a_failed_command_leaves_nothing(self, server: str, smart: dict[str, Any]) -> None:
        key, etid = smart["key"], smart["etid"]
        commands = {
            "good": f"crm.item.add?entityTypeId={etid}&fields[title]=kept",
            "bad": f"crm.item.add?entityTypeId={etid}&fields[title]=lost&fields[opportunity]=lots",
        }
        answer = (await post(server, key, "batch", json={"cmd": commands})).json()["result"]
        assert answer["result"]["good"]["item"]["title"] == "kept"
        assert answer["result_error"]["bad"]["error"] == "INVALID_ARG_VALUE"
        titles = {"entityTypeId": etid, "filter": {"@title": ["kept", "lost"]}, "select": ["title"]}
        listed = (await post(server, key, "crm.item.list", json=titles)).json()["result"]["items"]
        assert [item["title"] for item in listed] == ["kept"]


class TestAccess:
    async def test_another_workspace_sees_nothing(self, server: str, smart: dict[str, Any]) -> None:
        other = await make_tenant(smart["app"], "bitrix-other")
        key, etid = other.admin_key, smart["etid"]
        mine = (await post(server, key, "crm.type.add", json={"fields": {"title": "Theirs"}})).json()["result"]["type"]
        # Numbers are per workspace, as on a Bitrix24 portal: the other one's first type is 128 as well.
        assert mine["entityTypeId"] == etid == 128
        assert (await post(server, key, "crm.item.list", json={"entityTypeId": etid})).json()["total"] == 0
        got = await post(server, key, "crm.item.get", json={"entityTypeId": etid, "id": smart["item"]})
        refused(got, 400, "NOT_FOUND")
        types = (await post(server, key, "crm.type.list")).json()["result"]["types"]
        assert [t["title"] for t in types] == ["Theirs"]
        refused(await post(server, key, "crm.type.get", json={"id": 129}), 400, "NOT_FOUND")
        updated = {"entityTypeId": etid, "id": smart["item"], "fields": {"title": "hijacked"}}
        refused(await post(server, key, "crm.item.update", json=updated), 400, "NOT_FOUND")
        fields = (await post(server, key, "userfieldconfig.list", json={"moduleId": "crm"})).json()["result"]
        assert fields["fields"] == []
        original = await post(server, smart["key"], "crm.item.get", json={"entityTypeId": etid, "id": smart["item"]})
        assert original.json()["result"]["item"]["title"] == "one"

    async def test_a_viewer_key_reads_but_does_not_write(self, server: str, smart: dict[str, Any]) -> None:
        async with make_client(smart["app"], smart["key"]) as rest:
            viewer = (await rest.post("/api-keys", json={"name": "viewer", "role": "viewer"})).json()["api_key"]
        etid = smart["etid"]
        assert (await post(server, viewer, "crm.item.list", json={"entityTypeId": etid})).json()["total"] >= 1
        added = await post(server, viewer, "crm.item.add", json={"entityTypeId": etid, "fields": {"title": "no"}})
        refused(added, 403, "ACCESS_DENIED")
        refused(await post(server, viewer, "crm.type.add", json={"fields": {"title": "no"}}), 403, "ACCESS_DENIED")
        bind = {"event": "onCrmDynamicItemAdd", "handler": "https://example.com/h"}
        refused(await post(server, viewer, "event.bind", json=bind), 403, "ACCESS_DENIED")
