"""Issue 12, "Done when": a person with no rights gets no data and changes nothing through any operation (no BOLA):
every REST operation of schema/openapi.json and every GraphQL root field.

The admin first builds a workspace with a real object of every kind (entity types with fields, pipelines and
stages, elements, a relation and a link, a task, a rule with a run, its webhook delivery and its notification, a
webhook subscription with a delivery, a user, a routing policy, a scoring model, an import, a role, a spare key), so
every path parameter and id argument points at something that exists. The outsider then calls each operation with a
plausible request: the one the admin makes succeed in `test_the_admin_succeeds_with_the_walks_requests`. Each answer
must be a refusal (401, 403, 404, or a 422 that changed nothing) or, for a read, an answer with nothing in it: no id,
title, name or value of the objects (unless the request itself carried it) and no list items. Around every call all
the workspace's rows are fingerprinted: nothing may change. After the walk the admin sees the same workspace.

Outsiders (`OUTSIDERS`, one more kind of actor is one more entry): an API key acting with a custom role of level
viewer that grants nothing, a person logged in (POST /auth/login) holding such a role, and one holding no role.

A new operation needs a plausible body (`BODIES`) and, for a new path parameter, a real object (`build_world`,
`PATH_VALUES`); an operation meant to show something to every member goes into `VISIBLE_TO_EVERY_MEMBER`, with why.
"""

from __future__ import annotations

import json
import random
import re
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from graphql import (
    GraphQLArgument,
    GraphQLEnumType,
    GraphQLInputField,
    GraphQLInputObjectType,
    GraphQLInputType,
    GraphQLInterfaceType,
    GraphQLList,
    GraphQLNamedType,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLSchema,
    GraphQLUnionType,
    build_client_schema,
    build_schema,
    get_introspection_query,
    get_named_type,
    is_leaf_type,
    parse,
    validate,
)
from graphql.pyutils import Undefined
from sqlalchemy import select

from app.automation import runner
from app.db import Base, unit_of_work
from app.imports import service as import_service
from app.kit import background
from app.outbox.models import OutboxEvent
from app.settings import Settings
from tests.conftest import Tenant, make_client, make_tenant
from tests.factories import created
from tests.security.test_stored_errors import NoWaker

ROOT = Path(__file__).resolve().parents[2]
OPENAPI: dict[str, Any] = json.loads((ROOT / "schema" / "openapi.json").read_text())
GENERIC_SCHEMA = build_schema((ROOT / "schema" / "schema.graphql").read_text())
METHODS = ("get", "put", "post", "patch", "delete")

# Kinds of the objects' data, for what an answer may show.
ELEMENT, METADATA, PEOPLE, CONFIG, TASK = "element", "metadata", "people", "config", "task"

# Operations (REST operationIds, GraphQL root fields) that check no role: no role check to pass, but the answer still
# carries no data and nothing changes.
PUBLIC: dict[str, str] = {
    "healthz": "liveness probe: the process is up; nothing about any workspace",
    "readyz": "readiness probe: the database and Redis answer; nothing about any workspace",
    "metrics": "Prometheus counters by route template and status; nothing about any workspace",
    "login": "the e-mail and password are the check (the walk's password is wrong: 401, or 429 once limited)",
    "refresh_token": "the refresh token is the credential (the walk's is made up: 401)",
    "refreshToken": "the refresh token is the credential (the walk's is made up: an AuthenticationError)",
    "logout": "revokes the refresh token it is given: a made-up one revokes nothing",
    "download_file_content": "a signed link from get_file_download_url is the credential (the walk has none: 422)",
}

VISIBLE_TO_EVERY_MEMBER: dict[str, tuple[frozenset[str], str]] = {
    # REST operationIds and GraphQL root fields whose answer may show these kinds of data to anyone in the workspace.
    "list_users": (
        frozenset({PEOPLE}),
        "the people directory: every member's frontend shows who elements and tasks are assigned to and picks "
        "assignees, whatever the member may read",
    ),
    "get_user": (frozenset({PEOPLE}), "one entry of the people directory (see list_users)"),
    "list_departments": (
        frozenset({PEOPLE}),
        "the department tree: everyone in the workspace reads it (README), so frontends group people by department",
    ),
    "get_department": (frozenset({PEOPLE}), "one department of the tree (see list_departments)"),
    "departments": (frozenset({PEOPLE}), "GraphQL's department tree (see list_departments)"),
    "department": (frozenset({PEOPLE}), "GraphQL's department tree (see list_departments)"),
    "users": (frozenset({PEOPLE}), "GraphQL's people directory (see list_users)"),
    "user": (frozenset({PEOPLE}), "GraphQL's people directory (see list_users)"),
    "get_user_schedule": (
        frozenset({PEOPLE}),
        "a colleague's working hours (their time zone and weekly hours, no events): members schedule with each "
        "other, as they see the people directory",
    ),
    "userSchedule": (frozenset({PEOPLE}), "GraphQL's working hours (see get_user_schedule)"),
    "get_me": (frozenset(), "the caller's own account: who they are and which roles they hold"),
    "me": (frozenset(), "the caller's own account (see get_me)"),
    "get_graphql_schema": (
        frozenset({METADATA}),
        "the workspace's typed GraphQL SDL for client code generation: one schema per workspace, so it names every "
        "type and field with their labels, as introspection does; it holds no element data",
    ),
}

# Operations (operationIds or GraphQL root fields) that still leak element data to a role with no grants until the
# element permissions reach them. Each is expected to fail (strict: one that passes fails the run), so the list is
# emptied as the enforcement lands. Empty: element reads and writes enforce roles since 185419d.
ELEMENT_ENFORCEMENT_PENDING: set[str] = set()

# Reads sent as POST (a JSON query).
READ_POSTS = {"search_elements"}
# The answer codes of a refusal; a 422 counts only if nothing changed (checked around every call).
REFUSALS = {401, 403, 404, 422, 429}
GRAPHQL_REFUSALS = {"Forbidden", "NotFound", "ValidationError", "AuthenticationError"}
# The walk's client address: failed logins count per address (app.auth.ratelimit), so not the other tests' one.
WALK_CLIENT = (f"198.51.100.{random.randint(1, 254)}", 40000)


# --- the workspace --------------------------------------------------------------------------------------------------


@dataclass
class World:
    """The admin's workspace: ids by name, the objects' data by kind, and the walk's bookkeeping."""

    tenant: Tenant
    ids: dict[str, str] = field(default_factory=dict)
    secrets: list[tuple[str, str]] = field(default_factory=list)
    admin_view: dict[str, Any] = field(default_factory=dict)
    graphql: GraphQLSchema | None = None
    calls: int = 0
    outsiders: set[str] = field(default_factory=set)  # the ids of every outsider's own user, role and key

    @property
    def workspace_id(self) -> uuid.UUID:
        return self.tenant.workspace_id

    def keep(self, kind: str, obj: dict[str, Any], name: str | None = None, *texts: str) -> dict[str, Any]:
        """Remember an object: its id under `name`, and its id and texts as data of `kind`."""
        if name is not None:
            self.ids[name] = obj["id"]
        self.secrets.append((kind, str(obj["id"])))
        self.secrets.extend((kind, text) for text in texts)
        return obj

    def leaked(self, answer: str, request: str, allowed: frozenset[str] = frozenset()) -> list[str]:
        """The objects' data in an answer that the request did not carry itself."""
        return sorted(
            {f"{kind}: {value}" for kind, value in self.secrets if kind not in allowed and value in answer}
            - {f"{kind}: {value}" for kind, value in self.secrets if value in request}
        )


