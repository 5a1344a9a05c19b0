"""An integration written for Bitrix24 with the fast-bitrix24 client, run against Stageflow with only the webhook
URL changed: a smart process, its pipelines and custom fields, a few hundred items added in batches, paged back with
filters and order, moved, updated and deleted, its stage history; and the same data through Stageflow's own REST and
GraphQL."""

from datetime import date, timedelta
from typing import Any

import httpx
import pytest
from fast_bitrix24.server_response import ErrorInServerResponseException
from fastapi import FastAPI

from tests.bitrix.conftest import client, webhook
from tests.conftest import make_tenant

pytestmark = pytest.mark.slow
ITEMS = 240
START = date(2026, 1, 1)


def expected(i: int, etid: int, options: dict[str, int], user: int) -> dict[str, Any]:
    """What item i was written with (the values Bitrix24 answers with, in its formats)."""
    return {
        "title": f"DW-{i:03}",
        "opportunity": float(100 + i),
        "currencyId": "USD",
        "assignedById": user if i % 2 == 0 else None,
        f"ufCrm{etid}_Color": options["red"] if i % 2 else options["blue"],
        f"ufCrm{etid}_Note": f"note {i}",
        f"ufCrm{etid}_Weight": i * 1.5,
        f"ufCrm{etid}_Delivery": f"{(START + timedelta(days=i)).isoformat()}T00:00:00+00:00",
        f"ufCrm{etid}_Exported": "Y" if i % 3 == 0 else "N",
        f"ufCrm{etid}_Price": f"{i}.50|USD",
    }


def written(i: int, etid: int, options: dict[str, int], user: int) -> dict[str, Any]:
    """Item i's `fields` as an integration sends them (numbers as strings, as fast-bitrix24's batches do)."""
    return {
        "title": f"DW-{i:03}",
        "opportunity": str(100 + i),
        "currencyId": "USD",
        **({"assignedById": user} if i % 2 == 0 else {}),
        f"ufCrm{etid}_Color": options["red"] if i % 2 else options["blue"],
        f"UF_CRM_{etid}_NOTE": f"note {i}",
        f"ufCrm{etid}_Weight": i * 1.5,
        f"ufCrm{etid}_Delivery": (START + timedelta(days=i)).isoformat(),
        f"ufCrm{etid}_Exported": i % 3 == 0,  # a bool: fast-bitrix24 sends "True"/"False"
        f"ufCrm{etid}_Price": f"{i}.5|USD",
    }


async def raw(server: str, key: str, method: str, params: dict[str, Any]) -> httpx.Response:
    async with httpx.AsyncClient(timeout=30) as http:
        return await http.post(webhook(server, key) + method, json=params)


