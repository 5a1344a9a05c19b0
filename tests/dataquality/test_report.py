"""GET /data-quality/report on generated data whose answers the tests compute on their own."""

import random
import re
import uuid
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from gql import GraphQLRequest
from sqlalchemy import text

from app.dataquality import service
from app.db import unit_of_work
from tests.conftest import Tenant
from tests.dataquality.conftest import KeyedClient
from tests.factories import create_element, create_field, create_type
from tests.graphql.conftest import http_client

N = 48
CODES = ["AB-1", "ABCD-12", "ab-1", "XYZ", "Q-7"]
TAGS = ["ab", "abcd", "xyz", "k"]


def generate(seed: int) -> list[dict[str, Any]]:
    """N element bodies, each field present or not at random."""
    rng = random.Random(seed)
    bodies = []
    for i in range(N):
        values: dict[str, Any] = {}
        if rng.random() > 0.3:
            values["budget"] = rng.randint(-100, 1500)
        if rng.random() > 0.25:
            values["size"] = rng.randint(1, 50)
        if rng.random() > 0.2:
            values["code"] = rng.choice(CODES)
        if rng.random() > 0.2:
            values["kind"] = rng.choice("abc")
        if rng.random() > 0.3:
            values["tags"] = rng.sample(TAGS, rng.randint(1, 3))
        note = rng.random()
        if note > 0.5:
            values["note"] = "text"
        elif note > 0.3:
            values["note"] = "   "
        bodies.append({"title": "" if rng.random() < 0.1 else f"Lead {i}", "values": values})
    return bodies


async def lead_with_rules(app: FastAPI, tenant: Tenant, client: httpx.AsyncClient) -> list[tuple[str, dict[str, Any]]]:
    """The generated leads (id, body) in one batch, then the fields' rules made stricter than their values."""
    await create_type(client, "lead")
    await create_field(client, "lead", "budget", "decimal")
    await create_field(client, "lead", "size", "integer")
    await create_field(client, "lead", "code", "string")
    kind = await create_field(client, "lead", "kind", "enum", options=[{"value": v} for v in "abc"])
    await create_field(client, "lead", "tags", "string", multiple=True)
    await create_field(client, "lead", "note", "text")
    bodies = generate(16)
    response = await client.post(
        "/entity-types/lead/elements/batch", json={"items": [{"op": "create", "data": b} for b in bodies]}
    )
    assert response.status_code == 200, response.text
    ids = [item["id"] for item in response.json()["items"]]
    for code, rules in {
        "budget": {"min": 0, "max": 1000},
        "size": {"required": True},
        "code": {"max_length": 5, "pattern": "[A-Z]+-[0-9]+"},
        "tags": {"max_length": 3},
    }.items():
        assert (await client.patch(f"/entity-types/lead/fields/{code}", json=rules)).status_code == 200
    # An option still in use cannot be removed through the API: as an older version (or an import) would leave it.
    async with unit_of_work(app.state.sessionmaker) as session:
        await session.execute(
            text("DELETE FROM field_options WHERE field_id = :f AND value = 'c'"), {"f": uuid.UUID(kind["id"])}
        )
        await session.execute(
            text("UPDATE workspaces SET metadata_version = metadata_version + 1 WHERE id = :w"),
            {"w": tenant.workspace_id},
        )
    return list(zip(ids, bodies, strict=True))


def expected_breaks(leads: list[tuple[str, dict[str, Any]]]) -> dict[tuple[str, str], list[str]]:
    """Which elements break which rule, computed here with plain Python (the pattern with `re`, not RE2)."""
    tests = {
        ("budget", "min"): lambda v: v.get("budget") is not None and v["budget"] < 0,
        ("budget", "max"): lambda v: v.get("budget") is not None and v["budget"] > 1000,
        ("size", "required"): lambda v: v.get("size") is None,
        ("code", "max_length"): lambda v: v.get("code") is not None and len(v["code"]) > 5,
        ("code", "pattern"): lambda v: v.get("code") is not None and not re.fullmatch("[A-Z]+-[0-9]+", v["code"]),
        ("kind", "option"): lambda v: v.get("kind") == "c",
        ("tags", "max_length"): lambda v: any(len(t) > 3 for t in v.get("tags", [])),
    }
    return {key: sorted(i for i, body in leads if test(body["values"])) for key, test in tests.items()}