async def build_world(app: FastAPI, settings: Settings, name: str) -> World:
    """A workspace with a real object of every kind, built by its admin through the API."""
    tenant = await make_tenant(app, name)
    world = World(tenant)
    world.ids["workspace"] = str(tenant.workspace_id)
    async with make_client(app, tenant.admin_key) as admin:

        async def post(path: str, body: dict[str, Any]) -> dict[str, Any]:
            return created(await admin.post(path, json=body))

        keep = world.keep
        lead = await post("/entity-types", {"code": "lead", "title": "Vault Lead Type", "preset": "full"})
        keep(METADATA, lead, "lead_type", "Vault Lead Type")
        company = await post("/entity-types", {"code": "company", "title": "Vault Company Type", "preset": "list"})
        keep(METADATA, company, "company_type", "Vault Company Type")
        for code, body in {
            "note": {"type": "string", "label": "Vault note label"},
            "budget": {"type": "decimal", "label": "Vault budget label"},
            "industry": {"type": "enum", "options": [{"value": "it", "label": "Vault IT option"}]},
            "scan": {"type": "file", "label": "Vault scan label"},
        }.items():
            keep(METADATA, await post("/entity-types/lead/fields", {"code": code, **body}), f"field_{code}")
        world.secrets += [(METADATA, "Vault note label"), (METADATA, "Vault IT option")]
        default = next(p for p in (await admin.get("/entity-types/lead/pipelines")).json()["items"] if p["is_default"])
        keep(METADATA, default, "default_pipeline")
        for stage in default["stages"]:
            keep(METADATA, stage)
        world.ids["default_stage"] = default["stages"][1]["id"]
        world.ids["default_stages"] = json.dumps([s["id"] for s in default["stages"]])
        partners = await post(
            "/entity-types/lead/pipelines",
            {
                "title": "Vault Partners Pipeline",
                "stages": [
                    {"code": "VAULT_A", "title": "Vault Stage Alpha"},
                    {"code": "VAULT_B", "title": "Vault Stage Beta"},
                    {"code": "VAULT_WON", "title": "Vault Stage Won", "semantic": "success"},
                ],
            },
        )
        keep(METADATA, partners, "pipeline", "Vault Partners Pipeline")
        for stage, title in zip(partners["stages"], ["Alpha", "Beta", "Won"], strict=True):
            keep(METADATA, stage, None, f"Vault Stage {title}")
        world.ids["stage"] = partners["stages"][1]["id"]
        world.ids["other_stage"] = partners["stages"][0]["id"]
        relation = keep(METADATA, await post("/relations", {"parent_type": "company", "child_type": "lead"}))
        world.ids["relation"] = relation["id"]

        department = await post("/departments", {"name": "Vault Department 9a0"})
        keep(PEOPLE, department, "department", "Vault Department 9a0")
        spare_department = await post(
            "/departments", {"name": "Vault Subdepartment 1b2", "parent_id": department["id"]}
        )
        keep(PEOPLE, spare_department, "spare_department", "Vault Subdepartment 1b2")
        vera = await post(
            "/users",
            {
                "name": "Vera Vaultkeeper",
                "email": "vera.vault@example.com",
                "tier": "senior",
                "department_id": department["id"],
                "password": "vault-password-7c1",
            },
        )
        keep(PEOPLE, vera, "user", "Vera Vaultkeeper", "vera.vault@example.com")
        spare = await post("/users", {"name": "Spare Vaultuser", "email": "spare.vault@example.com"})
        keep(PEOPLE, spare, "spare_user", "Spare Vaultuser", "spare.vault@example.com")
        role = await post("/roles", {"name": "Vault desk role", "grants": [{"entity_type": "lead", "read": "own"}]})
        keep(CONFIG, role, "role", "Vault desk role")
        workplace = await post(
            "/workplaces", {"name": "Vault workplace 2f5", "entity_types": ["lead"], "role_ids": [role["id"]]}
        )
        keep(CONFIG, workplace, "workplace", "Vault workplace 2f5")
        card_layout = await post(
            "/entity-types/lead/layouts",
            {
                "name": "Vault layout 3a8",
                "sections": [{"code": "vault", "title": "Vault section 6e0", "fields": ["note"]}],
            },
        )
        keep(METADATA, card_layout, "layout", "Vault layout 3a8", "Vault section 6e0")
        key = await post("/api-keys", {"name": "Vault spare key", "role": "viewer"})
        keep(CONFIG, key, "key", "Vault spare key", key["prefix"])

        hook_url = "http://127.0.0.1:9/vault-subscription"
        webhook = await post("/webhooks", {"url": hook_url, "events": ["element.created"], "description": "Vault hook"})
        keep(CONFIG, webhook, "webhook", hook_url, "Vault hook", webhook["secret"])
        rule = await post(
            "/automation/rules",
            {
                "name": "Vault rule 8d2",
                "entity_type": "lead",
                "trigger": {"type": "element.created"},
                "actions": [
                    {"type": "webhook", "params": {"url": "http://127.0.0.1:9/vault-rule-hook"}},
                    {"type": "notify", "params": {"user_id": vera["id"], "message": "Vault notice 6a1"}},
                ],
            },
        )
        keep(CONFIG, rule, "rule", "Vault rule 8d2", "vault-rule-hook")
        hook_rule = await post(
            "/automation/rules",
            {
                "name": "Vault hook rule 0e4",
                "entity_type": "lead",
                "trigger": {"type": "webhook.received"},
                "actions": [{"type": "add_comment", "params": {"text": "hooked"}}],
            },
        )
        keep(CONFIG, hook_rule, "hook_rule", "Vault hook rule 0e4", hook_rule["hook_url"])
        # An A/B rule (disabled: it never runs on the world's elements) for the experiment's report and promotion.
        ab_rule = await post(
            "/automation/rules",
            {
                "name": "Vault ab rule 5f3",
                "entity_type": "lead",
                "enabled": False,
                "trigger": {"type": "element.created"},
                "actions": [{"type": "add_comment", "params": {"text": "control"}}],
                "variants": [
                    {"key": "A", "weight": 1, "actions": [{"type": "add_comment", "params": {"text": "Vault a 7c1"}}]},
                    {"key": "B", "weight": 1, "actions": [{"type": "add_comment", "params": {"text": "Vault b 7c2"}}]},
                ],
            },
        )
        keep(CONFIG, ab_rule, "ab_rule", "Vault ab rule 5f3", "Vault a 7c1", "Vault b 7c2")
        world.secrets.append((TASK, "Vault notice 6a1"))
        policy = await post("/routing/policies", {"name": "Vault routing 4c7", "entity_type": "lead"})
        keep(CONFIG, policy, "policy", "Vault routing 4c7")
        model = await post(
            "/scoring/models",
            {
                "name": "Vault score 2b9",
                "entity_type": "lead",
                "kind": "factors",
                "factors": [{"kind": "enum", "field": "industry", "points": {"it": 30}}],
            },
        )
        keep(CONFIG, model, "model", "Vault score 2b9")
        assert (await admin.post(f"/scoring/models/{model['id']}/activate")).status_code == 200

        scan = created(
            await admin.post("/files", files={"file": ("vault-scan-4e8.pdf", b"%PDF vault", "application/pdf")})
        )
        keep(ELEMENT, scan, "file", "vault-scan-4e8.pdf", scan["sha256"])
        element = await post(
            "/entity-types/lead/elements",
            {
                "title": "Vault Secret Lead 7f3",
                "assigned_to": vera["id"],
                "amount": "4242.42",
                "values": {"note": "vault-note-91b", "budget": 777.5, "industry": "it", "scan": scan["id"]},
            },
        )
        keep(ELEMENT, element, "element", "Vault Secret Lead 7f3", "4242.42", "vault-note-91b", "777.5")
        second = await post("/entity-types/lead/elements", {"title": "Vault Second Lead 5d0"})
        keep(ELEMENT, second, "second_element", "Vault Second Lead 5d0")
        spare = await post("/entity-types/lead/elements", {"title": "Vault Merge Spare 9a4"})
        keep(ELEMENT, spare, "merge_spare", "Vault Merge Spare 9a4")
        acme = await post("/entity-types/company/elements", {"title": "Vault Company 55c"})
        keep(ELEMENT, acme, "company", "Vault Company 55c")
        created(await admin.post(f"/elements/{acme['id']}/links", json={"child_id": element["id"]}))
        task = await post("/tasks", {"title": "Vault task 3e1", "element_id": element["id"], "assignee_id": vera["id"]})
        keep(TASK, task, "task", "Vault task 3e1")
        event = await post(
            "/calendar/events",
            {
                "title": "Vault event 6b3",
                "description": "Vault agenda 1f9",
                "owner_id": vera["id"],
                "element_id": element["id"],
                "start_date": "2026-06-01",
            },
        )
        keep(TASK, event, "event", "Vault event 6b3", "Vault agenda 1f9")
        feed = (await admin.post(f"/users/{vera['id']}/calendar/feed")).json()
        world.secrets.append((TASK, feed["secret"]))
        activity = await post(
            "/activities",
            {
                "kind": "call",
                "status": "planned",
                "subject": "Vault call 4d8",
                "payload": {"vault": "vault-payload-2c6"},
                "element_ids": [element["id"]],
            },
        )
        keep(ELEMENT, activity, "activity", "Vault call 4d8", "vault-payload-2c6")

        await _run_rules(app, settings, world, element["id"])
        runs = (await admin.get("/automation/runs", params={"rule_id": rule["id"]})).json()["items"]
        keep(CONFIG, runs[0], "run")
        for delivery in (await admin.get(f"/webhooks/{webhook['id']}/deliveries")).json()["items"]:
            keep(CONFIG, delivery, "delivery")
        for delivery in (await admin.get(f"/automation/runs/{runs[0]['id']}/deliveries")).json()["items"]:
            keep(CONFIG, delivery)
        for notification in (await admin.get("/notifications")).json()["items"]:
            keep(TASK, notification)
        assert {"delivery"} <= set(world.ids)

        # An alert that has fired once (its history is not the outsider's either).
        alert = await post(
            "/alerts",
            {
                "name": "Vault alert 3a8",
                "entity_type": "lead",
                "metric": "created",
                "condition": {"kind": "threshold", "op": "gte", "value": 0},
            },
        )
        keep(CONFIG, alert, "alert", "Vault alert 3a8")
        assert (await admin.post(f"/alerts/{alert['id']}/check")).json()["event"]["kind"] == "fired"

        imported = await _import(app, world)
        keep(CONFIG, {"id": imported}, "import", "vault-import.csv")
        for item in (await admin.get("/entity-types/lead/elements", params={"limit": 100})).json()["items"]:
            if item["title"] == "Vault Imported Row 1c4":
                keep(ELEMENT, item, None, "Vault Imported Row 1c4")
        await background.drain()  # the read model's index builds
        world.admin_view = await admin_view(admin, world)
        world.graphql = await introspect(app, tenant.admin_key)
    world.secrets = [(kind, value) for kind, value in world.secrets if value]
    return world


