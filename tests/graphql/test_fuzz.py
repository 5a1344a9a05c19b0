"""GraphQL fuzz pass: random valid operations from the introspected schema never get a 500 or an internal error.

A workspace is seeded with every kind of resource (typed fields of each kind, a reference, a relation, users,
elements, a rule, a scoring model, a routing policy, a task), its typed schema is introspected over HTTP and
`tests/graphql/fuzz.py` generates operations from it. CI runs GRAPHQL_FUZZ_QUERIES (default 300) operations with
a fixed GRAPHQL_FUZZ_SEED; `GRAPHQL_FUZZ_QUERIES=5000 GRAPHQL_FUZZ_SEED=$RANDOM` runs a deeper pass.
"""

import json
import os
import random
import re
import time
from collections import Counter
from typing import Any

import httpx
from fastapi import FastAPI
from graphql import build_client_schema, get_introspection_query

from tests.conftest import Tenant
from tests.factories import create_element, create_field, create_type, create_user, default_pipeline, lead_type
from tests.graphql.fuzz import Generator, Operation, Pool

QUERIES = int(os.environ.get("GRAPHQL_FUZZ_QUERIES", "300"))
SEED = int(os.environ.get("GRAPHQL_FUZZ_SEED", "11"))
INTROSPECT_EVERY = 50  # the fuzzer's own mutations change the typed schema
LEAD_FIELDS = ["budget", "industry", "company_size", "email", "created_on", "is_b2b", "employer", "tags", "owner"]
LEAD_FIELDS += ["big", "price", "met_at", "site", "notes"]
REFUSAL = re.compile(r'"__typename": "(ValidationError|NotFound|Conflict|Forbidden)"')


async def _seed(client: httpx.AsyncClient) -> Pool:
    await lead_type(client)
    await create_type(client, "company", preset="list")
    await create_field(client, "company", "city", "string", max_length=50)
    await create_field(client, "lead", "employer", "reference", target_type="company")
    await create_field(client, "lead", "tags", "string", multiple=True)
    await create_field(client, "lead", "owner", "user")
    await create_field(client, "lead", "big", "integer")
    await create_field(client, "lead", "price", "money")
    await create_field(client, "lead", "met_at", "datetime")
    await create_field(client, "lead", "site", "url")
    await create_field(client, "lead", "notes", "text")
    relation = (await client.post("/relations", json={"parent_type": "company", "child_type": "lead"})).json()
    ann = await create_user(client, "Ann Senior", "senior")
    bob = await create_user(client, "Bob Junior", "junior", capacity=1)
    company = await create_element(client, "company", title="ACME Inc", values={"city": "Berlin"})
    pool = Pool(
        types=["lead", "company", "nope"],
        codes=[*LEAD_FIELDS, "city"],
    )
    pool.add("Relation", relation["id"])
    pool.add("User", ann["id"])
    pool.add("User", bob["id"])
    pool.add("Company", company["id"])
    for i in range(4):
        lead = await create_element(
            client,
            "lead",
            title=f"Lead {i}",
            amount=100 * i,
            assigned_to=ann["id"],
            values={"budget": 1000 * i, "industry": "it", "tags": ["a", "b"], "employer": company["id"]},
        )
        pool.add("Lead", lead["id"])
    await client.post(f"/elements/{company['id']}/links", json={"child_id": lead["id"]})
    pipeline = await default_pipeline(client, "lead")
    pool.add("Pipeline", pipeline["id"])
    for stage in pipeline["stages"]:
        pool.add("Stage", stage["id"])
    pool.stage_codes = [s["code"] for s in pipeline["stages"]] + ["NOPE"]
    rule = await client.post(
        "/automation/rules",
        json={
            "name": "on create",
            "entity_type": "lead",
            "trigger": {"type": "element.created"},
            "actions": [{"type": "set_fields", "params": {"values": {"notes": "new"}}}],
        },
    )
    scoring = await client.post(
        "/scoring/models",
        json={
            "name": "fit",
            "entity_type": "lead",
            "kind": "factors",
            "factors": [{"kind": "enum", "field": "industry", "points": {"it": 30}}],
        },
    )
    routing = await client.post("/routing/policies", json={"name": "tiers", "entity_type": "lead"})
    task = await client.post("/tasks", json={"title": "call", "element_id": lead["id"], "assignee_id": ann["id"]})
    created = {"AutomationRule": rule, "ScoringModel": scoring, "RoutingPolicy": routing, "Task": task}
    for typename, response in created.items():
        assert response.status_code == 201, response.text
        pool.add(typename, response.json()["id"])
    return pool


