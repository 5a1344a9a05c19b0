"""A/B variants of automation rules, on generated data with a known answer: the hash assignment follows the weights,
each element gets its variant's action and one timeline entry, the report counts exactly what the test moved, and the
winner is promoted once the sample is there, not before."""

import asyncio
import hashlib
import uuid
from datetime import timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import func, select

from app.audit.models import AuditEntry
from app.automation import abstats, experiments, runner
from app.automation.models import AutomationRule, VariantAssignment
from app.settings import Settings
from tests.automation.test_rule_typing import RecordingWaker, handle_new_events
from tests.conftest import Tenant, make_client
from tests.factories import create_element, created, lead_type

NAMESPACE = uuid.UUID("0b9e4c1e-2f57-4a8e-a0c1-1f4c3b2a9d10")


def variant(key: str, budget: int, weight: float = 50) -> dict[str, Any]:
    return {"key": key, "weight": weight, "actions": [{"type": "set_fields", "params": {"values": {"budget": budget}}}]}


def ab_rule(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "name": "Budget test",
        "entity_type": "lead",
        "trigger": {"type": "element.created"},
        "actions": [{"type": "set_fields", "params": {"values": {"budget": 1}}}],
        "variants": [variant("A", 100), variant("B", 200)],
        "experiment": {"min_sample": 10, "threshold": 0.95},
    }
    body.update(overrides)
    return body


# --- the arithmetic -------------------------------------------------------------------------------------------


class TestAssignment:
    def test_the_bucket_is_a_fixed_function_of_the_ids(self) -> None:
        rule_id = uuid.UUID("11111111-1111-1111-1111-111111111111")
        element_id = uuid.UUID("22222222-2222-2222-2222-222222222222")
        # sha256("rule:element")[:8] / 2**64: the same in every process and on every machine.
        digest = hashlib.sha256(f"{rule_id}:{element_id}".encode()).digest()
        assert abstats.bucket(rule_id, element_id) == int.from_bytes(digest[:8], "big") / 2**64
        assert abstats.bucket(rule_id, element_id) == pytest.approx(0.4848, abs=1e-4)
        assert abstats.bucket(rule_id, element_id) == abstats.bucket(str(rule_id), str(element_id))
        assert abstats.bucket(rule_id, element_id) != abstats.bucket(element_id, rule_id)

    @pytest.mark.parametrize("weights", [[1, 1], [1, 3], [20, 30, 50], [5, 1, 1, 1, 2]])
    def test_shares_follow_the_weights_over_10k_ids(self, weights: list[float]) -> None:
        rule_id = uuid.uuid5(NAMESPACE, "rule")
        counts = [0] * len(weights)
        for n in range(10_000):
            counts[abstats.pick(weights, abstats.bucket(rule_id, uuid.uuid5(NAMESPACE, str(n))))] += 1
        total = sum(weights)
        for count, weight in zip(counts, weights, strict=True):
            assert count / 10_000 == pytest.approx(weight / total, abs=0.015)

    def test_pick_covers_the_edges(self) -> None:
        assert abstats.pick([1, 1], 0.0) == 0
        assert abstats.pick([1, 1], 0.4999) == 0
        assert abstats.pick([1, 1], 0.5) == 1
        assert abstats.pick([1, 1], 0.999999999) == 1


class TestPosteriors:
    def test_p_best_and_intervals_match_closed_forms(self) -> None:
        flat = abstats.beta_posterior(0, 0)
        assert abstats.prob_best([flat, flat]) == pytest.approx([0.5, 0.5], abs=1e-6)
        # X ~ Beta(2, 1), Y ~ Beta(1, 1): P(X > Y) = ∫ 2x · x dx = 2/3.
        assert abstats.prob_best([abstats.beta_posterior(1, 0), flat])[0] == pytest.approx(2 / 3, abs=2e-3)
        low, high = abstats.interval(flat)
        assert (low, high) == (pytest.approx(0.025, abs=1e-3), pytest.approx(0.975, abs=1e-3))
        # Beta(1, 1 + f): P(p < x) = 1 - (1 - x)^(1 + f), so the 97.5 % point is 1 - 0.025^(1 / (1 + f)).
        assert abstats.interval(abstats.beta_posterior(0, 9))[1] == pytest.approx(1 - 0.025 ** (1 / 10), abs=2e-3)
        # Three variants: the probabilities add up to one and order as the rates do.
        best = abstats.prob_best([abstats.beta_posterior(s, 100 - s) for s in (20, 26, 23)])
        assert sum(best) == pytest.approx(1.0)
        assert best[1] > best[2] > best[0]

    def test_time_to_close_prefers_the_faster_variant(self) -> None:
        slow, fast = abstats.gamma_posterior(20, 400.0), abstats.gamma_posterior(20, 100.0)
        assert abstats.prob_best([slow, fast])[1] > 0.99

    def test_the_promotion_rule_needs_both_the_threshold_and_the_sample(self) -> None:
        assert abstats.winner([0.97, 0.03], [100, 100], threshold=0.95, min_sample=100) == 0
        assert abstats.winner([0.97, 0.03], [100, 99], threshold=0.95, min_sample=100) is None
        assert abstats.winner([0.94, 0.06], [500, 500], threshold=0.95, min_sample=100) is None