async def _run_rules(app: FastAPI, settings: Settings, world: World, element_id: str) -> None:
    """The element's `element.created` event through the engine, here: a run, deliveries and a notification."""
    async with unit_of_work(app.state.sessionmaker) as session:
        event_id = await session.scalar(
            select(OutboxEvent.event_id).where(
                OutboxEvent.workspace_id == world.workspace_id,
                OutboxEvent.event_type == "element.created",
                OutboxEvent.element_id == uuid.UUID(element_id),
            )
        )
    assert event_id is not None
    assert await runner.process_event(app.state.sessionmaker, settings, NoWaker(), event_id) == 1


async def _import(app: FastAPI, world: World) -> str:
    from app.auth.actor import system_actor

    actor = system_actor(world.workspace_id)
    async with unit_of_work(app.state.sessionmaker) as session:
        job = await import_service.create_job(
            session,
            actor,
            "lead",
            filename="vault-import.csv",
            text="Title\nVault Imported Row 1c4\n",
            mapping={"Title": "title"},
        )
    await import_service.run_job(app.state.sessionmaker, actor, job.id)
    return str(job.id)


ADMIN_VIEW = [
    "/entity-types",
    "/entity-types/lead",
    "/entity-types/lead/fields",
    "/entity-types/lead/pipelines",
    "/entity-types/company/pipelines",
    "/pipelines/{pipeline}/stages",
    "/entity-types/lead/elements?limit=100&with_total=true",
    "/entity-types/lead/elements?limit=100&deleted=true",
    "/entity-types/company/elements?limit=100",
    "/elements/{company}/links",
    "/elements/{element}/history",
    "/relations",
    "/automation/rules",
    "/automation/runs",
    "/tasks",
    "/activities",
    "/elements/{element}/timeline",
    "/notifications",
    "/webhooks",
    "/webhooks/{webhook}/deliveries",
    "/users",
    "/roles",
    "/routing/policies",
    "/scoring/models",
    "/entity-types/lead/imports/{import}",
    "/api-keys",
    "/departments",
    "/workplaces",
    "/entity-types/lead/layouts",
    "/files/{file}",
]


