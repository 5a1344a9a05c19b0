"""Hostile input a public API meets every day gets a 4xx: deeply nested JSON, non-UTF-8 headers, oversized CSV cells."""

import json
import threading
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from app.imports import service as import_service
from app.kit.jsonlimits import MAX_JSON_DEPTH, json_depth, too_deep
from tests.conftest import Tenant
from tests.factories import create_field, create_type, lead_type

DEEP = 5000  # far past Python's recursion limit once parsed


def nested_list(depth: int) -> str:
    return "[" * depth + "]" * depth


def nested_object(depth: int) -> str:
    return '{"a":' * depth + "1" + "}" * depth


def nested_filter(depth: int) -> str:
    return '{"not":' * depth + '{"field":"title","op":"eq","value":"x"}' + "}" * depth


class TestScanner:
    @pytest.mark.parametrize(
        ("text", "depth"),
        [
            ('{"a": [1, {"b": []}]}', 4),
            ('{"a": "[[[[{{{{"}', 1),  # brackets inside a string do not count
            ('["\\"[[[", "\\\\", [[]]]', 3),  # nor do they after an escaped quote; an escaped backslash ends nothing
            ("[" * MAX_JSON_DEPTH + "]" * MAX_JSON_DEPTH, MAX_JSON_DEPTH),
        ],
    )
    def test_depth_ignores_strings_and_escapes(self, text: str, depth: int) -> None:
        assert not too_deep(text, depth)
        assert too_deep(text, depth - 1)

    def test_the_depth_is_exact(self) -> None:
        assert json_depth('{"a": [1, {"b": []}], "c": {}}') == 4
        assert json_depth('"[[[" ') == 0
        assert json_depth(nested_list(1000)) == 1000
        assert json_depth("[" * 10 + "}" + "]" * 9) == 10  # a mismatch still counts its openings


def _assert_too_deep(response: httpx.Response, field: str) -> None:
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["errors"] == [{"field": field, "message": f"nests deeper than {MAX_JSON_DEPTH} levels"}]


class TestDeepJson:
    @pytest.mark.parametrize("depth", [MAX_JSON_DEPTH + 1, 300, DEEP])
    async def test_bodies_of_every_route_kind(self, client: httpx.AsyncClient, depth: int) -> None:
        await create_type(client, "lead")
        await create_field(client, "lead", "note", "string")
        json_headers = {"content-type": "application/json"}
        rule = (
            '{"name":"r","entity_type":"lead","trigger":{"type":"element.created"},'
            '"actions":[{"type":"webhook","params":{"url":"https://example.com/h","body":'
            + nested_object(depth)
            + "}}]}"
        )
        bodies = {
            "/entity-types/lead/elements": '{"title":"x","values":{"note":' + nested_list(depth) + "}}",
            "/entity-types/lead/elements/search": '{"filter":' + nested_filter(depth) + "}",
            "/entity-types/lead/elements/batch": '{"items":[{"create":' + nested_object(depth) + "}]}",
            "/webhooks": '{"url":"https://example.com/h","events":["*"],"filter":' + nested_object(depth) + "}",
            "/automation/rules": rule,
        }
        for path, body in bodies.items():
            _assert_too_deep(await client.post(path, content=body, headers=json_headers), "body")
        _assert_too_deep(await client.post("/entity-types/lead/elements", content=bodies["/webhooks"]), "body")

    async def test_a_rule_webhook_body_at_the_limit_is_kept(self, client: httpx.AsyncClient) -> None:
        """The bound is on nesting, not on ordinary use: a templated body a few levels deep is fine."""
        await lead_type(client)
        body = json.loads(nested_object(MAX_JSON_DEPTH - 6))
        rule = {
            "name": "r",
            "entity_type": "lead",
            "trigger": {"type": "element.created"},
            "actions": [{"type": "webhook", "params": {"url": "https://example.com/h", "body": body}}],
        }
        response = await client.post("/automation/rules", json=rule)
        assert response.status_code == 201, response.text
        assert response.json()["actions"][0]["params"]["body"] == body

    @pytest.mark.parametrize("depth", [MAX_JSON_DEPTH + 1, 300])
    async def test_json_in_query_parameters(
        self, app: FastAPI, tenant: Tenant, client: httpx.AsyncClient, depth: int
    ) -> None:
        await create_type(client, "lead")
        response = await client.get("/entity-types/lead/elements", params={"filter": nested_filter(depth)})
        _assert_too_deep(response, "filter")
        async with _graphql_client(app, tenant) as http:
            response = await http.get(
                "/graphql",
                params={
                    "query": 'query($f: JSON) { elements(type: "lead", filter: $f) { totalCount } }',
                    "variables": '{"f":' + nested_list(depth) + "}",
                },
            )
        _assert_too_deep(response, "variables")

    @pytest.mark.parametrize("depth", [MAX_JSON_DEPTH + 1, DEEP])
    async def test_graphql_variables(self, app: FastAPI, tenant: Tenant, client: httpx.AsyncClient, depth: int) -> None:
        await create_type(client, "lead")
        query = 'query($f: JSON) { elements(type: "lead", filter: $f) { totalCount } }'
        async with _graphql_client(app, tenant) as http:
            for variable in (nested_filter(depth), nested_list(depth)):
                body = '{"query":' + json.dumps(query) + ',"variables":{"f":' + variable + "}}"
                response = await http.post("/graphql", content=body, headers={"content-type": "application/json"})
                _assert_too_deep(response, "body")

    async def test_graphql_literals_are_bounded_by_the_services(
        self, app: FastAPI, tenant: Tenant, client: httpx.AsyncClient
    ) -> None:
        """A literal in the document is not JSON the guard scans; the parser caps it near 190 levels, the rule's
        parameter walk at MAX_JSON_DEPTH."""
        await lead_type(client)
        body = "{a:" * 150 + "1" + "}" * 150
        mutation = (
            'mutation { createAutomationRule(input: {name: "r", entityType: "lead", '
            'trigger: {type: "element.created"}, '
            'actions: [{type: "webhook", params: {url: "https://example.com/h", body: ' + body + "}}]}) "
            "{ __typename ... on ValidationError { code fields { field message } } } }"
        )
        async with _graphql_client(app, tenant) as http:
            response = await http.post("/graphql", json={"query": mutation})
        assert response.status_code == 200, response.text
        result = response.json()["data"]["createAutomationRule"]
        assert result["__typename"] == "ValidationError", result
        assert result["fields"][0]["message"] == f"nests deeper than {MAX_JSON_DEPTH} levels"

    async def test_incoming_hook_bodies_whatever_their_content_type(
        self, app: FastAPI, client: httpx.AsyncClient
    ) -> None:
        await lead_type(client)
        rule = {
            "name": "in",
            "entity_type": "lead",
            "trigger": {"type": "webhook.received"},
            "actions": [{"type": "add_comment", "params": {"text": "hi"}}],
        }
        created = await client.post("/automation/rules", json=rule)
        assert created.status_code == 201, created.text
        hook_path = created.json()["hook_url"].removeprefix("/api/v1")
        for content_type in ("application/json", "text/plain", "application/octet-stream"):
            response = await client.post(
                hook_path, content='{"a":' + nested_list(DEEP) + "}", headers={"content-type": content_type}
            )
            _assert_too_deep(response, "body")

    async def test_an_import_mapping(self, client: httpx.AsyncClient) -> None:
        await lead_type(client)
        response = await client.post(
            "/entity-types/lead/import",
            files={"file": ("leads.csv", b"Title\nA\n", "text/csv")},
            data={"mapping": nested_object(DEEP)},
        )
        _assert_too_deep(response, "mapping")


