"""Hostile templates: refused when the rule is saved where the template alone shows it, otherwise stopped at render
time within the budget, and a run that hits the limit fails with a clear error while the worker goes on."""

import json
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import update

from app.automation.models import AutomationRule
from app.automation.templates import MAX_OUTPUT_CHARS, check_template, render
from app.db import unit_of_work
from app.errors import Invalid
from app.settings import Settings
from tests.automation.harness import ROOT, running_worker, wait_for
from tests.factories import create_element, lead_type

# Each is over a limit whatever the data: the rule is refused when saved.
REFUSED_WHEN_SAVED = [
    "{{ 9 ** (9 ** 9) }}",
    "{{ 'x' * 10**9 }}",
    "{{ [0] * 10**9 }}",
    "{% for i in range(99999) %}{% for j in range(99999) %}{% endfor %}{% endfor %}",
    "{% for i in range(300) %}{% for j in range(300) %}{{ i }}{% endfor %}{% endfor %}",
    "{{ range(10**9)|list|length }}",
    "{{ 'x'|center(10**9) }}",
    "{{ ('ab' * 100000)|wordwrap(1) }}",
    "{% macro f(n) %}{{ f(n) }}{{ f(n) }}{% endmacro %}{{ f(1) }}",
    "{% include 'other' %}",
    "{% for x in [1] recursive %}{{ loop([x]) }}{% endfor %}",
    "{{ " + "(" * 2000 + "1" + ")" * 2000 + " }}",
]

# Over a limit only with the data they are given: stopped when rendered.
BODY = {"s": "y" * 200_000, "n": 10**9, "w": 999_999_999, "short": "z" * 1000}
STOPPED_AT_RENDER = [
    "{{ body.s * body.n }}",
    "{{ body.n ** body.n }}",
    "{% for a in body.short %}{% for b in body.short %}{% for c in body.short %}{% endfor %}{% endfor %}{% endfor %}",
    "{% for i in range(body.n) %}{% endfor %}",
    "{% set ns = namespace(s=body.s) %}{% for i in range(40) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}{{ ns.s }}",
    "{% set ns = namespace(a=[1]) %}{% for i in range(80) %}{% set ns.a = [ns.a, ns.a] %}{% endfor %}{{ ns.a }}",
    "{% set ns = namespace(a=1) %}{% for i in range(80) %}{% set ns.a = dict(l=ns.a, r=ns.a) %}{% endfor %}"
    "{{ ns.a|tojson }}",
    "{{ 'x'|center(body.n) }}",
    "{{ 'x'.ljust(body.n) }}",
    "{{ ('%' ~ body.w ~ 'd') % 1 }}",
    "{{ ('{:>' ~ body.w ~ '}').format(1) }}",
    "{{ body.s|replace('', body.s) }}",
    "{{ range(50000)|join(body.s) }}",
    "{{ [body.s] * 10000 }}",
    "{{ [1]|batch(body.n, body.s)|list }}",
    "{{ [1]|slice(body.n)|list }}",
    "{{ body.s|indent(body.w) }}",
    "{{ range(10)|map('center', body.n)|join }}",
    "{{ lipsum(n=body.n) }}",
]

# Rendered in a child process with a memory cap and a timeout: on a sandbox without limits these hang or eat memory.
RENDER_IN_CHILD = textwrap.dedent(
    """
    import json, resource, sys, time
    resource.setrlimit(resource.RLIMIT_AS, (2 * 1024**3, 2 * 1024**3))
    from app.automation.templates import render
    from app.errors import Invalid
    request = json.load(sys.stdin)
    started = time.monotonic()
    try:
        render({"text": request["template"]}, {"body": request["body"], "title": "T"})
        outcome = "rendered"
    except Invalid as exc:
        outcome = "refused: " + str(exc)
    except BaseException as exc:
        outcome = "crashed: " + type(exc).__name__
    print(json.dumps({"outcome": outcome, "seconds": time.monotonic() - started}))
    """
)