async def admin_view(admin: httpx.AsyncClient, world: World, skip: frozenset[str] = frozenset()) -> dict[str, Any]:
    """What the admin reads of the workspace (keys without their last use, which the walk's own key changes; the
    outsiders' own users, roles and keys, `skip`, left out)."""
    view = {}
    for path in ADMIN_VIEW:
        response = await admin.get(path.format(**world.ids))
        assert response.status_code == 200, (path, response.text)
        view[path] = response.json()
    for answer in view.values():
        if isinstance(answer.get("items"), list):
            answer["items"] = [item for item in answer["items"] if item.get("id") not in skip]
    for key in view["/api-keys"]["items"]:
        key.pop("last_used_at")
    return view


async def introspect(app: FastAPI, key: str) -> GraphQLSchema:
    async with graphql_client(app, key) as http:
        answer = await http.post("/graphql", json={"query": get_introspection_query()})
    assert answer.status_code == 200, answer.text
    return build_client_schema(answer.json()["data"])


def graphql_client(app: FastAPI, key: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://testserver", headers={"Authorization": f"Bearer {key}"}
    )


# --- every row of the workspace, fingerprinted ------------------------------------------------------------------------

IGNORED_COLUMNS = {"api_keys": {"last_used_at"}}  # a key's own use, recorded at most once a minute


def _fingerprint_sql() -> str:
    parts = []
    for name, table in sorted(Base.metadata.tables.items()):
        columns = [c.name for c in table.columns if c.name not in IGNORED_COLUMNS.get(name, set())]
        row = "row(" + ", ".join(f't."{c}"' for c in columns) + ")::text"
        where = "t.id = $1" if name == "workspaces" else "t.workspace_id = $1"
        digest = f"md5(coalesce(string_agg({row}, '|' ORDER BY {row}), ''))"
        # The models' own table and column names, no input.
        parts.append(f"SELECT '{name}' AS name, count(*) AS rows, {digest} AS hash FROM \"{name}\" t WHERE {where}")  # noqa: S608
    return " UNION ALL ".join(parts)


FINGERPRINT_SQL = _fingerprint_sql()


async def fingerprint(app: FastAPI, workspace_id: uuid.UUID) -> dict[str, tuple[int, str]]:
    async with app.state.read_pool.acquire() as connection:
        rows = await connection.fetch(FINGERPRINT_SQL, workspace_id)
    return {row["name"]: (row["rows"], row["hash"]) for row in rows}


def changed(before: dict[str, tuple[int, str]], after: dict[str, tuple[int, str]]) -> dict[str, str]:
    return {
        name: f"{before[name][0]} -> {after[name][0]} rows" + ("" if before[name][0] != after[name][0] else ", changed")
        for name in before
        if before[name] != after[name]
    }


# --- the outsiders --------------------------------------------------------------------------------------------------


@dataclass
class Outsider:
    kind: str
    authorization: str
    own: set[str] = field(default_factory=set)  # the outsider's own ids: never counted as leaked


async def custom_role_key(app: FastAPI, world: World) -> Outsider:
    """An API key acting with a custom role of level viewer that grants nothing."""
    async with make_client(app, world.tenant.admin_key) as admin:
        role = created(await admin.post("/roles", json={"name": "Nobody", "level": "viewer"}))
        key = created(await admin.post("/api-keys", json={"name": "nobody", "role": "Nobody"}))
    assert role["grants"] == []
    assert key["role"] == "Nobody"
    return Outsider("custom role key", f"Bearer {key['api_key']}", {role["id"], key["id"]})


async def person(app: FastAPI, world: World, name: str, role: str | None) -> Outsider:
    """A user who logged in (POST /auth/login), holding `role` or none at all."""
    email = f"{name.lower().replace(' ', '.')}@example.com"
    async with make_client(app, world.tenant.admin_key) as admin:
        role_ids = []
        if role is not None:
            role_ids = [created(await admin.post("/roles", json={"name": role, "level": "viewer"}))["id"]]
        body = {"name": name, "email": email, "password": "nobody-password-1", "role_ids": role_ids}
        user = created(await admin.post("/users", json=body))
    transport = httpx.ASGITransport(app=app, client=WALK_CLIENT)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver/api/v1") as anonymous:
        login = {"email": email, "password": "nobody-password-1", "workspace_id": str(world.workspace_id)}
        tokens = await anonymous.post("/auth/login", json=login)
    assert tokens.status_code == 200, tokens.text
    return Outsider(f"person ({role or 'no role'})", f"Bearer {tokens.json()['access_token']}", {user["id"], *role_ids})


async def person_with_a_role_granting_nothing(app: FastAPI, world: World) -> Outsider:
    return await person(app, world, "Nora Nobody", "Nobody person")


async def person_without_roles(app: FastAPI, world: World) -> Outsider:
    return await person(app, world, "Rolf Roleless", None)


OUTSIDERS: dict[str, Callable[[FastAPI, World], Awaitable[Outsider]]] = {
    "custom_role_key": custom_role_key,
    "person_with_a_role_granting_nothing": person_with_a_role_granting_nothing,
    "person_without_roles": person_without_roles,
}


@pytest.fixture(scope="module")
async def world(app: FastAPI, settings: Settings) -> World:
    return await build_world(app, settings, "walk")


@pytest.fixture(scope="module", params=sorted(OUTSIDERS))
async def outsider(request: pytest.FixtureRequest, app: FastAPI, world: World) -> Outsider:
    made = await OUTSIDERS[request.param](app, world)
    world.outsiders |= made.own
    return made


# --- REST: the requests -----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Operation:
    method: str
    path: str
    operation_id: str
    parameters: tuple[tuple[str, str], ...]  # (in, name)
    body: str | None  # the media type of the request body

    @property
    def reads(self) -> bool:
        return self.method == "get" or self.operation_id in READ_POSTS


def operations() -> list[Operation]:
    found = []
    for path, item in OPENAPI["paths"].items():
        for method in METHODS:
            if method in item:
                spec = item[method]
                found.append(
                    Operation(
                        method,
                        path,
                        spec["operationId"],
                        tuple((p["in"], p["name"]) for p in spec.get("parameters", [])),
                        next(iter(spec["requestBody"]["content"]), None) if "requestBody" in spec else None,
                    )
                )
    return found


