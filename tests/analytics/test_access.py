"""Who sees what: roles on the metrics, the dashboards (a manager's own, a head's team) and the alerts; another
workspace's ids; and the dashboards' numbers on a small known history."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from tests.analytics.conftest import Deal, Deals, Move, make_deals, person_token, seed
from tests.conftest import make_client, make_tenant
from tests.factories import created

NOW = datetime.now(UTC)
METRICS = ("funnel", "time-in-stage", "money", "automation", "scoring")


async def person(
    deals: Deals, name: str, grants: list[dict[str, Any]] | None, **extra: Any
) -> tuple[str, httpx.AsyncClient]:
    """A user holding a role with these grants (None: no role at all), and a client acting with their token."""
    role_ids = []
    if grants is not None:
        role = created(
            await deals.client.post(
                "/roles", json={"name": f"{name} role {uuid.uuid4().hex[:6]}", "level": "viewer", "grants": grants}
            )
        )
        role_ids = [role["id"]]
    user = created(
        await deals.client.post(
            "/users",
            json={"name": name, "email": f"{name}.{uuid.uuid4().hex[:6]}@example.com", "role_ids": role_ids, **extra},
        )
    )
    return user["id"], make_client(deals.app, person_token(deals.tenant, user["id"]))


def won_deal(deals: Deals, assignee: str, days_ago: float, *, score: int | None = 50, amount: float = 100) -> Deal:
    created_at = NOW - timedelta(days=days_ago)
    return Deal(
        uuid.uuid4(),
        created_at,
        assignee,
        amount,
        score,
        "web",
        "ads",
        [
            Move(created_at, None, "NEW"),
            Move(created_at + timedelta(hours=1), "NEW", "QUALIFIED"),
            Move(created_at + timedelta(hours=3), "QUALIFIED", "WON"),
        ],
    )


def open_deal(deals: Deals, assignee: str, days_ago: float, score: int | None) -> Deal:
    created_at = NOW - timedelta(days=days_ago)
    return Deal(uuid.uuid4(), created_at, assignee, 10, score, "web", "ads", [Move(created_at, None, "NEW")])


def params(deals: Deals) -> dict[str, str]:
    return {"entity_type": "deal", "pipeline_id": deals.pipeline_id}


class TestMetricsRespectRoles:
    async def test_a_role_that_cannot_read_the_type_gets_404(self, deals: Deals) -> None:
        _, outsider = await person(deals, "outsider", [])
        async with outsider:
            for metric in METRICS:
                response = await outsider.get(f"/analytics/{metric}", params=params(deals))
                assert response.status_code == 404, (metric, response.text)

    async def test_a_role_reading_its_own_elements_sees_its_own_numbers(self, deals: Deals) -> None:
        own_id, own = await person(deals, "own", [{"entity_type": "deal", "read": "own"}])
        await seed(
            deals, [won_deal(deals, own_id, 2), won_deal(deals, deals.users[0], 2), won_deal(deals, deals.users[0], 3)]
        )
        async with own:
            mine = (await own.get("/analytics/funnel", params=params(deals))).json()
            assert mine["groups"][0]["won"] == 1
            time_in_stage = (await own.get("/analytics/time-in-stage", params=params(deals))).json()
            assert time_in_stage["computed_from"] == "history"
            assert time_in_stage["groups"][0]["time_to_win"]["count"] == 1
            for metric in ("automation", "scoring"):
                refused = await own.get(f"/analytics/{metric}", params=params(deals))
                assert refused.status_code == 403, refused.text
                assert refused.json()["errors"][0]["message"] == "deal.read"
        everyone = (await deals.client.get("/analytics/funnel", params=params(deals))).json()
        assert everyone["groups"][0]["won"] == 3

    async def test_viewers_read_metrics(self, deals: Deals, viewer_client: httpx.AsyncClient) -> None:
        for metric in METRICS:
            response = await viewer_client.get(f"/analytics/{metric}", params=params(deals))
            assert response.status_code == 200, (metric, response.text)

    async def test_another_workspaces_ids_are_404(self, deals: Deals, app: FastAPI) -> None:
        other_tenant = await make_tenant(app, "other")
        async with make_client(app, other_tenant.admin_key) as other:
            other_deals = await make_deals(app, other_tenant, other)
            alert = created(
                await other.post(
                    "/alerts",
                    json={
                        "name": "Theirs",
                        "entity_type": "deal",
                        "metric": "created",
                        "condition": {"kind": "threshold", "op": "lt", "value": 1},
                    },
                )
            )
        # Their pipeline, with our type; their type by id; their alert.
        response = await deals.client.get(
            "/analytics/funnel", params={"entity_type": "deal", "pipeline_id": other_deals.pipeline_id}
        )
        assert response.status_code == 404
        response = await deals.client.get("/analytics/funnel", params={"entity_type": other_deals.type_id})
        assert response.status_code == 404
        response = await deals.client.get("/dashboards/head", params={"entity_type": other_deals.type_id})
        assert response.status_code == 404
        for method, path in (("GET", ""), ("PATCH", ""), ("DELETE", ""), ("GET", "/events"), ("POST", "/check")):
            answer = await deals.client.request(
                method, f"/alerts/{alert['id']}{path}", json={"name": "x"} if method == "PATCH" else None
            )
            assert answer.status_code == 404, (method, path, answer.text)
        assert (await deals.client.get("/alerts")).json()["items"] == []
        created_here = await deals.client.post(
            "/alerts",
            json={
                "name": "Cross",
                "entity_type": "deal",
                "pipeline_id": other_deals.pipeline_id,
                "metric": "created",
                "condition": {"kind": "threshold", "op": "lt", "value": 1},
            },
        )
        assert created_here.status_code == 404

    async def test_bad_periods_and_groupings_are_422(self, deals: Deals) -> None:
        checks = [
            {"from": "2026-02-01", "to": "2026-01-01"},
            {"from": "2000-01-01", "to": "2026-01-01"},
            {"group_by": "day", "from": "2024-01-01", "to": "2026-01-01"},
            {"group_by": "field"},
            {"group_by": "field", "field": "nope"},
            {"group_by": "nope"},
            {"from": "yesterday"},
            {"to": "0001-01-05"},
            {"from": "9999-12-01", "to": "9999-12-31"},
        ]
        for extra in checks:
            response = await deals.client.get("/analytics/funnel", params={**params(deals), **extra})
            assert response.status_code == 422, (extra, response.text)
            assert response.headers["content-type"].startswith("application/problem+json")


class TestAlertsRespectRoles:
    async def test_viewers_read_alerts_and_only_editors_write_them(
        self, deals: Deals, viewer_client: httpx.AsyncClient
    ) -> None:
        body = {
            "name": "Wins",
            "entity_type": "deal",
            "metric": "won_count",
            "condition": {"kind": "threshold", "op": "lt", "value": 1},
        }
        assert (await viewer_client.post("/alerts", json=body)).status_code == 403
        alert = created(await deals.client.post("/alerts", json=body))
        assert (await viewer_client.get(f"/alerts/{alert['id']}")).status_code == 200
        assert (await viewer_client.patch(f"/alerts/{alert['id']}", json={"name": "y"})).status_code == 403
        assert (await viewer_client.post(f"/alerts/{alert['id']}/check")).status_code == 403
        assert (await viewer_client.delete(f"/alerts/{alert['id']}")).status_code == 403
        _, own = await person(deals, "own", [{"entity_type": "deal", "read": "own"}])
        async with own:
            # Its values are the whole pipeline's: a role reading only its own elements does not see it.
            assert (await own.get(f"/alerts/{alert['id']}")).status_code == 404
            assert (await own.get("/alerts")).json()["items"] == []


class TestManagerDashboard:
    async def test_my_priority_list_and_my_kpis_against_my_previous_period(self, deals: Deals) -> None:
        me, client = await person(deals, "manager", [{"entity_type": "deal", "read": "own", "update": "own"}])
        other = deals.users[0]
        history = [
            won_deal(deals, me, 2, amount=300),
            won_deal(deals, me, 5, amount=100),
            won_deal(deals, me, 10 + 30, amount=50),  # the previous period
            won_deal(deals, other, 3, amount=999),  # someone else's
            open_deal(deals, me, 1, score=90),
            open_deal(deals, me, 8, score=90),  # same score, longer in its stage: first
            open_deal(deals, me, 3, score=20),
            open_deal(deals, me, 4, score=None),
            open_deal(deals, other, 1, score=99),
        ]
        await seed(deals, history)
        async with client:
            response = await client.get("/dashboards/manager", params={**params(deals), "days": 30})
            assert response.status_code == 200, response.text
            board = response.json()
        assert board["user_id"] == me
        assert board["open_count"] == 4
        order = [str(d.id) for d in (history[5], history[4], history[6], history[7])]
        assert [e["id"] for e in board["priority"]] == order
        assert board["priority"][0]["seconds_in_stage"] == pytest.approx(8 * 86400, rel=0.01)
        kpis = {k["name"]: k for k in board["kpis"]}
        assert kpis["won_count"]["current"] == 2
        assert kpis["won_count"]["previous"] == 1
        assert kpis["won_count"]["change"] == pytest.approx(1.0)
        assert kpis["won_amount"]["current"] == 400
        assert kpis["created"]["current"] == 6
        assert kpis["avg_time_to_close_seconds"]["current"] == pytest.approx(3 * 3600)

    async def test_an_api_key_has_no_manager_dashboard(self, deals: Deals) -> None:
        response = await deals.client.get("/dashboards/manager", params=params(deals))
        assert response.status_code == 403


class TestHeadDashboard:
    async def test_a_department_head_sees_the_team_and_an_own_scope_is_refused(self, deals: Deals) -> None:
        department = created(await deals.client.post("/departments", json={"name": f"North {uuid.uuid4().hex[:4]}"}))
        grants = [{"entity_type": "deal", "read": "department"}]
        head_id, head = await person(deals, "head", grants, department_id=department["id"])
        member_id, member = await person(deals, "member", [], department_id=department["id"])
        await member.aclose()
        await seed(
            deals,
            [
                won_deal(deals, member_id, 2, amount=500),
                won_deal(deals, member_id, 3, amount=100),
                won_deal(deals, head_id, 4, amount=50),
                won_deal(deals, deals.users[0], 2, amount=10_000),  # outside the department
            ],
        )
        async with head:
            response = await head.get("/dashboards/head", params=params(deals))
            assert response.status_code == 200, response.text
            board = response.json()
        assert sorted(board["team"]) == sorted([head_id, member_id])
        kpis = {k["name"]: k for k in board["kpis"]}
        assert kpis["won_amount"]["current"] == 650
        assert [leader["user_id"] for leader in board["leaders"]] == [member_id, head_id]
        assert board["leaders"][0]["name"] == "member"
        assert board["leaders"][0]["won_count"] == 2
        everyone = (await deals.client.get("/dashboards/head", params=params(deals))).json()
        assert everyone["team"] is None
        assert {k["name"]: k for k in everyone["kpis"]}["won_amount"]["current"] == 10_650
        narrowed = await deals.client.get(
            "/dashboards/head", params={**params(deals), "department_id": department["id"]}
        )
        assert {k["name"]: k for k in narrowed.json()["kpis"]}["won_amount"]["current"] == 650
        missing = await deals.client.get(
            "/dashboards/head", params={**params(deals), "department_id": str(uuid.uuid4())}
        )
        assert missing.status_code == 404
        _, own = await person(deals, "seller", [{"entity_type": "deal", "read": "own"}])
        async with own:
            refused = await own.get("/dashboards/head", params=params(deals))
        assert refused.status_code == 403

    async def test_slowing_stages_and_problem_areas(self, deals: Deals) -> None:
        def slow(days_ago: float, hours: float, lost: bool) -> Deal:
            created_at = NOW - timedelta(days=days_ago)
            return Deal(
                uuid.uuid4(),
                created_at,
                deals.users[0],
                10,
                None,
                "web",
                "ads",
                [
                    Move(created_at, None, "NEW"),
                    Move(created_at + timedelta(hours=hours), "NEW", "LOST" if lost else "QUALIFIED"),
                ],
            )

        # NEW took 1 h last period and 5 h now; a third of this period's deals are lost from it (none were).
        await seed(
            deals,
            [slow(40 + n * 0.1, 1, False) for n in range(9)] + [slow(5 + n * 0.1, 5, n % 3 == 0) for n in range(9)],
        )
        board = (await deals.client.get("/dashboards/head", params=params(deals))).json()
        [stage] = board["slowing_stages"]
        assert stage["code"] == "NEW"
        assert stage["change"] == pytest.approx(4.0)
        kinds = {p["kind"] for p in board["problems"]}
        assert {"slow_stage", "losses_up", "conversion_drop"} <= kinds