@pytest.mark.filterwarnings("ignore:It's better to use get_all")  # crm.item.fields answers one map: call() fits
async def test_a_fast_bitrix24_integration_runs_unchanged(server: str, app: FastAPI) -> None:
    tenant = await make_tenant(app, "bitrix-scenario")
    bx = client(server, tenant.admin_key)
    headers = {"Authorization": f"Bearer {tenant.admin_key}"}
    async with httpx.AsyncClient(base_url=f"{server}/api/v1", headers=headers, timeout=30) as rest:
        person = await rest.post("/users", json={"name": "Anna Petrova", "email": "anna@example.com"})
        assert person.status_code == 201, person.text
    people = await bx.get_all("user.get")
    anna = int(next(p for p in people if p["EMAIL"] == "anna@example.com")["ID"])

    # --- the smart process, its pipelines and fields ---------------------------------------------------------
    created = await bx.call(
        "crm.type.add", {"fields": {"title": "Dishwashers", "isCategoriesEnabled": True, "isRecyclebinEnabled": "N"}}
    )
    etid = created["entityTypeId"]
    assert etid >= 128
    assert created["id"] == etid
    assert created["isCategoriesEnabled"] == "Y"
    assert created["isRecyclebinEnabled"] == "N"
    assert created["isStagesEnabled"] == "Y"
    assert created["code"] == "dishwashers"
    again = await bx.call("crm.type.get", {"id": etid})
    assert again["title"] == "Dishwashers"
    assert etid in [t["entityTypeId"] for t in await bx.get_all("crm.type.list")]

    categories = await bx.get_all("crm.category.list", {"entityTypeId": etid})
    assert len(categories) == 1
    assert categories[0]["isDefault"] == "Y"
    main = categories[0]["id"]
    export = await bx.call("crm.category.add", {"entityTypeId": etid, "fields": {"name": "Export", "sort": 500}})
    assert export["name"] == "Export"
    assert export["isDefault"] == "N"
    assert export["entityTypeId"] == etid
    export_id = export["id"]
    assert {c["id"] for c in await bx.get_all("crm.category.list", {"entityTypeId": etid})} == {main, export_id}

    stages = await bx.get_all("crm.status.list", {"filter": {"ENTITY_ID": f"DYNAMIC_{etid}_STAGE_{main}"}})
    assert [s["STATUS_ID"] for s in sorted(stages, key=lambda s: int(s["SORT"]))] == [
        f"DT{etid}_{main}:NEW",
        f"DT{etid}_{main}:IN_PROGRESS",
        f"DT{etid}_{main}:SUCCESS",
        f"DT{etid}_{main}:FAIL",
    ]
    assert {s["STATUS_ID"].rsplit(":")[1]: s["SEMANTICS"] for s in stages} == {
        "NEW": None,
        "IN_PROGRESS": None,
        "SUCCESS": "S",
        "FAIL": "F",
    }
    assert {s["ENTITY_ID"] for s in stages} == {f"DYNAMIC_{etid}_STAGE_{main}"}

    entity = f"CRM_{etid}"

    async def add_field(name: str, user_type: str, **extra: Any) -> dict[str, Any]:
        field = {"entityId": entity, "fieldName": f"UF_CRM_{etid}_{name}", "userTypeId": user_type, **extra}
        result: dict[str, Any] = await bx.call("userfieldconfig.add", {"moduleId": "crm", "field": field})
        return result

    color = await add_field(
        "COLOR",
        "enumeration",
        editFormLabel={"en": "Colour"},
        enum=[{"value": "Red", "xmlId": "red", "sort": 10}, {"value": "Blue", "xmlId": "blue", "sort": 20}],
    )
    assert color["fieldName"] == f"UF_CRM_{etid}_COLOR"
    assert color["editFormLabel"] == {"en": "Colour"}
    options = {option["xmlId"]: option["id"] for option in color["enum"]}
    assert set(options) == {"red", "blue"}
    await add_field("NOTE", "string")
    await add_field("WEIGHT", "double")
    await add_field("DELIVERY", "date")
    await add_field("EXPORTED", "boolean")
    await add_field("PRICE", "money")
    link = await add_field("PARENT", "crm", settings={f"DYNAMIC_{etid}": "Y"})
    assert link["userTypeId"] == "crm"
    listed = await bx.get_all("userfieldconfig.list", {"moduleId": "crm", "filter": {"entityId": entity}})
    assert [f["fieldName"].rsplit("_", 1)[1] for f in listed] == [
        "COLOR",
        "NOTE",
        "WEIGHT",
        "DELIVERY",
        "EXPORTED",
        "PRICE",
        "PARENT",
    ]
    fields = await bx.call("crm.item.fields", {"entityTypeId": etid})
    assert fields[f"ufCrm{etid}_Color"]["type"] == "enumeration"
    assert fields["stageId"]["type"] == "crm_status"

    # --- a few hundred items, added in batches ---------------------------------------------------------------
    added = await bx.call(
        "crm.item.add", [{"entityTypeId": etid, "fields": written(i, etid, options, anna)} for i in range(ITEMS)]
    )
    assert len(added) == ITEMS
    by_title = {item["title"]: item for item in added}
    assert len(by_title) == ITEMS
    ids = {int(title[3:]): item["id"] for title, item in by_title.items()}
    assert len(set(ids.values())) == ITEMS
    for i, item in ((int(t[3:]), v) for t, v in by_title.items()):
        assert {k: item[k] for k in expected(i, etid, options, anna)} == expected(i, etid, options, anna)
        assert item["stageId"] == f"DT{etid}_{main}:NEW"
        assert item["categoryId"] == main
        assert item["entityTypeId"] == etid

    # --- paged back, whole and filtered ----------------------------------------------------------------------
    everything = await bx.get_all("crm.item.list", {"entityTypeId": etid})
    assert len(everything) == ITEMS
    for item in everything:
        i = int(item["title"][3:])
        assert item["id"] == ids[i]
        assert {k: item[k] for k in expected(i, etid, options, anna)} == expected(i, etid, options, anna)

    first_page = (await raw(server, tenant.admin_key, "crm.item.list", {"entityTypeId": etid})).json()
    assert len(first_page["result"]["items"]) == 50
    assert first_page["total"] == ITEMS
    assert first_page["next"] == 50
    last_page = (
        await raw(
            server, tenant.admin_key, "crm.item.list", {"entityTypeId": etid, "start": 200, "order": {"id": "asc"}}
        )
    ).json()
    assert len(last_page["result"]["items"]) == ITEMS - 200
    assert "next" not in last_page
    assert [item["id"] for item in last_page["result"]["items"]] == sorted(ids.values())[200:]

    async def titles(filter_: dict[str, Any]) -> set[int]:
        found = await bx.get_all("crm.item.list", {"entityTypeId": etid, "filter": filter_, "select": ["id", "title"]})
        return {int(item["title"][3:]) for item in found}

    everyone = set(range(ITEMS))
    assert await titles({f"=ufCrm{etid}_Color": options["red"]}) == {i for i in everyone if i % 2}
    assert await titles({"!assignedById": anna}) == {i for i in everyone if i % 2}
    assert await titles({">opportunity": "300"}) == {i for i in everyone if 100 + i > 300}
    # The batches ran concurrently: ids follow the order of the writes, not of the titles.
    assert await titles({">=id": str(ids[230])}) == {i for i in everyone if ids[i] >= ids[230]}  # sent as a string
    assert await titles({"<id": ids[3]}) == {i for i in everyone if ids[i] < ids[3]}
    assert await titles({"<=opportunity": "109.0"}) == set(range(10))
    assert await titles({"%title": "DW-01"}) == set(range(10, 20))
    assert await titles({"@id": [ids[5], ids[7], ids[9]]}) == {5, 7, 9}
    assert await titles({f"ufCrm{etid}_Exported": "Y", "<opportunity": 110}) == {0, 3, 6, 9}
    assert await titles({f">ufCrm{etid}_Delivery": (START + timedelta(days=ITEMS - 3)).isoformat()}) == {
        ITEMS - 2,
        ITEMS - 1,
    }
    or_group = {"0": {"logic": "OR", f"=UF_CRM_{etid}_NOTE": "note 5", ">opportunity": str(100 + ITEMS - 4)}}
    assert await titles(or_group) == {5, ITEMS - 3, ITEMS - 2, ITEMS - 1}

    ordered = await raw(
        server,
        tenant.admin_key,
        "crm.item.list",
        {"entityTypeId": etid, "order": {"OPPORTUNITY": "desc"}, "filter": {"<opportunity": 160}},
    )
    assert [item["title"] for item in ordered.json()["result"]["items"][:3]] == ["DW-059", "DW-058", "DW-057"]
    assert ordered.json()["total"] == 60

    fetched = await bx.get_by_ID("crm.item.get", [ids[1], ids[2]], ID_field_name="id", params={"entityTypeId": etid})
    shown = {int(k): (v.get("item", v)) for k, v in fetched.items()}
    assert shown[ids[1]]["title"] == "DW-001"
    assert shown[ids[2]][f"ufCrm{etid}_Note"] == "note 2"

    # --- move, update, delete --------------------------------------------------------------------------------
    moved = await bx.call(
        "crm.item.update", {"entityTypeId": etid, "id": ids[0], "fields": {"stageId": f"DT{etid}_{main}:IN_PROGRESS"}}
    )
    assert moved["stageId"] == f"DT{etid}_{main}:IN_PROGRESS"
    assert moved["previousStageId"] == f"DT{etid}_{main}:NEW"
    assert moved["title"] == "DW-000"
    tunnelled = await bx.call(
        "crm.item.update",
        {
            "entityTypeId": etid,
            "id": ids[0],
            "fields": {"categoryId": export_id, "stageId": f"DT{etid}_{export_id}:SUCCESS"},
        },
    )
    assert tunnelled["categoryId"] == export_id
    assert tunnelled["stageId"] == f"DT{etid}_{export_id}:SUCCESS"
    assert tunnelled["previousStageId"] == f"DT{etid}_{main}:IN_PROGRESS"
    updated = await bx.call(
        "crm.item.update",
        {"entityTypeId": etid, "id": ids[1], "fields": {"title": "DW-001 renamed", f"ufCrm{etid}_Parent": ids[0]}},
    )
    assert updated["title"] == "DW-001 renamed"
    assert updated[f"ufCrm{etid}_Parent"] == ids[0]
    assert updated[f"ufCrm{etid}_Note"] == "note 1"  # a partial update leaves the rest as it was
    assert updated["opportunity"] == 101.0
    assert updated["assignedById"] is None
    await bx.call("crm.item.delete", {"entityTypeId": etid, "id": ids[2]})
    with pytest.raises(ErrorInServerResponseException):
        await bx.call("crm.item.get", {"entityTypeId": etid, "id": ids[2]})
    assert len(await bx.get_all("crm.item.list", {"entityTypeId": etid})) == ITEMS - 1
    in_export = await bx.get_all("crm.item.list", {"entityTypeId": etid, "filter": {"categoryId": export_id}})
    assert [item["id"] for item in in_export] == [ids[0]]

    history = await bx.get_all("crm.stagehistory.list", {"entityTypeId": etid, "filter": {"OWNER_ID": ids[0]}})
    assert [(h["TYPE_ID"], h["STAGE_ID"], h["CATEGORY_ID"]) for h in history] == [
        (1, f"DT{etid}_{main}:NEW", main),
        (2, f"DT{etid}_{main}:IN_PROGRESS", main),
        (3, f"DT{etid}_{export_id}:SUCCESS", export_id),
    ]
    assert history[2]["STAGE_SEMANTIC_ID"] == "S"
    assert {h["OWNER_ID"] for h in history} == {ids[0]}
    finals = await bx.get_all("crm.stagehistory.list", {"entityTypeId": etid, "filter": {"TYPE_ID": 3}})
    assert [h["OWNER_ID"] for h in finals] == [ids[0]]

    # --- batch with references -------------------------------------------------------------------------------
    answered = await bx.call_batch(
        {
            "halt": 0,
            "cmd": {
                "new": f"crm.item.add?entityTypeId={etid}&fields[title]=Batch%20made&fields[opportunity]=7",
                "read": f"crm.item.get?entityTypeId={etid}&id=$result[new][item][id]",
                "copy": f"crm.item.add?entityTypeId={etid}&fields[title]=Copy%20of%20$result[new][item][title]",
            },
        }
    )
    assert answered["read"]["item"]["id"] == answered["new"]["item"]["id"]
    assert answered["read"]["item"]["opportunity"] == 7.0
    assert answered["copy"]["item"]["title"] == "Copy of Batch made"

    # --- the same data through Stageflow's own REST and GraphQL ----------------------------------------------
    async with httpx.AsyncClient(base_url=server, headers=headers, timeout=30) as http:
        code = created["code"]
        listed_rest = await http.get(
            f"/api/v1/entity-types/{code}/elements",
            params={"filter": '{"field": "title", "op": "eq", "value": "DW-001 renamed"}'},
        )
        assert listed_rest.status_code == 200, listed_rest.text
        [element] = listed_rest.json()["items"]
        assert element["amount"] == 101.0
        assert element["values"]["color"] == "red"
        assert element["values"]["note"] == "note 1"
        assert element["values"]["weight"] == 1.5
        assert element["values"]["delivery"] == "2026-01-02"
        assert element["values"]["exported"] is False
        assert element["values"]["price"] == 1.5
        assert element["stage_code"] == "NEW"
        query = """query($type: String!, $filter: JSON) { elements(type: $type, filter: $filter, first: 5) {
            totalCount edges { node { title stage { code } values } } } }"""
        success = {"field": "stage_code", "op": "eq", "value": "SUCCESS"}
        answer = await http.post("/graphql", json={"query": query, "variables": {"type": code, "filter": success}})
        assert answer.status_code == 200, answer.text
        nodes = answer.json()["data"]["elements"]["edges"]
        assert [n["node"]["title"] for n in nodes] == ["DW-000"]
        assert nodes[0]["node"]["values"]["note"] == "note 0"
        counting = "query($type: String!) { elements(type: $type) { totalCount } }"
        counted = await http.post("/graphql", json={"query": counting, "variables": {"type": code}})
        assert counted.json()["data"]["elements"]["totalCount"] == ITEMS + 1  # one deleted, two added by the batch