def _graphql_client(app: FastAPI, tenant: Tenant, **headers: Any) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),
        base_url="http://testserver",
        headers={"Authorization": f"Bearer {tenant.admin_key}", **headers},
    )


class TestNonUtf8Headers:
    @pytest.mark.parametrize(
        ("header", "value", "statuses"),
        [
            ("authorization", b"Bearer sf_\xe9\xff_\xe9", {401}),
            ("authorization", b"\xe9\xff", {401}),
            ("idempotency-key", b"key-\xe9\xff", {200, 201}),
            ("x-request-id", b"\xe9\xff", {200, 201}),
            ("if-match", b"\xe9", {200, 201}),
        ],
        ids=["auth-key", "auth-scheme", "idempotency-key", "request-id", "if-match"],
    )
    async def test_latin_1_bytes_are_not_a_500(
        self, app: FastAPI, tenant: Tenant, header: str, value: bytes, statuses: set[int]
    ) -> None:
        headers: dict[str, Any] = {"authorization": f"Bearer {tenant.admin_key}".encode(), header: value}
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver") as http:
            created = await http.post("/api/v1/entity-types", json={"code": "lead", "title": "L"}, headers=headers)
            listed = await http.get("/api/v1/entity-types", headers=headers)
            graphql = await http.post("/graphql", json={"query": "{ entityTypes { code } }"}, headers=headers)
        assert created.status_code in statuses, created.text
        assert listed.status_code in statuses, listed.text
        assert graphql.status_code in statuses, graphql.text
        request_id = created.headers["x-request-id"]
        assert request_id.isascii()
        assert request_id.isprintable()


class TestCsv:
    async def test_a_cell_over_the_field_size_limit_is_a_422_naming_its_line(self, client: httpx.AsyncClient) -> None:
        await lead_type(client)
        csv = "Title,Note\nA,short\nB," + "x" * 200_000 + "\nC,short\n"
        response = await client.post("/entity-types/lead/import", files={"file": ("big.csv", csv.encode(), "text/csv")})
        assert response.status_code == 422, response.text
        problem = response.json()
        assert "line 3" in problem["detail"]
        assert problem["errors"][0]["field"] == "file"
        assert problem["errors"][0]["message"].startswith("line 3: field larger than field limit")
        assert (await client.get("/entity-types/lead/elements")).json()["items"] == []

    async def test_the_csv_is_parsed_off_the_event_loop(
        self, client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        await lead_type(client)
        threads: list[threading.Thread] = []
        parse = import_service.read_csv

        def recording(text: str) -> import_service.Parsed:
            threads.append(threading.current_thread())
            return parse(text)

        monkeypatch.setattr(import_service, "read_csv", recording)
        response = await client.post(
            "/entity-types/lead/import", files={"file": ("leads.csv", b"Title\nA\nB\n", "text/csv")}
        )
        assert response.status_code == 202, response.text
        assert threads
        assert all(thread is not threading.main_thread() for thread in threads)