def expected_filled(leads: list[tuple[str, dict[str, Any]]]) -> dict[str, int]:
    values = [body["values"] for _, body in leads]
    filled = {code: sum(1 for v in values if v.get(code) not in (None, [])) for code in ("budget", "size", "kind")}
    filled["code"] = sum(1 for v in values if v.get("code"))
    filled["tags"] = sum(1 for v in values if v.get("tags"))
    filled["note"] = sum(1 for v in values if (v.get("note") or "").strip())
    filled["title"] = sum(1 for _, body in leads if body["title"])
    return filled


async def get_report(client: httpx.AsyncClient, type_ref: str = "lead", **params: Any) -> dict[str, Any]:
    response = await client.get("/data-quality/report", params={"entity_type": type_ref, **params})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


class TestFillAndRules:
    async def test_fill_rates_and_rule_breaks_match_the_data(
        self, app: FastAPI, tenant: Tenant, client: httpx.AsyncClient
    ) -> None:
        leads = await lead_with_rules(app, tenant, client)
        report = await get_report(client, examples=3)
        assert report["total"] == N
        fields = {f["field"]: f for f in report["fields"]}
        for code, filled in expected_filled(leads).items():
            assert fields[code]["filled"] == filled, code
            assert fields[code]["fill_rate"] == round(filled / N, 4)
        assert fields["amount"]["filled"] == 0
        assert fields["size"]["required"] is True
        assert fields["title"]["system"] is True
        assert fields["budget"]["system"] is False

        expected = {key: ids for key, ids in expected_breaks(leads).items() if ids}
        found = {(b["field"], b["rule"]): b for b in report["rule_breaks"]}
        assert set(found) == set(expected)
        for key, ids in expected.items():
            rule_break = found[key]
            assert rule_break["count"] == len(ids), key
            # One batch: created at the same moment, so the oldest few are the first ids.
            assert [e["element_id"] for e in rule_break["examples"]] == ids[:3], key
            assert rule_break["complete"] is True
        assert found[("budget", "min")]["detail"] == "min 0"
        assert found[("kind", "option")]["detail"] == "options: a, b"

    async def test_examples_say_what_the_write_path_answers(
        self, app: FastAPI, tenant: Tenant, client: httpx.AsyncClient
    ) -> None:
        await lead_with_rules(app, tenant, client)
        report = await get_report(client, examples=1)
        assert len(report["rule_breaks"]) == 7
        for rule_break in report["rule_breaks"]:
            example = rule_break["examples"][0]
            code = rule_break["field"]
            # Writing the stored value back is refused with the very message the report gives.
            response = await client.patch(
                f"/elements/{example['element_id']}", json={"values": {code: example["value"]}}
            )
            assert response.status_code == 422, response.text
            messages = dict.fromkeys(e["message"] for e in response.json()["errors"])
            assert example["message"] == "; ".join(messages), (code, rule_break["rule"])

    async def test_a_type_with_no_rules_broken_and_no_elements(self, client: httpx.AsyncClient) -> None:
        await create_type(client, "empty", preset="list")
        await create_field(client, "empty", "note", "string", required=True)
        report = await get_report(client, "empty")
        assert report["total"] == 0
        assert report["rule_breaks"] == []
        assert report["duplicates"] == []
        assert {f["field"]: f["fill_rate"] for f in report["fields"]}["note"] == 0.0


async def contacts(client: httpx.AsyncClient) -> list[str]:
    await create_type(client, "contact")
    await create_field(client, "contact", "email", "email")
    await create_field(client, "contact", "emails", "email", multiple=True)
    await create_field(client, "contact", "phone", "phone")
    rows = [
        {"title": "ACME, Inc.", "values": {"email": "Ann@Example.com ", "phone": "+7 916 123-45-67"}},
        {"title": "acme inc", "values": {"email": "ann@example.com", "phone": "8 (916) 123 45 67"}},
        {"title": "Acme   Inc!", "values": {"emails": ["other@x.io", "ANN@example.com"], "phone": "9161234567"}},
        {"title": "ACME North", "values": {"email": "bob@example.com", "phone": "+7 916 123-45-68"}},
        {"title": "John Smith", "values": {"email": "bob@example.org", "phone": "+44 20 7946 0958"}},
        {"title": "Jon Smith", "values": {"phone": "020 7946 0958"}},
        {"title": "Order 12345"},
        {"title": "Order 12346"},
    ]
    return [(await create_element(client, "contact", **row))["id"] for row in rows]


