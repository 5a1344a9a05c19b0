"""Field patterns and the built-in forms run on a linear-time engine: no pattern, no value can stall a process."""

import json
import subprocess
import sys
import time

import httpx
import pytest

from app.entity_types.fields import FieldSpec, ValueRejected, parse_value
from tests.factories import create_field, create_type

# Patterns that backtrack catastrophically on Python's `re`, with inputs that make them fail only at the end.
CATASTROPHIC = [
    (r"(a+)+$", "a" * 5000 + "!"),
    (r"(a|aa)+$", "a" * 5000 + "!"),
    (r"(.*a){20}", "a" * 5000 + "!"),
    (r"(\w+\s?)*$", "word " * 1000 + "!"),
    (r"([a-z]+)*[0-9]", "a" * 5000),
    (r"^(a?){25}a{25}$", "a" * 25),
]
MATCHING = r"^(a?){25}a{25}$"

_PROBE = """
import json, sys, time
from app.entity_types.fields import FieldSpec, ValueRejected, parse_value
times = {}
for pattern, value in json.loads(sys.argv[1]):
    spec = FieldSpec(code="f", type="text", validation={"pattern": pattern})
    started = time.perf_counter()
    try:
        parse_value(value, spec)
    except ValueRejected:
        pass
    times[pattern] = time.perf_counter() - started
print(json.dumps(times))
"""


def test_catastrophic_patterns_run_in_linear_time() -> None:
    """In a child process, so that a backtracking engine fails the test by its timeout instead of hanging it."""
    try:
        done = subprocess.run(
            [sys.executable, "-c", _PROBE, json.dumps(CATASTROPHIC)], capture_output=True, text=True, timeout=60
        )
    except subprocess.TimeoutExpired:
        pytest.fail("a field pattern stalled the process")
    assert done.returncode == 0, done.stderr
    times = json.loads(done.stdout)
    assert set(times) == {pattern for pattern, _ in CATASTROPHIC}
    slow = {pattern: seconds for pattern, seconds in times.items() if seconds > 0.2}
    assert not slow, slow


@pytest.mark.parametrize(("pattern", "value"), CATASTROPHIC, ids=[pattern for pattern, _ in CATASTROPHIC])
def test_the_engine_answers_and_answers_right(pattern: str, value: str) -> None:
    spec = FieldSpec(code="f", type="text", validation={"pattern": pattern})
    if pattern == MATCHING:
        assert parse_value(value, spec) == value
        return
    with pytest.raises(ValueRejected, match="does not match"):
        parse_value(value, spec)


def test_the_length_is_checked_before_any_pattern() -> None:
    spec = FieldSpec(code="f", type="string", validation={"pattern": r"(a+)+$", "max_length": 10})
    with pytest.raises(ValueRejected, match="longer than 10"):
        parse_value("a" * 11, spec)
    # The built-in forms too: an over-long e-mail is refused for its length, before its form is matched.
    with pytest.raises(ValueRejected, match="longer than 255"):
        parse_value("a@" + "a." * 200 + "@", FieldSpec(code="e", type="email", validation={}))


@pytest.mark.parametrize(
    ("field_type", "value"),
    [
        ("email", "a@" + "a." * 50_000 + "@"),  # quadratic on a backtracking engine
        ("email", "a@" + "a" * 100_000),
        ("url", "http://" + "a" * 100_000 + " x"),
        ("phone", "+" + "1" * 100_000 + "x"),
    ],
    ids=["email-dots", "email-long-domain", "url", "phone"],
)
def test_built_in_forms_are_linear(field_type: str, value: str) -> None:
    spec = FieldSpec(code="f", type=field_type, validation={"max_length": 200_000})
    started = time.perf_counter()
    with pytest.raises(ValueRejected, match="is not a valid"):
        parse_value(value, spec)
    assert time.perf_counter() - started < 0.2


@pytest.mark.parametrize(
    ("value", "ok"),
    [
        ("ann@example.com", True),
        ("  ann@example.com ", True),
        ("ann@example", False),
        ("a b@example.com", False),
        ("ann\u00a0x@example.com", False),
        ("ann@@example.com", False),
    ],
)
def test_the_email_form_keeps_its_meaning(value: str, ok: bool) -> None:
    spec = FieldSpec(code="e", type="email", validation={})
    if ok:
        assert parse_value(value, spec) == value.strip()
    else:
        with pytest.raises(ValueRejected):
            parse_value(value, spec)


class TestRest:
    @pytest.mark.parametrize(
        "pattern",
        [r"(a)\1", r"(?=a)b", r"(?<=a)b", r"(?P<x>a)(?P=x)", "a{1001}", r"\pL{1000}", "("],
    )
    async def test_a_pattern_re2_cannot_compile_is_refused_when_saved(
        self, client: httpx.AsyncClient, pattern: str
    ) -> None:
        await create_type(client, "lead")
        response = await client.post(
            "/entity-types/lead/fields", json={"code": "ref", "type": "string", "pattern": pattern}
        )
        assert response.status_code == 422, response.text
        problem = response.json()
        assert "'ref'" in problem["detail"]
        assert [e["field"] for e in problem["errors"]] == ["pattern"]
        await create_field(client, "lead", "ref", "string")
        patched = await client.patch("/entity-types/lead/fields/ref", json={"pattern": pattern})
        assert patched.status_code == 422, patched.text
        assert "'ref'" in patched.json()["detail"]
        assert [e["field"] for e in patched.json()["errors"]] == ["pattern"]

    async def test_hostile_patterns_answer_quickly_through_the_api(self, client: httpx.AsyncClient) -> None:
        await create_type(client, "lead")
        for index, (pattern, _) in enumerate(CATASTROPHIC):
            await create_field(client, "lead", f"f{index}", "text", pattern=pattern)
        for index, (pattern, value) in enumerate(CATASTROPHIC):
            started = time.perf_counter()
            response = await client.post(
                "/entity-types/lead/elements", json={"title": "x", "values": {f"f{index}": value}}
            )
            assert time.perf_counter() - started < 0.9, pattern
            assert response.status_code == (201 if pattern == MATCHING else 422), response.text