# --- validation -----------------------------------------------------------------------------------------------


def fields_of(response: httpx.Response) -> set[str]:
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    return {e["field"] for e in response.json()["errors"]}


class TestValidation:
    async def test_bad_variants_are_a_422_naming_each(self, client: httpx.AsyncClient) -> None:
        await lead_type(client)
        zero = await client.post("/automation/rules", json=ab_rule(variants=[variant("A", 1, 0), variant("B", 2)]))
        assert any("weight" in f for f in fields_of(zero))
        negative = await client.post("/automation/rules", json=ab_rule(variants=[variant("A", 1, -5), variant("B", 2)]))
        assert any("weight" in f for f in fields_of(negative))
        twice = await client.post("/automation/rules", json=ab_rule(variants=[variant("A", 1), variant("A", 2)]))
        assert fields_of(twice) == {"variants[1].key"}
        bad_actions = ab_rule(
            variants=[
                variant("A", 1),
                {"key": "B", "weight": 1, "actions": [{"type": "set_fields", "params": {"values": {"nope": 1}}}]},
                {"key": "C", "weight": 1, "actions": [{"type": "move_to_stage", "params": {}}]},
            ]
        )
        assert fields_of(await client.post("/automation/rules", json=bad_actions)) == {
            "variants[1].actions[0].params.values.nope",
            "variants[2].actions[0].params",
        }
        eleven = ab_rule(variants=[variant(f"V{i}", i) for i in range(11)])
        assert fields_of(await client.post("/automation/rules", json=eleven))
        one = ab_rule(variants=[variant("A", 1)])
        assert fields_of(await client.post("/automation/rules", json=one))
        bad_key = ab_rule(variants=[variant("A B", 1), variant("B", 2)])
        assert fields_of(await client.post("/automation/rules", json=bad_key))
        no_variants = ab_rule(variants=None)
        assert fields_of(await client.post("/automation/rules", json=no_variants)) == {"experiment"}
        bad_options = ab_rule(experiment={"threshold": 1.5, "min_sample": 0, "metric": "vibes"})
        assert len(fields_of(await client.post("/automation/rules", json=bad_options))) == 3
        assert (await client.get("/automation/rules")).json()["items"] == []

    async def test_the_rule_reads_back_and_updates(self, client: httpx.AsyncClient) -> None:
        await lead_type(client)
        rule = created(await client.post("/automation/rules", json=ab_rule()))
        assert [v["key"] for v in rule["variants"]] == ["A", "B"]
        assert rule["experiment"]["status"] == "running"
        assert rule["experiment"]["metric"] == "success"
        # Resent as read, with new options: the same experiment goes on.
        same = await client.patch(
            f"/automation/rules/{rule['id']}",
            json={"variants": rule["variants"], "experiment": {"auto_promote": True, "min_sample": 5}},
        )
        assert same.status_code == 200, same.text
        assert same.json()["experiment"]["auto_promote"] is True
        bad = await client.patch(f"/automation/rules/{rule['id']}", json={"variants": [variant("A", 1)] * 2})
        assert fields_of(bad) == {"variants[1].key"}
        ended = await client.patch(f"/automation/rules/{rule['id']}", json={"variants": None})
        assert ended.json()["variants"] is None
        assert ended.json()["experiment"] is None
        assert (await client.get(f"/automation/rules/{rule['id']}/experiment")).status_code == 404


# --- end to end -----------------------------------------------------------------------------------------------


async def move_all(client: httpx.AsyncClient, ids: list[str], stage: str) -> None:
    for element_id in ids:
        moved = await client.post(f"/elements/{element_id}/move", json={"stage_code": stage})
        assert moved.status_code == 200, moved.text


async def auto_promotions(app: FastAPI, workspace_id: uuid.UUID) -> int:
    async with app.state.sessionmaker() as session:
        count = await session.scalar(
            select(func.count())
            .select_from(AuditEntry)
            .where(AuditEntry.workspace_id == workspace_id, AuditEntry.action == "automation experiment auto-promote")
        )
    return int(count or 0)