def render_in_child(template: str) -> dict[str, Any]:
    try:
        finished = subprocess.run(
            [sys.executable, "-c", RENDER_IN_CHILD],
            input=json.dumps({"template": template, "body": BODY}),
            capture_output=True,
            text=True,
            timeout=30,
            cwd=ROOT,
        )
    except subprocess.TimeoutExpired:
        return {"outcome": "hung for 30s", "seconds": 30.0}
    lines = finished.stdout.strip().splitlines()
    result: dict[str, Any] = json.loads(lines[-1]) if lines else {"outcome": finished.stderr[-300:], "seconds": 0.0}
    return result


def test_ordinary_templates_still_render() -> None:
    context = {
        "title": "ACME",
        "values": {"budget": 500, "tags": ["a", "b"]},
        "body": {"items": [{"name": "x"}, {"name": "y"}]},
    }
    assert render("Call {{ title }} ({{ values.budget }})", context) == "Call ACME (500)"
    assert render("{{ values.tags|join(', ') }} {{ body['items']|map(attribute='name')|join('/') }}", context) == (
        "a, b x/y"
    )
    assert render("{% for t in values.tags %}{{ loop.index }}{{ t|upper }}{% endfor %}", context) == "1A2B"
    assert render("{{ '%05d'|format(42) }} {{ '{:>5}'.format(title) }} {{ title ~ '!' }}", context) == (
        "00042  ACME ACME!"
    )
    assert render("{{ {'a': [1, 2]}|tojson }} {{ (2 ** 10) * 3 }} {{ range(3)|list }}", context) == (
        '{"a": [1, 2]} 3072 [0, 1, 2]'
    )
    assert render("{% set ns = namespace(n=0) %}{% for i in range(5) %}{% set ns.n = ns.n + i %}{% endfor %}"
                  "{{ ns.n }}", context) == "10"  # fmt: skip
    # A loop within the budget, and output up to the limit, are fine.
    assert len(render("{% for i in range(20000) %}x{% endfor %}", context)) == 20000
    assert len(render("{{ 'x' * " + str(MAX_OUTPUT_CHARS) + " }}", context)) == MAX_OUTPUT_CHARS


@pytest.mark.parametrize("template", REFUSED_WHEN_SAVED)
def test_a_template_over_the_limits_whatever_the_data_is_refused_when_checked(template: str) -> None:
    with pytest.raises(Invalid) as refused:
        check_template(template, "actions[0].params.text")
    assert refused.value.errors[0].field == "actions[0].params.text"


@pytest.mark.parametrize("template", STOPPED_AT_RENDER)
def test_a_template_over_the_limits_with_its_data_is_stopped_quickly(template: str) -> None:
    check_template(template, "text")  # nothing in the template alone says it is too big
    result = render_in_child(template)
    assert result["outcome"].startswith("refused: Template"), result
    assert any(word in result["outcome"] for word in ("stopped", "undefined")), result
    assert result["seconds"] < 3, result


async def test_saving_a_rule_with_hostile_templates_is_a_422_naming_each(client: httpx.AsyncClient) -> None:
    await lead_type(client)
    response = await client.post(
        "/automation/rules",
        json={
            "name": "Hostile",
            "entity_type": "lead",
            "trigger": {
                "type": "webhook.received",
                "find": {"field": "title", "op": "eq", "value": "{{ 'x' * 10**9 }}"},
            },
            "actions": [
                {"type": "add_comment", "params": {"text": "{{ 9 ** (9 ** 9) }}"}},
                {
                    "type": "create_task",
                    "params": {
                        "title": "{% for i in range(99999) %}{% for j in range(99999) %}{% endfor %}{% endfor %}"
                    },
                },
                {
                    "type": "webhook",
                    "params": {"url": "https://example.com", "body": {"a": ["{{ 'x'|center(10**9) }}"]}},
                },
            ],
        },
    )
    assert response.status_code == 422, response.text
    fields = {e["field"] for e in response.json()["errors"]}
    assert {
        "trigger.find.value",
        "actions[0].params.text",
        "actions[1].params.title",
        "actions[2].params.body.a[0]",
    } <= fields, fields