# Path parameters by name: the world's objects. `token` is an incoming hook's secret: the outsider cannot know it.
PATH_VALUES = {
    "type": "lead",
    "code": "note",
    "element_id": "{element}",
    "child_id": "{element}",
    "pipeline_id": "{pipeline}",
    "stage_id": "{stage}",
    "rule_id": "{rule}",
    "run_id": "{run}",
    "key_id": "{key}",
    "import_id": "{import}",
    "relation_id": "{relation}",
    "policy_id": "{policy}",
    "model_id": "{model}",
    "task_id": "{task}",
    "activity_id": "{activity}",
    "user_id": "{user}",
    "webhook_id": "{webhook}",
    "delivery_id": "{delivery}",
    "role_id": "{role}",
    "department_id": "{department}",
    "workplace_id": "{workplace}",
    "layout_id": "{layout}",
    "event_id": "{event}",
    "file_id": "{file}",
    "alert_id": "{alert}",
    "token": "hk_not_the_real_token",
}
PATH_OVERRIDES = {
    "unlink_element": {"element_id": "{company}"},
    "link_element": {"element_id": "{company}"},
    "rotate_rule_hook": {"rule_id": "{hook_rule}"},
    "get_rule_experiment": {"rule_id": "{ab_rule}"},
    "promote_rule_variant": {"rule_id": "{ab_rule}"},
    "reorder_stages": {"pipeline_id": "{default_pipeline}"},
    "delete_user": {"user_id": "{spare_user}"},
    "delete_department": {"department_id": "{spare_department}"},
    "set_user_roles": {"user_id": "{spare_user}"},
}
# Optional query parameters that name the world's objects (filters a list could be asked to apply).
QUERY_VALUES = {
    "entity_type": "lead",
    "rule_id": "{rule}",
    "element_id": "{element}",
    "assignee_id": "{user}",
    "user_id": "{user}",
    "type": "company",
}
QUERY_OVERRIDES = {
    "delete_entity_type": {"force": "true"},
    "delete_pipeline": {"move_to": "{default_pipeline}"},
    "delete_stage": {"move_to": "{other_stage}"},
    "list_element_links": {"direction": "parents"},
    "get_user_calendar": {"from": "2026-05-01", "to": "2026-07-01"},
}
BODIES: dict[str, Any] = {
    "create_api_key": {"name": "Walk key", "role": "admin"},
    "update_api_key": {"role": "admin"},
    "create_rule": {
        "name": "Walk rule",
        "entity_type": "lead",
        "trigger": {"type": "element.created"},
        "actions": [{"type": "add_comment", "params": {"text": "walk"}}],
    },
    "order_rules": {"ids": ["{rule}"]},
    "update_rule": {"name": "Walk rule renamed"},
    "promote_rule_variant": {"variant": "B"},
    "update_element": {"title": "Walk title", "values": {"note": "walk"}},
    "link_element": {"child_id": "{second_element}"},
    "merge_element": {"merged_ids": ["{merge_spare}"]},
    "move_element": {"stage_code": "VAULT_B", "pipeline_id": "{pipeline}"},
    "route_element": {"policy_id": "{policy}"},
    "score_element": {"model_id": "{model}"},
    "create_entity_type": {"code": "walk", "title": "Walk"},
    "update_entity_type": {"title": "Walk type"},
    "create_element": {"title": "Walk element", "values": {"note": "walk"}},
    "batch_elements": {"items": [{"op": "update", "id": "{element}", "data": {"title": "Walk batch"}}]},
    "search_elements": {"filter": {"field": "title", "op": "icontains", "value": "vault"}, "with_total": True},
    "create_field": {"code": "walk_field", "type": "string"},
    "update_field": {"label": "Walk label"},
    "create_pipeline": {"title": "Walk pipeline"},
    "update_pipeline": {"title": "Walk pipeline"},
    "create_stage": {"code": "WALK", "title": "Walk stage"},
    "reorder_stages": {"stage_ids": "{default_stages}"},
    "update_stage": {"title": "Walk stage"},
    "receive_hook": {"walk": True},
    "create_relation": {"parent_type": "lead", "child_type": "company"},
    "create_routing_policy": {"name": "Walk policy", "entity_type": "lead"},
    "update_routing_policy": {"name": "Walk policy renamed"},
    "create_scoring_model": {
        "name": "Walk model",
        "entity_type": "lead",
        "kind": "factors",
        "factors": [{"kind": "presence", "field": "note", "points": 5}],
    },
    "create_task": {"title": "Walk task", "element_id": "{element}"},
    "create_activity": {"kind": "call", "subject": "Walk call", "element_ids": ["{element}"]},
    "update_activity": {"subject": "Walk call renamed"},
    "complete_activity": {"outcome": "answered"},
    "update_task": {"title": "Walk task", "status": "done"},
    "create_user": {"name": "Walk User", "email": "walk.user@example.com"},
    "update_user": {"capacity": 3},
    "create_webhook": {"url": "http://127.0.0.1:9/walk", "events": ["element.moved"]},
    "update_webhook": {"description": "Walk"},
    "update_retention": {"runs_days": 90},
    "create_role": {"name": "Walk role", "grants": [{"entity_type": "lead", "read": "all", "import": "all"}]},
    "update_role": {"description": "Walk", "grants": [{"entity_type": "lead", "read": "all"}]},
    "set_user_roles": {"role_ids": ["{role}"]},
    "create_department": {"name": "Walk department", "parent_id": "{department}"},
    "update_department": {"name": "Walk department renamed"},
    "create_workplace": {"name": "Walk workplace", "entity_types": ["lead"], "role_ids": ["{role}"]},
    "update_workplace": {"name": "Walk workplace renamed"},
    "create_layout": {
        "name": "Walk layout",
        "pipeline_id": "{pipeline}",
        "sections": [{"code": "walk", "title": "Walk", "fields": ["title", "note"]}],
    },
    "update_layout": {"name": "Walk layout renamed", "hidden": ["budget"]},
    "create_calendar_event": {
        "title": "Walk event",
        "owner_id": "{user}",
        "element_id": "{element}",
        "starts_at": "2026-06-02T09:00:00",
        "ends_at": "2026-06-02T10:00:00",
    },
    "update_calendar_event": {"title": "Walk event renamed", "start_date": "2026-06-03"},
    "set_user_schedule": {"mon": [["09:00", "13:00"], ["14:00", "18:00"]]},
    "create_alert": {
        "name": "Walk alert",
        "entity_type": "lead",
        "metric": "created",
        "condition": {"kind": "threshold", "op": "lt", "value": 1},
    },
    "update_alert": {"name": "Walk alert renamed"},
    "put_triage_config": {"text_fields": ["title", "note"], "category_field": "industry", "urgency_field": "industry"},
    "triage_element": {"apply": False, "similar": 1},
    "train_triage": {"encoder": "tfidf"},
    "login": {"email": "vera.vault@example.com", "password": "not-veras-password", "workspace_id": "{workspace}"},
    "refresh_token": {"refresh_token": "made-up-refresh-token"},
    "logout": {"refresh_token": "made-up-refresh-token"},
}
MULTIPART_BODIES = {
    "import_elements": (
        {"file": ("walk.csv", b"Title\nWalk import\n", "text/csv")},
        {"mapping": json.dumps({"Title": "title"})},
    ),
    "upload_file": ({"file": ("walk.txt", b"walk upload", "text/plain")}, {}),
}


def fill(value: Any, world: World) -> Any:
    """`{name}` placeholders replaced by the world's ids (a JSON list stays a list)."""
    if isinstance(value, str) and re.fullmatch(r"\{\w+\}", value):
        resolved = world.ids[value[1:-1]]
        return json.loads(resolved) if resolved.startswith("[") else resolved
    if isinstance(value, dict):
        return {k: fill(v, world) for k, v in value.items()}
    if isinstance(value, list):
        return [fill(v, world) for v in value]
    return value