async def check_due(app: FastAPI) -> int:
    async with app.state.sessionmaker() as session, session.begin():
        return await experiments.check_due(session)


async def test_variants_run_are_reported_and_the_winner_is_promoted_once(
    app: FastAPI, client: httpx.AsyncClient, tenant: Tenant, settings: Settings
) -> None:
    await lead_type(client)
    rule = created(
        await client.post(
            "/automation/rules",
            json=ab_rule(experiment={"min_sample": 10, "threshold": 0.95, "auto_promote": True}),
        )
    )
    elements = [(await create_element(client, "lead", title=f"L{n}"))["id"] for n in range(50)]
    await handle_new_events(app, settings, tenant.workspace_id)

    # Each element got the variant its hash picks, that variant's action, and one timeline entry saying so.
    groups: dict[str, list[str]] = {"A": [], "B": []}
    for element_id in elements:
        expected = "AB"[abstats.pick([50, 50], abstats.bucket(rule["id"], element_id))]
        groups[expected].append(element_id)
        element = (await client.get(f"/elements/{element_id}")).json()
        assert element["values"]["budget"] == {"A": 100, "B": 200}[expected]
        history = (await client.get(f"/elements/{element_id}/history")).json()["items"]
        decisions = [e for e in history if e["kind"] == "automation_variant"]
        assert len(decisions) == 1, decisions
        assert decisions[0]["data"]["variant"] == expected
        assert decisions[0]["data"]["explanation"].startswith(f"Rule Budget test: variant {expected}, weight 50 %")
    assert min(len(g) for g in groups.values()) >= 10, groups

    # A duplicate event or a retry reuses the stored assignment: no second row, no second timeline entry.
    async with app.state.sessionmaker() as session, session.begin():
        stored = await session.get(AutomationRule, uuid.UUID(rule["id"]))
        assert stored is not None
        again = await experiments.assign(session, stored, uuid.UUID(elements[0]))
        assert again is not None
        assert elements[0] in groups[again["key"]]
    history = (await client.get(f"/elements/{elements[0]}/history")).json()["items"]
    assert sum(e["kind"] == "automation_variant" for e in history) == 1

    # Too few outcomes: B looks better but nothing is promoted, on read or by the scheduled check.
    a, b = groups["A"], groups["B"]
    await move_all(client, a[:1], "SUCCESS")
    await move_all(client, a[1:5], "FAIL")
    await move_all(client, b[:5], "SUCCESS")
    assert await check_due(app) == 0
    report = (await client.get(f"/automation/rules/{rule['id']}/experiment")).json()
    assert report["status"] == "running"
    assert report["ready"] is False
    by_key = {v["key"]: v for v in report["variants"]}
    assert (by_key["A"]["successes"], by_key["A"]["failures"], by_key["A"]["open"]) == (1, 4, len(a) - 5)
    assert (by_key["B"]["successes"], by_key["B"]["failures"], by_key["B"]["open"]) == (5, 0, len(b) - 5)
    assert await auto_promotions(app, tenant.workspace_id) == 0

    # Known rates: A wins 2 in 10 (the rest lost), B 9 in 10; now every variant has its sample.
    a_wins, b_wins = len(a) // 5, len(b) * 9 // 10
    await move_all(client, a[1:a_wins], "SUCCESS")
    await move_all(client, a[max(a_wins, 5) :], "FAIL")
    await move_all(client, b[5:b_wins], "SUCCESS")
    await move_all(client, b[b_wins:], "FAIL")
    assert await check_due(app) == 1  # the worker's cron promotes it
    assert await check_due(app) == 0
    report = (await client.get(f"/automation/rules/{rule['id']}/experiment")).json()
    by_key = {v["key"]: v for v in report["variants"]}
    lost_a = len(a) - max(a_wins, 1)
    assert (by_key["A"]["assigned"], by_key["A"]["successes"], by_key["A"]["failures"]) == (
        len(a),
        max(a_wins, 1),
        lost_a,
    )
    assert (by_key["B"]["assigned"], by_key["B"]["successes"], by_key["B"]["failures"]) == (
        len(b),
        b_wins,
        len(b) - b_wins,
    )
    assert by_key["A"]["rate"] == pytest.approx(max(a_wins, 1) / len(a))
    assert by_key["B"]["rate"] == pytest.approx(b_wins / len(b))
    assert by_key["B"]["p_best"] > 0.95
    assert by_key["B"]["p_best"] + by_key["A"]["p_best"] == pytest.approx(1)
    low, high = by_key["B"]["interval"]
    assert low < by_key["B"]["estimate"] < high
    assert by_key["B"]["median_days_to_close"] is not None
    state = (report["status"], report["winner"], report["promoted_by"], report["ready"])
    assert state == ("promoted", "B", "auto", True)
    assert "P(best) of B" in report["reason"]
    assert await auto_promotions(app, tenant.workspace_id) == 1
    # Reading it again changes nothing.
    again = (await client.get(f"/automation/rules/{rule['id']}/experiment")).json()
    assert again["promoted_at"] == report["promoted_at"]
    assert await auto_promotions(app, tenant.workspace_id) == 1

    # The rule now runs the winner's actions for everyone, and assigns no more variants.
    read = (await client.get(f"/automation/rules/{rule['id']}")).json()
    assert read["actions"] == variant("B", 200)["actions"]
    late = await create_element(client, "lead", title="late")
    await handle_new_events(app, settings, tenant.workspace_id)
    assert (await client.get(f"/elements/{late['id']}")).json()["values"]["budget"] == 200
    async with app.state.sessionmaker() as session:
        assigned = await session.scalar(select(func.count()).select_from(VariantAssignment))
    assert assigned == 50
    # A manual promote after that is a conflict.
    conflict = await client.post(f"/automation/rules/{rule['id']}/experiment/promote", json={"variant": "A"})
    assert conflict.status_code == 409, conflict.text