@pytest.fixture(scope="module")
def worker(settings: Settings) -> Iterator[subprocess.Popen[bytes]]:
    with running_worker(settings) as process:
        yield process


async def test_a_run_over_the_limits_fails_with_a_clear_error_and_the_worker_goes_on(
    app: FastAPI, client: httpx.AsyncClient, worker: subprocess.Popen[bytes]
) -> None:
    await lead_type(client)
    hostile = await client.post(
        "/automation/rules",
        json={
            "name": "Hostile",
            "entity_type": "lead",
            "trigger": {"type": "element.created"},
            "actions": [{"type": "add_comment", "params": {"text": "placeholder"}}],
        },
    )
    assert hostile.status_code == 201, hostile.text
    # As a rule saved before the checks existed: four loops over a 500-character title (6 * 10^10 steps).
    loops = "{% for a in title %}" * 4 + "{% endfor %}" * 4 + "looped over {{ title }}"
    async with unit_of_work(app.state.sessionmaker) as session:
        await session.execute(
            update(AutomationRule)
            .where(AutomationRule.id == uuid.UUID(hostile.json()["id"]))
            .values(actions=[{"type": "add_comment", "params": {"text": loops}}])
        )
    benign = await client.post(
        "/automation/rules",
        json={
            "name": "Benign",
            "entity_type": "lead",
            "trigger": {"type": "element.created"},
            "actions": [{"type": "add_comment", "params": {"text": "hello {{ title[:3] }}"}}],
        },
    )
    assert benign.status_code == 201, benign.text

    first = await create_element(client, "lead", title="a" * 500)
    second = await create_element(client, "lead", title="second")

    async def runs(rule_id: str) -> dict[str, dict[str, Any]]:
        items = (await client.get("/automation/runs", params={"rule_id": rule_id})).json()["items"]
        return {r["element_id"]: r for r in items if r["status"] in ("succeeded", "failed")}

    async def all_finished() -> bool:
        return len(await runs(hostile.json()["id"])) == 2 and len(await runs(benign.json()["id"])) == 2

    await wait_for(all_finished, seconds=30)
    over = (await runs(hostile.json()["id"]))[first["id"]]
    assert over["status"] == "failed", over
    assert over["attempts"] == 1, over  # a template over the limits is not retried
    assert "stopped: more than 50000 loop steps and calls" in over["error"], over
    # The same rule with data inside the limits, and the other rule of each event, ran.
    assert (await runs(hostile.json()["id"]))[second["id"]]["status"] == "succeeded"
    assert {r["status"] for r in (await runs(benign.json()["id"])).values()} == {"succeeded"}
    history = (await client.get(f"/elements/{second['id']}/history")).json()["items"]
    assert {e["data"]["text"] for e in history if e["kind"] == "comment"} == {"hello sec", "looped over second"}


async def test_rendered_parameters_that_do_not_fit_fail_once_naming_the_parameter(
    client: httpx.AsyncClient, worker: subprocess.Popen[bytes]
) -> None:
    await lead_type(client)
    rule = await client.post(
        "/automation/rules",
        json={
            "name": "Empty title",
            "entity_type": "lead",
            "trigger": {"type": "element.created"},
            "actions": [{"type": "create_task", "params": {"title": "{{ values.email|default('') }}"}}],
        },
    )
    assert rule.status_code == 201, rule.text
    await create_element(client, "lead", title="no e-mail")

    async def finished() -> list[dict[str, Any]]:
        items = (await client.get("/automation/runs", params={"rule_id": rule.json()["id"]})).json()["items"]
        return [r for r in items if r["status"] in ("succeeded", "failed")]

    (run,) = await wait_for(finished, seconds=20)
    assert run["status"] == "failed"
    assert run["attempts"] == 1, run  # it would fail the same way again: not retried
    assert "actions[0].params.title" in run["error"], run