@dataclass
class Request:
    method: str
    url: str
    params: dict[str, str]
    kwargs: dict[str, Any]

    @property
    def text(self) -> str:
        return f"{self.url} {json.dumps(self.params)} {json.dumps(self.kwargs, default=str)}"


def rest_request(operation: Operation, world: World) -> Request:
    url = operation.path
    params: dict[str, str] = {}
    for location, name in operation.parameters:
        if location == "path":
            template = PATH_OVERRIDES.get(operation.operation_id, {}).get(name) or PATH_VALUES.get(name)
            if template is None:
                pytest.fail(f"{operation.operation_id}: give path parameter {name!r} a real object (PATH_VALUES)")
            url = url.replace("{" + name + "}", fill(template, world))
        elif location == "query" and name in QUERY_VALUES:
            params[name] = fill(QUERY_VALUES[name], world)
    params.update(fill(QUERY_OVERRIDES.get(operation.operation_id, {}), world))
    kwargs: dict[str, Any] = {}
    if operation.body == "multipart/form-data":
        files, data = MULTIPART_BODIES[operation.operation_id]
        kwargs = {"files": files, "data": data}
    elif operation.body is not None:
        if operation.operation_id not in BODIES:
            pytest.fail(f"{operation.operation_id}: give it a plausible body in BODIES (one the admin can send)")
        kwargs = {"json": fill(BODIES[operation.operation_id], world)}
    return Request(operation.method.upper(), url, params, kwargs)


async def send(app: FastAPI, authorization: str, request: Request) -> httpx.Response:
    # A crash is a 500 to report, not raise.
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False, client=WALK_CLIENT)
    async with httpx.AsyncClient(
        transport=transport, base_url="http://testserver", headers={"Authorization": authorization}
    ) as http:
        return await http.request(request.method, request.url, params=request.params, **request.kwargs)


COUNTS = {"totalCount", "total", "count"}


def has_items(value: Any) -> bool:
    """Whether an answer carries any object: a non-empty list, anything with an id, a count above 0."""
    if isinstance(value, list):
        return bool(value)
    if isinstance(value, dict):
        return (
            "id" in value
            or any(isinstance(value.get(name), int) and value[name] > 0 for name in COUNTS)
            or any(has_items(v) for v in value.values())
        )
    return False


def pending(name: str) -> list[pytest.MarkDecorator]:
    if name in ELEMENT_ENFORCEMENT_PENDING:
        return [pytest.mark.xfail(strict=True, reason="element enforcement pending (ELEMENT_ENFORCEMENT_PENDING)")]
    return []


# --- REST: the walk ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "operation",
    [pytest.param(op, id=op.operation_id, marks=pending(op.operation_id)) for op in operations()],
)
async def test_an_outsider_gets_nothing_from_rest(
    app: FastAPI, world: World, outsider: Outsider, operation: Operation
) -> None:
    request = rest_request(operation, world)
    before = await fingerprint(app, world.workspace_id)
    response = await send(app, outsider.authorization, request)
    await background.drain()
    world.calls += 1
    assert changed(before, await fingerprint(app, world.workspace_id)) == {}, (response.status_code, response.text)
    assert response.status_code < 500, response.text
    allowed, _ = VISIBLE_TO_EVERY_MEMBER.get(operation.operation_id, (frozenset(), ""))
    leaked = [s for s in world.leaked(response.text, request.text, allowed) if s.split(": ", 1)[1] not in outsider.own]
    assert leaked == [], f"{response.status_code}: {response.text[:2000]}"
    if operation.operation_id in PUBLIC or response.status_code in REFUSALS:
        return
    assert operation.reads, f"a write answered {response.status_code}: {response.text[:2000]}"
    assert 200 <= response.status_code < 300, response.text
    if operation.operation_id in VISIBLE_TO_EVERY_MEMBER or "json" not in response.headers.get("content-type", ""):
        return
    assert not has_items(response.json()), response.text[:2000]


# --- GraphQL --------------------------------------------------------------------------------------------------------