async def test_a_manual_promote_and_who_may_read_and_promote(
    app: FastAPI,
    client: httpx.AsyncClient,
    viewer_client: httpx.AsyncClient,
    other_client: httpx.AsyncClient,
    tenant: Tenant,
    settings: Settings,
) -> None:
    await lead_type(client)
    rule = created(await client.post("/automation/rules", json=ab_rule()))
    for n in range(6):
        await create_element(client, "lead", title=f"L{n}")
    await handle_new_events(app, settings, tenant.workspace_id)
    path = f"/automation/rules/{rule['id']}/experiment"
    report = (await client.get(path)).json()
    assert sum(v["assigned"] for v in report["variants"]) == 6
    assert report["status"] == "running"
    assert report["auto_promote"] is False

    # Another workspace does not learn the rule exists.
    assert (await other_client.get(path)).status_code == 404
    assert (await other_client.post(f"{path}/promote", json={"variant": "A"})).status_code == 404
    # A viewer reads (as it reads runs), may not promote; a custom role reading only its own leads may not read it.
    assert (await viewer_client.get(path)).status_code == 200
    refused = await viewer_client.post(f"{path}/promote", json={"variant": "A"})
    assert refused.status_code == 403, refused.text
    created(await client.post("/roles", json={"name": "own", "grants": [{"entity_type": "lead", "read": "own"}]}))
    key = created(await client.post("/api-keys", json={"name": "own", "role": "own"}))["api_key"]
    async with make_client(app, key) as own:
        forbidden = await own.get(path)
        assert forbidden.status_code == 403, forbidden.text
        assert forbidden.headers["content-type"].startswith("application/problem+json")

    unknown = await client.post(f"{path}/promote", json={"variant": "Z"})
    assert unknown.status_code == 422, unknown.text
    promoted = await client.post(f"{path}/promote", json={"variant": "A", "reason": "cheaper"})
    assert promoted.status_code == 200, promoted.text
    assert (promoted.json()["status"], promoted.json()["winner"], promoted.json()["reason"]) == (
        "promoted",
        "A",
        "cheaper",
    )
    read = (await client.get(f"/automation/rules/{rule['id']}")).json()
    assert read["actions"] == variant("A", 100)["actions"]
    assert read["experiment"]["winner"] == "A"
    audit = (await client.get("/audit", params={"limit": 200})).json()["items"]
    assert [e["object_id"] for e in audit if e["action"].endswith("/experiment/promote")] == [rule["id"]], audit