def groups_of(report: dict[str, Any], reason: str) -> list[tuple[str | None, list[str]]]:
    return [(g["key"], g["element_ids"]) for g in report["duplicates"] if g["reason"] == reason]


class TestDuplicates:
    async def test_found_by_email_phone_and_title_and_not_for_distinct_ones(self, client: httpx.AsyncClient) -> None:
        ids = await contacts(client)
        report = await get_report(client, "contact")
        assert groups_of(report, "email") == [("ann@example.com", ids[0:3])]
        assert groups_of(report, "phone") == [("9161234567", ids[0:3]), ("2079460958", [ids[4], ids[5]])]
        assert groups_of(report, "title") == [("acmeinc", ids[0:3])]
        counts = {c["reason"]: c["groups"] for c in report["duplicate_counts"]}
        assert (counts["email"], counts["phone"], counts["title"]) == (1, 2, 1)
        if report["limits"]["similar_titles_window"] is None:
            pytest.skip("no pg_trgm on this server: similar titles are not looked for")
        # "Jon Smith" ~ "John Smith"; "Order 12345" and "Order 12346" have different numbers: two orders.
        assert groups_of(report, "similar_title") == [(None, sorted([ids[4], ids[5]]))]

    async def test_groups_are_bounded_and_counted(self, client: httpx.AsyncClient) -> None:
        await create_type(client, "thing", preset="list")
        items = [{"op": "create", "data": {"title": f"Same {i // 3}"}} for i in range(12)]
        response = await client.post("/entity-types/thing/elements/batch", json={"items": items})
        assert response.status_code == 200, response.text
        report = await get_report(client, "thing", groups=2)
        assert len(groups_of(report, "title")) == 2
        assert {c["reason"]: c["groups"] for c in report["duplicate_counts"]}["title"] == 4
        assert all(g["size"] == 3 and len(g["element_ids"]) == 3 for g in report["duplicates"])
        assert report["limits"]["groups_per_reason"] == 2


