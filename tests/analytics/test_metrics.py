"""The metrics API on generated histories: every number checked against one computed from the generated events in
plain Python (tests/analytics/conftest.py), not from the rollups."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import text

from app.db import unit_of_work
from tests.analytics.conftest import (
    PROCESS,
    Deal,
    Deals,
    expected_closes,
    expected_funnel,
    expected_stays,
    generate,
    percentile_cont,
    seed,
)

TODAY = datetime.now(UTC).date()
FIRST_DAY = TODAY - timedelta(days=60)
# A period that starts after the first deals were created: their earlier entries must not count as first ones in it.
START, END = TODAY - timedelta(days=45), TODAY - timedelta(days=10)


@pytest.fixture
async def history(deals: Deals) -> list[Deal]:
    generated = generate(deals.users, seed=16, count=300, first_day=FIRST_DAY, days=50)
    await seed(deals, generated, now=datetime.now(UTC) - timedelta(hours=1))
    return generated


def params(deals: Deals, **extra: Any) -> dict[str, Any]:
    return {
        "entity_type": "deal",
        "pipeline_id": deals.pipeline_id,
        "from": START.isoformat(),
        "to": END.isoformat(),
        **extra,
    }


async def get(deals: Deals, path: str, **extra: Any) -> dict[str, Any]:
    response = await deals.client.get(f"/analytics/{path}", params=params(deals, **extra))
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def by_code(group: dict[str, Any], part: str = "stages") -> dict[str, dict[str, Any]]:
    return {s["code"]: s for s in group[part]}


class TestFunnel:
    async def test_counts_and_conversions_match_the_events(self, deals: Deals, history: list[Deal]) -> None:
        report = await get(deals, "funnel")
        assert report["computed_from"] == "rollups"
        [group] = report["groups"]
        stages = by_code(group)
        expected = expected_funnel(history, START, END)
        for code in ("NEW", "QUALIFIED", "PROPOSAL", "WON", "LOST"):
            for name in ("entered", "reentered", "exited", "lost", "won"):
                assert stages[code][name] == expected[code][name], (code, name)
        assert stages["QUALIFIED"]["reentered"] > 0  # the generator sends deals back, so re-entries are tested
        entered = {code: expected[code]["entered"] for code in expected}
        assert stages["NEW"]["conversion_to_next"] == pytest.approx(entered["QUALIFIED"] / entered["NEW"])
        assert stages["PROPOSAL"]["conversion_to_next"] == pytest.approx(entered["WON"] / entered["PROPOSAL"])
        assert stages["QUALIFIED"]["conversion_to_success"] == pytest.approx(entered["WON"] / entered["QUALIFIED"])
        assert stages["WON"]["conversion_to_next"] is None
        assert group["won"] == entered["WON"]
        assert group["lost"] == entered["LOST"]
        assert group["created"] == expected["NEW"]["created"]
        assert group["won_amount"] == pytest.approx(expected["WON"]["amount_cents"] / 100)
        assert group["win_rate"] == pytest.approx(entered["WON"] / (entered["WON"] + entered["LOST"]))
        moves = sum(expected[c]["exited"] for c in expected)
        assert group["moves"] == moves
        assert 0 < group["moves_by_rules"] < moves

    async def test_grouped_by_week_adds_up_to_the_period(self, deals: Deals, history: list[Deal]) -> None:
        report = await get(deals, "funnel", group_by="week")
        keys = [g["key"] for g in report["groups"]]
        assert keys == sorted(keys)
        assert date.fromisoformat(keys[0]).weekday() == 0
        assert len(keys) in (6, 7)  # every week of the period, empty ones included
        for code in ("NEW", "WON"):
            total = sum(by_code(g)[code]["entered"] for g in report["groups"])
            assert total == expected_funnel(history, START, END)[code]["entered"]
        first_week = report["groups"][0]
        week_end = date.fromisoformat(first_week["key"]) + timedelta(days=6)
        expected = expected_funnel(history, START, week_end)  # the first week is cut at the period's start
        assert by_code(first_week)["NEW"]["entered"] == expected["NEW"]["entered"]

    async def test_grouped_by_assignee(self, deals: Deals, history: list[Deal]) -> None:
        report = await get(deals, "funnel", group_by="assignee")
        groups = {g["key"]: g for g in report["groups"]}
        for user in [*deals.users, None]:
            expected = expected_funnel(history, START, END, key=lambda d, u=user: d.assignee == u)
            assert by_code(groups[user])["NEW"]["entered"] == expected["NEW"]["entered"]
            assert by_code(groups[user])["PROPOSAL"]["lost"] == expected["PROPOSAL"]["lost"]

    async def test_grouped_by_source_and_by_an_enum_field_from_the_history(
        self, deals: Deals, history: list[Deal]
    ) -> None:
        report = await get(deals, "funnel", group_by="source")
        assert report["computed_from"] == "history"
        groups = {g["key"]: g for g in report["groups"]}
        assert set(groups) == {"ads", "referral", "event"}
        for source, group in groups.items():
            expected = expected_funnel(history, START, END, key=lambda d, s=source: d.source == s)
            for code in ("NEW", "QUALIFIED", "WON"):
                assert by_code(group)[code]["entered"] == expected[code]["entered"]
                assert by_code(group)[code]["reentered"] == expected[code]["reentered"]
            assert by_code(group)["QUALIFIED"]["lost"] == expected["QUALIFIED"]["lost"]
        report = await get(deals, "funnel", group_by="field", field="channel")
        channel = {g["key"]: g for g in report["groups"]}
        expected = expected_funnel(history, START, END, key=lambda d: d.channel == "web")
        assert by_code(channel["web"])["WON"]["entered"] == expected["WON"]["entered"]

    async def test_rollups_equal_a_rebuild_from_the_history(self, deals: Deals, history: list[Deal]) -> None:
        """The trigger (row look-ups, slots, many statements) and the rebuild (window functions) agree."""
        query = text(
            "SELECT stage_id, day, assignee_id, sum(entered), sum(reentered), sum(created), sum(by_rules), "
            "sum(exited), sum(lost), sum(won), sum(entered_amount), round(sum(exited_seconds)) "
            "FROM analytics_stage_days WHERE workspace_id = :ws GROUP BY stage_id, day, assignee_id ORDER BY 1, 2, 3"
        )
        distributions = text(
            "SELECT kind, stage_id, day, bucket, sum(count) FROM analytics_distributions WHERE workspace_id = :ws "
            "GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4"
        )
        ws = {"ws": deals.tenant.workspace_id}
        async with unit_of_work(deals.app.state.sessionmaker) as session:
            incremental = (await session.execute(query, ws)).all()
            incremental_points = (await session.execute(distributions, ws)).all()
            await session.execute(text("SELECT analytics_rebuild(:ws)"), ws)
            rebuilt = (await session.execute(query, ws)).all()
            rebuilt_points = (await session.execute(distributions, ws)).all()
        assert len(incremental) > 100
        assert incremental == rebuilt
        assert incremental_points == rebuilt_points


class TestTimeInStage:
    async def test_percentiles_from_the_histograms_are_within_a_bucket(self, deals: Deals, history: list[Deal]) -> None:
        report = await get(deals, "time-in-stage")
        assert report["computed_from"] == "rollups"
        [group] = report["groups"]
        stays = expected_stays(history, START, END)
        for code in PROCESS:
            measured = by_code(group)[code]
            values = stays[code]
            assert measured["count"] == len(values)
            assert measured["mean_seconds"] == pytest.approx(sum(values) / len(values), rel=1e-6)
            # Eight buckets per doubling: the estimate and the truth share a bucket, 9 % wide.
            assert measured["p50_seconds"] == pytest.approx(percentile_cont(values, 0.5), rel=0.091)
            assert measured["p90_seconds"] == pytest.approx(percentile_cont(values, 0.9), rel=0.091)
        closes = expected_closes(history, START, END)
        won = by_code(group, "close")["WON"]
        assert won["count"] == len(closes["WON"])
        assert won["p50_seconds"] == pytest.approx(percentile_cont(closes["WON"], 0.5), rel=0.091)
        assert group["time_to_win"]["count"] == len(closes["WON"])

    async def test_a_long_period_reads_whole_months_from_monthly_rows(self, deals: Deals, history: list[Deal]) -> None:
        start, end = FIRST_DAY - timedelta(days=3), TODAY  # at least one whole month, and days on both sides
        report = await get(deals, "time-in-stage", **{"from": start.isoformat(), "to": end.isoformat()})
        stays = expected_stays(history, start, end)
        for code in PROCESS:
            measured = by_code(report["groups"][0])[code]
            assert measured["count"] == len(stays[code])
            assert measured["p90_seconds"] == pytest.approx(percentile_cont(stays[code], 0.9), rel=0.091)
        by_month = await get(
            deals, "time-in-stage", group_by="month", **{"from": start.isoformat(), "to": end.isoformat()}
        )
        assert sum(by_code(g)["NEW"]["count"] for g in by_month["groups"]) == len(stays["NEW"])

    async def test_grouped_by_assignee_the_percentiles_are_exact(self, deals: Deals, history: list[Deal]) -> None:
        report = await get(deals, "time-in-stage", group_by="assignee")
        assert report["computed_from"] == "history"
        groups = {g["key"]: g for g in report["groups"]}
        user = deals.users[1]
        values = expected_stays(history, START, END, key=lambda d: d.assignee == user)["QUALIFIED"]
        measured = by_code(groups[user])["QUALIFIED"]
        assert measured["count"] == len(values)
        assert measured["p50_seconds"] == pytest.approx(percentile_cont(values, 0.5))
        assert measured["p90_seconds"] == pytest.approx(percentile_cont(values, 0.9))
        closes = [
            (m.at - d.created_at).total_seconds()
            for d in history
            if d.assignee == user
            for m in d.moves
            if m.to_code == "WON" and START <= m.at.date() <= END
        ]
        assert groups[user]["time_to_win"]["count"] == len(closes)
        if closes:
            assert groups[user]["time_to_win"]["p50_seconds"] == pytest.approx(percentile_cont(closes, 0.5))


class TestMoney:
    def probabilities(self, history: list[Deal], lookback_days: int) -> dict[str, float]:
        today = datetime.now(UTC).date()
        entered = expected_funnel(history, today - timedelta(days=lookback_days - 1), today)
        return {code: min(1.0, entered["WON"]["entered"] / entered[code]["entered"]) for code in PROCESS}

    async def test_weighted_pipeline_and_forecast_by_stage_probability(self, deals: Deals, history: list[Deal]) -> None:
        end = TODAY + timedelta(days=30)
        report = await get(deals, "money", probability="stage", to=end.isoformat())
        assert report["probability"] == "stage"
        won = expected_funnel(history, START, end)["WON"]
        assert report["won_count"] == won["entered"]
        assert report["won_amount"] == pytest.approx(won["amount_cents"] / 100)
        assert report["average_won"] == pytest.approx(won["amount_cents"] / 100 / won["entered"])
        probabilities = self.probabilities(history, 90)
        weighted = 0.0
        for stage in report["open"]:
            open_deals = [d for d in history if d.stage == stage["code"]]
            assert stage["count"] == len(open_deals)
            assert stage["amount"] == pytest.approx(sum(d.amount for d in open_deals))
            assert stage["probability"] == pytest.approx(probabilities[stage["code"]])
            weighted += sum(d.amount for d in open_deals) * probabilities[stage["code"]]
        assert report["weighted_pipeline"] == pytest.approx(weighted, abs=0.05)
        forecast = report["forecast"]
        # 30 days left; every past win took less than that from creation (the generated waits are shorter).
        assert max(expected_closes(history, FIRST_DAY, TODAY)["WON"]) < 30 * 86400
        assert forecast["close_within_share"] == 1
        assert forecast["forecast"] == pytest.approx(report["won_amount"] + weighted, abs=0.1)

    async def test_weighted_pipeline_by_score(self, deals: Deals, history: list[Deal]) -> None:
        report = await get(deals, "money", probability="model")
        assert report["probability"] == "model"
        probabilities = self.probabilities(history, 90)
        expected = sum(
            d.amount * (d.score / 100 if d.score is not None else probabilities[d.stage])
            for d in history
            if d.stage in PROCESS
        )
        assert report["weighted_pipeline"] == pytest.approx(expected, abs=0.05)

    async def test_a_past_period_forecasts_what_was_won(self, deals: Deals, history: list[Deal]) -> None:
        report = await get(deals, "money", group_by="month")
        forecast = report["forecast"]
        assert forecast["remaining_days"] == 0
        assert forecast["forecast"] == pytest.approx(report["won_amount"])
        assert sum(g["won_amount"] for g in report["groups"]) == pytest.approx(report["won_amount"])


class TestScoring:
    async def test_roc_auc_calibration_and_tiers_of_the_closed_deals(self, deals: Deals, history: list[Deal]) -> None:
        report = await get(deals, "scoring")
        closed = [
            (d.score, m.to_code == "WON")
            for d in history
            for n, m in enumerate(d.moves)
            if m.to_code in ("WON", "LOST")
            and START <= m.at.date() <= END
            and m.to_code not in [x.to_code for x in d.moves[:n]]
        ]
        scored = [(s, won) for s, won in closed if s is not None]
        wins = [s for s, won in scored if won]
        losses = [s for s, won in scored if not won]
        pairs = sum(1.0 if w > lo else 0.5 if w == lo else 0.0 for w in wins for lo in losses)
        assert report["closed"] == len(closed)
        assert report["scored"] == len(scored)
        assert report["won"] == len(wins)
        assert report["roc_auc"] == pytest.approx(pairs / (len(wins) * len(losses)))
        assert 0.6 < report["roc_auc"] < 0.95
        hot = [(s, won) for s, won in scored if s >= 80]
        tier = next(t for t in report["tiers"] if t["tier"] == "hot")
        assert tier["closed"] == len(hot)
        assert tier["conversion"] == pytest.approx(sum(won for _, won in hot) / len(hot))
        bin_ = next(b for b in report["calibration"] if b["low"] == 50)
        in_bin = [(s, won) for s, won in scored if 50 <= s <= 59]
        assert bin_["count"] == len(in_bin)
        assert bin_["predicted"] == pytest.approx(sum(s for s, _ in in_bin) / 100 / len(in_bin))


class TestWritePath:
    async def test_creates_batches_and_moves_through_the_api_are_counted_today(self, deals: Deals) -> None:
        client = deals.client
        pipeline = deals.pipeline_id
        one = (
            await client.post("/entity-types/deal/elements", json={"title": "A", "pipeline_id": pipeline, "amount": 10})
        ).json()
        batch = await client.post(
            "/entity-types/deal/elements/batch",
            json={
                "items": [
                    {"op": "create", "data": {"title": f"B{n}", "pipeline_id": pipeline, "amount": 5}} for n in range(3)
                ]
            },
        )
        assert batch.status_code in (200, 201), batch.text
        ids = [one["id"], *(e["id"] for e in batch.json()["items"])]
        for element_id in ids[:3]:
            assert (
                await client.post(f"/elements/{element_id}/move", json={"stage_code": "QUALIFIED"})
            ).status_code == 200
        for element_id in ids[:2]:
            assert (await client.post(f"/elements/{element_id}/move", json={"stage_code": "WON"})).status_code == 200
        await client.post(f"/elements/{ids[2]}/move", json={"stage_code": "NEW"})
        await client.post(f"/elements/{ids[2]}/move", json={"stage_code": "QUALIFIED"})
        response = await client.get("/analytics/funnel", params={"entity_type": "deal", "pipeline_id": pipeline})
        stages = by_code(response.json()["groups"][0])
        assert stages["NEW"]["entered"] == 4
        assert stages["NEW"]["reentered"] == 1
        assert stages["QUALIFIED"]["entered"] == 3
        assert stages["QUALIFIED"]["reentered"] == 1
        assert stages["QUALIFIED"]["won"] == 2
        assert stages["QUALIFIED"]["exited"] == 3
        assert stages["WON"]["entered"] == 2
        assert stages["WON"]["entered_amount"] == 15
        assert response.json()["groups"][0]["moves_by_rules"] == 0
        money = (await client.get("/analytics/money", params={"entity_type": "deal", "pipeline_id": pipeline})).json()
        assert money["won_amount"] == 15
        assert {s["code"]: s["count"] for s in money["open"]} == {"NEW": 1, "QUALIFIED": 1, "PROPOSAL": 0}