async def test_graphql_reads_the_report_and_promotes(
    app: FastAPI, client: httpx.AsyncClient, tenant: Tenant, settings: Settings
) -> None:
    async def run(query: str, **variables: Any) -> dict[str, Any]:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app),
            base_url="http://testserver",
            headers={"Authorization": f"Bearer {tenant.admin_key}"},
        ) as http:
            response = await http.post("/graphql", json={"query": query, "variables": variables})
        body = response.json()
        assert "errors" not in body, body
        data: dict[str, Any] = body["data"]
        return data

    await lead_type(client)
    rule = created(await client.post("/automation/rules", json=ab_rule()))
    for n in range(4):
        await create_element(client, "lead", title=f"L{n}")
    await handle_new_events(app, settings, tenant.workspace_id)
    data = await run(
        "query ($id: UUID!) { automationExperiment(ruleId: $id) { status metric variants { key assigned pBest"
        " interval } } automationRule(id: $id) { variants experiment } }",
        id=rule["id"],
    )
    report = data["automationExperiment"]
    assert report["status"] == "running"
    assert sum(v["assigned"] for v in report["variants"]) == 4
    assert data["automationRule"]["experiment"]["status"] == "running"
    promoted = await run(
        'mutation ($id: UUID!) { promoteAutomationVariant(ruleId: $id, variant: "B") {'
        " ... on AutomationExperiment { status winner } } }",
        id=rule["id"],
    )
    assert promoted["promoteAutomationVariant"] == {"status": "promoted", "winner": "B"}


async def test_time_to_close_with_a_horizon_counts_expired_elements_as_failures(
    app: FastAPI, client: httpx.AsyncClient, tenant: Tenant, settings: Settings
) -> None:
    await lead_type(client)
    rule = created(
        await client.post("/automation/rules", json=ab_rule(experiment={"metric": "time_to_close", "horizon_days": 1}))
    )
    elements = [(await create_element(client, "lead", title=f"L{n}"))["id"] for n in range(8)]
    await handle_new_events(app, settings, tenant.workspace_id)
    won, lost, stale = elements[0], elements[1], elements[2:5]
    await move_all(client, [won], "SUCCESS")
    await move_all(client, [lost], "FAIL")
    # Three elements were assigned two days ago and never closed: past the one-day horizon, they count as failures.
    async with app.state.sessionmaker() as session, session.begin():
        for element_id in stale:
            row = await session.scalar(
                select(VariantAssignment).where(VariantAssignment.element_id == uuid.UUID(element_id))
            )
            assert row is not None
            row.assigned_at = row.assigned_at - timedelta(days=2)
    report = (await client.get(f"/automation/rules/{rule['id']}/experiment")).json()
    assert report["metric"] == "time_to_close"
    assert report["horizon_days"] == 1
    totals = {
        name: sum(v[name] for v in report["variants"])
        for name in ("assigned", "successes", "failures", "expired", "open")
    }
    assert totals == {"assigned": 8, "successes": 1, "failures": 4, "expired": 3, "open": 3}
    closed = next(v for v in report["variants"] if v["successes"] == 1)
    assert closed["median_days_to_close"] is not None
    assert 0 <= closed["median_days_to_close"] < 0.01  # moved within seconds of its assignment
    for outcome in report["variants"]:
        low, high = outcome["interval"]
        assert 0 < low < outcome["estimate"] < high  # mean days to close, from the Gamma posterior of the hazard
    assert sum(v["p_best"] for v in report["variants"]) == pytest.approx(1)


async def test_a_run_parked_by_a_delay_resumes_with_its_variant_after_another_is_promoted(
    app: FastAPI, client: httpx.AsyncClient, tenant: Tenant, settings: Settings
) -> None:
    await lead_type(client)

    def delayed(key: str, budget: int) -> dict[str, Any]:
        wait = {"type": "delay", "params": {"seconds": 0.5}}
        return {**variant(key, budget), "actions": [wait, *variant(key, budget)["actions"]]}

    body = ab_rule(variants=[delayed("A", 100), delayed("B", 200)])
    rule = created(await client.post("/automation/rules", json=body))
    element = await create_element(client, "lead", title="parked")
    await handle_new_events(app, settings, tenant.workspace_id)
    (run,) = (await client.get("/automation/runs", params={"rule_id": rule["id"]})).json()["items"]
    assert run["status"] == "queued", run  # parked by the delay, its variant chosen
    mine = "AB"[abstats.pick([50, 50], abstats.bucket(rule["id"], element["id"]))]
    other = "B" if mine == "A" else "A"
    promoted = await client.post(f"/automation/rules/{rule['id']}/experiment/promote", json={"variant": other})
    assert promoted.status_code == 200, promoted.text
    await asyncio.sleep(0.6)
    await runner.resume_run(app.state.sessionmaker, settings, RecordingWaker(), uuid.UUID(run["id"]))
    finished = (await client.get(f"/automation/runs/{run['id']}")).json()
    assert finished["status"] == "succeeded", finished
    # It finished the steps of the variant it started with, not the promoted one's.
    assert (await client.get(f"/elements/{element['id']}")).json()["values"]["budget"] == {"A": 100, "B": 200}[mine]