class TestBounds:
    async def test_pattern_and_duplicate_windows_say_when_they_cut(
        self, client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setattr(service, "PATTERN_VALUES", 3)
        monkeypatch.setattr(service, "DUPLICATES_WINDOW", 4)
        await create_type(client, "sku", preset="list")
        await create_field(client, "sku", "code", "string")
        titles = ["Old twin", "Old twin", "a", "b", "New twin", "New twin"]
        ids = [(await create_element(client, "sku", title=t, values={"code": "bad"}))["id"] for t in titles]
        assert (await client.patch("/entity-types/sku/fields/code", json={"pattern": "[A-Z]+"})).status_code == 200
        report = await get_report(client, "sku")
        (pattern,) = report["rule_breaks"]
        # The first values read were all "bad": every element holding it is counted, but not all values were read.
        assert (pattern["count"], pattern["complete"]) == (6, False)
        assert report["duplicates_complete"] is False
        assert groups_of(report, "title") == [("newtwin", ids[4:])]  # the old twins are out of the window
        assert report["limits"]["duplicates_window"] == 4


class TestRoles:
    async def test_a_role_sees_only_what_it_may_read_and_no_hidden_field(
        self, client: httpx.AsyncClient, role_client: KeyedClient
    ) -> None:
        await create_type(client, "lead")
        await create_field(client, "lead", "email", "email")
        await create_field(client, "lead", "budget", "integer")
        mine = await role_client(
            name="own leads",
            grants=[{"entity_type": "lead", "read": "own", "add": "all"}],
            field_rules=[{"entity_type": "lead", "field": "email", "access": "hidden"}],
        )
        for i in range(2):
            await create_element(mine, "lead", title="Twin", values={"budget": -i})
        for _ in range(3):
            await create_element(client, "lead", title="Twin", values={"email": "a@b.co", "budget": -5})
        assert (await client.patch("/entity-types/lead/fields/budget", json={"min": 0})).status_code == 200

        admin = await get_report(client)
        assert admin["total"] == 5
        assert {g["reason"]: g["size"] for g in admin["duplicates"]} == {"email": 3, "title": 5}
        assert {(b["field"], b["rule"]): b["count"] for b in admin["rule_breaks"]} == {("budget", "min"): 4}

        own = await get_report(mine)
        assert own["total"] == 2
        assert "email" not in {f["field"] for f in own["fields"]}
        assert {g["reason"]: g["size"] for g in own["duplicates"]} == {"title": 2}
        assert "email" not in {c["reason"] for c in own["duplicate_counts"]}
        assert {(b["field"], b["rule"]): b["count"] for b in own["rule_breaks"]} == {("budget", "min"): 1}

    async def test_no_read_on_the_type_is_404_and_viewer_reads(
        self, client: httpx.AsyncClient, viewer_client: httpx.AsyncClient, role_client: KeyedClient
    ) -> None:
        await create_type(client, "lead")
        await create_type(client, "deal")
        await create_element(client, "lead", title="x")
        outsider = await role_client(name="deals only", grants=[{"entity_type": "deal", "read": "all"}])
        response = await outsider.get("/data-quality/report", params={"entity_type": "lead"})
        assert response.status_code == 404, response.text
        assert response.headers["content-type"] == "application/problem+json"
        configurer = await role_client(
            name="configures", level="editor", grants=[{"entity_type": "deal", "read": "all"}]
        )
        response = await configurer.get("/data-quality/report", params={"entity_type": "lead"})
        assert response.status_code == 403, response.text
        assert (await get_report(viewer_client))["total"] == 1

    async def test_another_workspace_type_is_404(
        self, client: httpx.AsyncClient, other_client: httpx.AsyncClient
    ) -> None:
        lead = await create_type(client, "lead")
        for ref in ("lead", lead["id"]):
            response = await other_client.get("/data-quality/report", params={"entity_type": ref})
            assert response.status_code == 404, response.text


class TestInput:
    @pytest.mark.parametrize(
        "params",
        [{}, {"entity_type": "lead", "examples": 0}, {"entity_type": "lead", "groups": 101}, {"entity_type": ""}],
    )
    async def test_bad_input_is_422(self, client: httpx.AsyncClient, params: dict[str, Any]) -> None:
        await create_type(client, "lead")
        response = await client.get("/data-quality/report", params=params)
        assert response.status_code == 422, response.text
        assert response.json()["errors"]


class TestGraphQL:
    async def test_the_report_over_graphql_is_the_rest_one(
        self, app: FastAPI, tenant: Tenant, client: httpx.AsyncClient
    ) -> None:
        ids = await contacts(client)
        rest = await get_report(client, "contact")
        query = (
            "query($t: String!) { dataQualityReport(entityType: $t, groups: 5) { total "
            "fields { field filled fillRate } duplicates { reason key elementIds } limits { groupsPerReason } } }"
        )
        async with http_client(app, tenant.admin_key) as session:
            data = await session.execute(GraphQLRequest(query, variable_values={"t": "contact"}))
        report = data["dataQualityReport"]
        assert report["total"] == rest["total"] == len(ids)
        assert [(f["field"], f["filled"]) for f in report["fields"]] == [
            (f["field"], f["filled"]) for f in rest["fields"]
        ]
        assert [(d["reason"], d["elementIds"]) for d in report["duplicates"]] == [
            (d["reason"], d["element_ids"]) for d in rest["duplicates"]
        ]
        assert report["limits"]["groupsPerReason"] == 5

    async def test_bad_examples_is_a_validation_error(
        self, app: FastAPI, tenant: Tenant, client: httpx.AsyncClient
    ) -> None:
        await create_type(client, "lead")
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app),
            base_url="http://testserver",
            headers={"Authorization": f"Bearer {tenant.admin_key}"},
        ) as http:
            response = await http.post(
                "/graphql", json={"query": '{ dataQualityReport(entityType: "lead", examples: 99) { total } }'}
            )
        error = response.json()["errors"][0]
        assert error["extensions"]["code"] == "validation-error"
        assert error["extensions"]["errors"] == [{"field": "examples", "message": "1 to 20"}]