VERB = re.compile(
    r"^(create|update|delete|enable|disable|rotate|reorder|retry|train|activate|score|route|move|restore|set|link"
    r"|unlink|batch|compute)(?=[A-Z])"
)
# What an `id` argument points at, by the root field's noun (typed roots: by their type's code).
GRAPHQL_NOUNS = {
    "automationRule": "rule",
    "automationRuleHook": "rule",
    "automationRun": "run",
    "automationRules": "rule",
    "task": "task",
    "activity": "activity",
    "completeActivity": "activity",
    "webhook": "webhook",
    "user": "user",
    "userRoles": "user",
    "scoringModel": "model",
    "routingPolicy": "policy",
    "role": "role",
    "entityType": "lead_type",
    "pipeline": "pipeline",
    "stage": "stage",
    "element": "element",
    "relation": "relation",
    "department": "department",
    "workplace": "workplace",
    "cardLayout": "layout",
    "calendarEvent": "event",
    "closeProbability": "element",
    "bestCallTime": "element",
    "alert": "alert",
    "checkAlert": "alert",
    "alertEvents": "alert",
    "lead": "element",
    "company": "company",
    "file": "file",
    "fileDownloadUrl": "file",
}
# Other arguments by name.
GRAPHQL_ARGUMENTS: dict[str, Any] = {
    "pipelineId": "{default_pipeline}",
    "stageId": "{stage}",
    "ruleId": "{rule}",
    "ids": ["{rule}"],
    "elementId": "{element}",
    "parentId": "{company}",
    "childId": "{element}",
    "userId": "{user}",
    "assigneeId": "{user}",
    "modelId": "{model}",
    "policyId": "{policy}",
    "roleIds": ["{role}"],
    "stageIds": "{default_stages}",
    "type": "lead",
    "entityType": "lead",
    "parentType": "lead",
    "childType": "company",
    "first": 10,
    "perStage": 5,
    "deleted": False,
    "force": True,
    "refreshToken": "made-up-refresh-token",
}
GRAPHQL_ROOT_ARGUMENTS: dict[str, dict[str, Any]] = {
    "entityType": {"code": "lead"},
    "updateField": {"code": "note"},
    "deleteField": {"code": "note"},
    "setUserRoles": {"userId": "{spare_user}"},
    "automationExperiment": {"ruleId": "{ab_rule}"},
    "promoteAutomationVariant": {"ruleId": "{ab_rule}", "variant": "B"},
    "deleteUser": {"id": "{spare_user}"},
    "deleteDepartment": {"id": "{spare_department}"},
    "calendar": {"from": "2026-05-01T00:00:00", "to": "2026-07-01T00:00:00"},
}
GRAPHQL_INPUTS: dict[str, Any] = {
    "AutomationRuleCreateInput": {
        "name": "Walk rule",
        "entityType": "lead",
        "trigger": {"type": "element.created"},
        "actions": [{"type": "add_comment", "params": {"text": "walk"}}],
    },
    "AutomationRuleUpdateInput": {"name": "Walk rule"},
    "TaskCreateInput": {"title": "Walk task", "elementId": "{element}"},
    "TaskUpdateInput": {"title": "Walk task"},
    "ActivityCreateInput": {"kind": "call", "subject": "Walk call", "elementIds": ["{element}"]},
    "ActivityUpdateInput": {"subject": "Walk call renamed"},
    "WebhookCreateInput": {"url": "http://127.0.0.1:9/walk", "events": ["element.moved"]},
    "WebhookUpdateInput": {"description": "Walk"},
    "UserCreateInput": {"name": "Walk User", "email": "walk.user@example.com"},
    "UserUpdateInput": {"capacity": 3},
    "ScoringModelCreateInput": {
        "name": "Walk model",
        "entityType": "lead",
        "kind": "factors",
        "factors": [{"kind": "presence", "field": "note", "points": 5}],
    },
    "RoutingPolicyCreateInput": {"name": "Walk policy", "entityType": "lead"},
    "RoutingPolicyUpdateInput": {"name": "Walk policy"},
    "RoleCreateInput": {"name": "Walk role", "grants": [{"entityType": "lead", "read": "all", "import": "all"}]},
    "RoleUpdateInput": {"description": "Walk"},
    "EntityTypeCreateInput": {"code": "walk", "title": "Walk"},
    "EntityTypeUpdateInput": {"title": "Walk"},
    "FieldCreateInput": {"code": "walk_field", "type": "string"},
    "FieldUpdateInput": {"label": "Walk"},
    "PipelineCreateInput": {"title": "Walk pipeline"},
    "PipelineUpdateInput": {"title": "Walk pipeline"},
    "StageCreateInput": {"code": "WALK", "title": "Walk"},
    "StageUpdateInput": {"title": "Walk"},
    "ElementCreateInput": {"title": "Walk element", "values": {"note": "walk"}},
    "ElementUpdateInput": {"title": "Walk element"},
    "BatchItemInput": {"op": "update", "id": "{element}", "data": {"title": "Walk"}},
    "MergeElementInput": {"mergedIds": ["{merge_spare}"]},
    "DepartmentCreateInput": {"name": "Walk department", "parentId": "{department}"},
    "DepartmentUpdateInput": {"name": "Walk department renamed"},
    "WorkplaceCreateInput": {"name": "Walk workplace", "entityTypes": ["lead"], "roleIds": ["{role}"]},
    "WorkplaceUpdateInput": {"name": "Walk workplace renamed"},
    "CardLayoutInput": {
        "name": "Walk layout",
        "pipelineId": "{pipeline}",
        "sections": [{"code": "walk", "title": "Walk", "fields": ["title", "note"]}],
    },
    "CardLayoutPatch": {"name": "Walk layout renamed"},
    "AlertCreateInput": {
        "name": "Walk alert",
        "entityType": "lead",
        "metric": "created",
        "condition": {"kind": "threshold", "op": "lt", "value": 1},
    },
    "AlertUpdateInput": {"name": "Walk alert renamed"},
    "LoginInput": {"email": "vera.vault@example.com", "password": "not-veras-password", "workspaceId": "{workspace}"},
}


def required(value: GraphQLArgument | GraphQLInputField) -> bool:
    return isinstance(value.type, GraphQLNonNull) and value.default_value is Undefined


def noun(root: str) -> str:
    bare = VERB.sub("", root)
    return bare[:1].lower() + bare[1:]


def graphql_value(world: World, root: str, name: str, type_: GraphQLInputType) -> Any:
    if isinstance(type_, GraphQLNonNull):
        return graphql_value(world, root, name, type_.of_type)
    overrides = GRAPHQL_ROOT_ARGUMENTS.get(root, {})
    if name in overrides:
        return fill(overrides[name], world)
    if name == "id":
        target = GRAPHQL_NOUNS.get(noun(root))
        if target is None:
            pytest.fail(f"{root}: name what its `id` argument points at in GRAPHQL_NOUNS")
        return world.ids[target]
    if name in GRAPHQL_ARGUMENTS:
        return fill(GRAPHQL_ARGUMENTS[name], world)
    if isinstance(type_, GraphQLList):
        return [graphql_value(world, root, name, type_.of_type)]
    named = get_named_type(type_)
    if isinstance(named, GraphQLInputObjectType):
        if named.name in GRAPHQL_INPUTS:
            return fill(GRAPHQL_INPUTS[named.name], world)
        return {
            field_name: graphql_value(world, root, field_name, input_field.type)
            for field_name, input_field in named.fields.items()
            if required(input_field)
        }
    if isinstance(named, GraphQLEnumType):
        return next(iter(named.values))
    return {"String": "Walk", "Int": 1, "Float": 1.0, "Boolean": False, "JSON": {}}.get(named.name, "Walk")


def selection(named: GraphQLNamedType, deepest: int, depth: int = 0) -> str:
    """Every field that takes no required argument, down to `deepest` levels below: whatever an answer could carry.
    (A shallow one too: an error deep down nulls everything above it up to a nullable field.)"""
    if is_leaf_type(named):
        return ""
    if isinstance(named, GraphQLUnionType):
        members = " ".join(f"... on {m.name} {selection(m, deepest, depth)}" for m in named.types)
        return "{ __typename " + members + " }"
    assert isinstance(named, GraphQLObjectType | GraphQLInterfaceType)
    parts = ["__typename"]
    for name, definition in named.fields.items():
        if any(required(a) for a in definition.args.values()):
            continue
        inner = get_named_type(definition.type)
        if is_leaf_type(inner):
            parts.append(name)
        elif depth < deepest:
            parts.append(f"{name} {selection(inner, deepest, depth + 1)}")
    return "{ " + " ".join(parts) + " }"


@dataclass
class GraphQLCall:
    root: str
    document: str
    variables: dict[str, Any]

    @property
    def text(self) -> str:
        return json.dumps(self.variables)


def graphql_call(world: World, operation: str, root: str, deepest: int) -> GraphQLCall:
    assert world.graphql is not None
    parent = world.graphql.query_type if operation == "query" else world.graphql.mutation_type
    assert parent is not None
    definition = parent.fields[root]
    variables: dict[str, Any] = {}
    declared, passed = [], []
    for name, argument in definition.args.items():
        named_here = name in GRAPHQL_ARGUMENTS or name in GRAPHQL_ROOT_ARGUMENTS.get(root, {})
        if not required(argument) and not named_here:
            continue
        variables[name] = graphql_value(world, root, name, argument.type)
        declared.append(f"${name}: {argument.type}")
        passed.append(f"{name}: ${name}")
    head = f"{operation} Walk" + (f"({', '.join(declared)})" if declared else "")
    call = f"{root}({', '.join(passed)})" if passed else root
    return GraphQLCall(root, f"{head} {{ {call} {selection(get_named_type(definition.type), deepest)} }}", variables)