def _failure(operation: Operation, response: httpx.Response) -> dict[str, Any] | None:
    """A 5xx, a body that is no GraphQL answer, or an error the server did not mean (masked as internal)."""
    try:
        body = response.json()
    except ValueError:
        body = None
    errors = (body or {}).get("errors") or [] if isinstance(body, dict) else []
    internal = [e for e in errors if "internal server error" in str(e.get("message", "")).lower()]
    if response.status_code < 500 and isinstance(body, dict) and not internal:
        return None
    return {
        "root": operation.root,
        "status": response.status_code,
        "errors": (internal or errors or [response.text[:300]])[:2],
        "query": operation.document,
        "variables": operation.variables,
    }


async def _schema(http: httpx.AsyncClient) -> Any:
    response = await http.post("/graphql", json={"query": get_introspection_query()})
    assert response.status_code == 200, response.text
    return build_client_schema(response.json()["data"])


async def test_random_valid_operations_never_get_an_internal_error(
    app: FastAPI, tenant: Tenant, client: httpx.AsyncClient
) -> None:
    pool = await _seed(client)
    headers = {"Authorization": f"Bearer {tenant.admin_key}"}
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)  # a crash is a 500 to report, not raise
    failures: list[dict[str, Any]] = []
    outcomes = {"data": 0, "refused": 0}
    refusals: Counter[str] = Counter()
    started = time.monotonic()
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver", headers=headers) as http:
        generator = Generator(await _schema(http), random.Random(SEED), pool)
        for n in range(QUERIES):
            if n and n % INTROSPECT_EVERY == 0:
                generator.schema = await _schema(http)
            operation = generator.operation()
            response = await http.post("/graphql", json={"query": operation.document, "variables": operation.variables})
            failure = _failure(operation, response)
            if failure is not None:
                failures.append(failure)
                continue
            body = response.json()
            pool.harvest(body.get("data"))
            outcomes["refused" if body.get("errors") else "data"] += 1
            refusals.update(str((e.get("extensions") or {}).get("code", "graphql")) for e in body.get("errors") or [])
            refusals.update(REFUSAL.findall(json.dumps(body.get("data"))))

    elapsed = time.monotonic() - started

    print(
        f"\nGraphQL fuzz: {QUERIES} operations (seed {SEED}) in {elapsed:.1f} s: {outcomes['data']} answered, "
        f"{outcomes['refused']} with errors, {len(failures)} internal errors; {generator.invalid} generated "
        f"documents were invalid and regenerated; refusals: {dict(refusals.most_common(8))}"
    )
    assert generator.invalid < QUERIES // 4, "the generator makes too many invalid documents"
    assert outcomes["data"] > QUERIES // 3, outcomes  # the values reach real resources, not only refusals
    assert not failures, _report(failures)


def _report(failures: list[dict[str, Any]]) -> str:
    """One example per root field, with how often that root failed."""
    by_root = Counter(f["root"] for f in failures)
    examples = {f["root"]: f for f in reversed(failures)}
    lines = [f"{len(failures)} operations failed on {len(by_root)} root fields:"]
    for root, count in by_root.most_common():
        lines.append(f"{count}x {root}: " + json.dumps(examples[root], default=str)[:1500])
    return "\n".join(lines)