async def graphql_walk_step(app: FastAPI, world: World, outsider: Outsider, operation: str, root: str) -> None:
    for deepest in (0, 1, 2, 3) if operation == "query" else (2,):
        await graphql_walk_call(app, world, outsider, operation, graphql_call(world, operation, root, deepest))


async def graphql_walk_call(app: FastAPI, world: World, outsider: Outsider, operation: str, call: GraphQLCall) -> None:
    root = call.root
    assert world.graphql is not None
    assert validate(world.graphql, parse(call.document)) == [], call.document  # else the walk tests nothing
    before = await fingerprint(app, world.workspace_id)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app, raise_app_exceptions=False, client=WALK_CLIENT),
        base_url="http://testserver",
        headers={"Authorization": outsider.authorization},
    ) as http:
        response = await http.post("/graphql", json={"query": call.document, "variables": call.variables})
    await background.drain()
    world.calls += 1
    assert changed(before, await fingerprint(app, world.workspace_id)) == {}, response.text
    assert response.status_code < 500, response.text
    allowed, _ = VISIBLE_TO_EVERY_MEMBER.get(root, (frozenset(), ""))
    leaked = [s for s in world.leaked(response.text, call.text, allowed) if s.split(": ", 1)[1] not in outsider.own]
    assert leaked == [], call.document + "\n" + response.text[:2000]
    body = response.json()
    assert "internal server error" not in response.text.lower(), response.text
    value = (body.get("data") or {}).get(root)
    if body.get("errors"):
        # Each error a refusal by a service (it names its problem type), not a request the server could not run.
        assert all((e.get("extensions") or {}).get("code") for e in body["errors"]), call.document + response.text
        assert value is None, response.text[:2000]
        return
    if root in PUBLIC:
        return
    if operation == "mutation":
        assert value["__typename"] in GRAPHQL_REFUSALS, call.document + "\n" + response.text[:2000]
    elif root not in VISIBLE_TO_EVERY_MEMBER:
        assert not has_items(value), call.document + "\n" + response.text[:2000]


def graphql_roots(schema: GraphQLSchema) -> list[tuple[str, str]]:
    assert schema.query_type is not None
    assert schema.mutation_type is not None
    return [("query", name) for name in schema.query_type.fields] + [
        ("mutation", name) for name in schema.mutation_type.fields
    ]


@pytest.mark.parametrize(
    ("operation", "root"),
    [pytest.param(op, root, id=root, marks=pending(root)) for op, root in graphql_roots(GENERIC_SCHEMA)],
)
async def test_an_outsider_gets_nothing_from_graphql(
    app: FastAPI, world: World, outsider: Outsider, operation: str, root: str
) -> None:
    await graphql_walk_step(app, world, outsider, operation, root)


async def test_an_outsider_gets_nothing_from_the_typed_graphql_fields(
    app: FastAPI, world: World, outsider: Outsider
) -> None:
    """The root fields the workspace's types add (`lead`, `leads`, `createLead`, …), introspected as the outsider."""
    schema = await introspect(app, outsider.authorization.removeprefix("Bearer "))
    typed = sorted(set(graphql_roots(schema)) - set(graphql_roots(GENERIC_SCHEMA)))
    assert ("query", "leads") in typed, typed
    assert ("mutation", "createCompany") in typed, typed
    failures = []
    for operation, root in typed:
        try:
            await graphql_walk_step(app, world, outsider, operation, root)
        except AssertionError as failed:
            failures.append(f"{root}: {failed}")
    assert failures == [], "\n".join(failures)


# --- the admin's side -------------------------------------------------------------------------------------------------


async def test_the_admin_succeeds_with_the_walks_requests(app: FastAPI, settings: Settings) -> None:
    """The walk's requests are plausible: in a workspace of its own, the admin sends the same ones and they succeed
    (writes first, then the deletes in an order that lets each succeed), so the outsider's refusals are refusals."""
    world = await build_world(app, settings, "walk replay")
    ops = operations()
    order = {name: i for i, name in enumerate(DELETE_ORDER)}
    deletes = sorted((op for op in ops if op.method == "delete"), key=lambda op: order.get(op.operation_id, -1))
    unexpected = []
    for operation in [op for op in ops if op.method != "delete"] + deletes:
        response = await send(app, f"Bearer {world.tenant.admin_key}", rest_request(operation, world))
        await background.drain()
        expected = ADMIN_REFUSALS.get(operation.operation_id, (None, ""))[0]
        if operation.operation_id in PUBLIC:
            continue
        if not (200 <= response.status_code < 300 or response.status_code == expected):
            unexpected.append(f"{operation.operation_id}: {response.status_code} {response.text[:300]}")
    assert unexpected == [], "\n".join(unexpected)


DELETE_ORDER = [
    "unlink_element",
    "delete_task",
    "delete_activity",
    "delete_webhook",
    "delete_rule",
    "delete_routing_policy",
    "delete_api_key",
    "delete_workplace",
    "delete_layout",
    "delete_department",
    "delete_role",
    "delete_user",
    "delete_element",
    "delete_stage",
    "delete_field",
    "delete_pipeline",
    "delete_relation",
    "delete_entity_type",
]
# Requests the admin cannot make succeed in the replay's order, with the answer they get and why that is right.
ADMIN_REFUSALS: dict[str, tuple[int, str]] = {
    "receive_hook": (404, "the walk sends a made-up token: the real one is a secret nobody else knows"),
    "get_calendar_feed": (404, "the walk sends a made-up token: a feed's secret address is shown to its user once"),
    "retry_run": (409, "the world's run succeeded: only a failed run is retried (the state check after the role's)"),
    "restore_element": (409, "the element is deleted only later in the replay: restoring a live one is a conflict"),
    "resume_import": (409, "the world's import finished: only a failed or stale one is resumed"),
    "train_scoring_model": (409, "a factors model needs no training (the state check after the role's)"),
    "compute_close_probability": (409, "the world's model is a factors model: only a learned one estimates it"),
    "get_my_counters": (403, "counters are a person's: no API key has any, the admin's neither"),
    "get_me": (403, "`me` is a person: an API key is none"),
    "get_manager_dashboard": (403, "a manager's dashboard is a person's own: an API key has none"),
    "put_triage_config": (
        422,
        "the world's one enum field has one option: a category needs two (checked after the role)",
    ),
    "get_triage_config": (404, "so the world's lead type has no triage configuration"),
    "train_triage": (404, "nor anything to train"),
    "triage_element": (409, "nor a trained triage model to classify with"),
    "login": (401, "the walk's password is wrong: the outsider does not know Vera's"),
    "refresh_token": (401, "the walk's refresh token is made up: a real one is a credential"),
}


async def test_after_the_walk_the_admin_sees_the_same_workspace(app: FastAPI, world: World, outsider: Outsider) -> None:
    """Runs after the walk (same module, same outsider): everything the admin reads is as it was."""
    async with make_client(app, world.tenant.admin_key) as admin:
        assert await admin_view(admin, world, frozenset(world.outsiders)) == world.admin_view
    assert world.calls > 0
