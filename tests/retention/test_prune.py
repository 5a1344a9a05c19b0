"""Pruning keeps what is not over or not old enough, and deletes exactly the rest (real PostgreSQL, real times)."""

import asyncio
import os
import sys
import uuid
from pathlib import Path

import httpx
from fastapi import FastAPI
from sqlalchemy import text

from app.automation import engine as automation_engine
from app.retention import service
from app.retention.service import PruneReport
from app.settings import Settings
from tests.conftest import Tenant, make_client, make_tenant
from tests.retention.conftest import Rows, ago, rows_for

ROOT = Path(__file__).resolve().parents[2]


async def prune(app: FastAPI, settings: Settings, *workspaces: uuid.UUID, **options: object) -> PruneReport:
    report = await service.prune(app.state.engine, settings, workspaces=list(workspaces), **options)  # type: ignore[arg-type]
    assert not report.busy
    assert report.complete
    return report


class TestWhatGoes:
    async def test_runs_only_finished_ones_past_the_window(self, app: FastAPI, settings: Settings, rows: Rows) -> None:
        gone = [
            await rows.run(status, created=ago(41), finished=ago(40)) for status in ("succeeded", "failed", "skipped")
        ]
        kept = {
            # Not finished, however old: a delay waiting, a run in flight (and one a retry cleared).
            await rows.run("queued", created=ago(90), finished=None),
            await rows.run("running", created=ago(90), finished=None),
            await rows.run("queued", created=ago(90), finished=ago(60)),
            # Finished within the window.
            await rows.run("succeeded", created=ago(31), finished=ago(29)),
            await rows.run("failed", created=ago(1), finished=ago(0, minutes=1)),
        }
        report = await prune(app, settings, rows.workspace_id)
        assert await rows.ids("automation_runs") == kept
        assert report.deleted["automation_runs"] == len(gone)

    async def test_deliveries_finished_and_quiet_past_the_window_with_their_attempts(
        self, app: FastAPI, settings: Settings, rows: Rows
    ) -> None:
        delivered = await rows.delivery("succeeded", created=ago(40), attempts=[ago(40), ago(40)])
        dead = await rows.delivery("failed", created=ago(35), attempts=[ago(35)])
        kept = {
            await rows.delivery("pending", created=ago(60), attempts=[ago(60)]),  # still retrying
            # Replayed a day ago and dead-lettered again: its latest attempt is recent.
            await rows.delivery("failed", created=ago(60), attempts=[ago(60), ago(1)]),
            await rows.delivery("succeeded", created=ago(2), attempts=[ago(2)]),
        }
        report = await prune(app, settings, rows.workspace_id)
        assert await rows.ids("webhook_deliveries") == kept
        assert await rows.ids("webhook_attempts", "delivery_id") == kept
        assert not {delivered, dead} & await rows.ids("webhook_attempts", "delivery_id")
        assert report.deleted["webhook_deliveries"] == 2
        assert report.deleted["webhook_attempts"] == 3

    async def test_outbox_events_handled_and_dispatched_past_the_window_with_their_marks(
        self, app: FastAPI, settings: Settings, rows: Rows
    ) -> None:
        made_by_the_api = await rows.ids("outbox_events", "event_id")  # the type and the rule: not dispatched here
        handled = await rows.event(created=ago(8), dispatched=ago(8), handled=True)
        kept = made_by_the_api | {
            await rows.event(created=ago(30), dispatched=None, handled=False),  # never dispatched
            await rows.event(created=ago(6), dispatched=ago(6), handled=True),  # within 7 days
        }
        report = await prune(app, settings, rows.workspace_id)
        assert await rows.ids("outbox_events", "event_id") == kept
        assert handled not in await rows.ids("automation_handled_events", "event_id")
        assert len(await rows.ids("automation_handled_events", "event_id")) == 1
        assert report.deleted["outbox_events"] == 1
        assert report.deleted["automation_handled_events"] == 1

    async def test_a_short_outbox_window_still_waits_for_the_sweep_and_for_unhandled_jobs(
        self, app: FastAPI, settings: Settings, rows: Rows
    ) -> None:
        short = settings.model_copy(update={"RETENTION_OUTBOX_DAYS": 1 / 24 / 60})  # one minute
        made_by_the_api = await rows.ids("outbox_events", "event_id")
        gone = {
            await rows.event(created=ago(0, minutes=20), dispatched=ago(0, minutes=20), handled=True),
            await rows.event(created=ago(2), dispatched=ago(2), handled=False),  # its queued job expired
        }
        kept = made_by_the_api | {
            # Within the engine's sweep window (15 minutes), handled or not.
            await rows.event(created=ago(0, minutes=10), dispatched=ago(0, minutes=10), handled=True),
            await rows.event(created=ago(0, minutes=10), dispatched=ago(0, minutes=10), handled=False),
            # Dispatched, not handled yet, its job may still be queued: kept a day.
            await rows.event(created=ago(0, minutes=20), dispatched=ago(0, minutes=20), handled=False),
        }
        await prune(app, short, rows.workspace_id)
        assert await rows.ids("outbox_events", "event_id") == kept
        # A late job for a pruned event finds nothing to do: no mark, no run, no delivery.
        for event_id in gone:
            async with app.state.sessionmaker() as session, session.begin():
                out = await automation_engine.handle_event(session, short, event_id)
            assert out == automation_engine.Followups()
        assert not gone & await rows.ids("automation_handled_events", "event_id")

    async def test_timeline_kept_forever_by_default_and_pruned_when_asked(
        self, app: FastAPI, settings: Settings, client: httpx.AsyncClient, rows: Rows
    ) -> None:
        old = await rows.entry(created=ago(400))
        recent = await rows.entry(created=ago(10))
        before = await rows.ids("timeline_entries")
        await prune(app, settings, rows.workspace_id)
        assert await rows.ids("timeline_entries") == before
        response = await client.patch("/workspace/retention", json={"timeline_days": 365})
        assert response.status_code == 200, response.text
        report = await prune(app, settings, rows.workspace_id)
        after = await rows.ids("timeline_entries")
        assert old not in after
        assert recent in after
        assert after == before - {old}
        assert report.deleted["timeline_entries"] == 1


class TestPasses:
    async def test_each_workspace_by_its_own_setting(self, app: FastAPI, settings: Settings) -> None:
        # Runs finished 5 and 400 days ago, in a workspace keeping them 3 days, one on the default (30), one forever.
        settings_of = {"short": {"runs_days": 3}, "default": None, "forever": {"runs_days": None}}
        tenants: dict[str, tuple[Tenant, Rows, uuid.UUID]] = {}
        for name, body in settings_of.items():
            tenant = await make_tenant(app, name)
            async with make_client(app, tenant.admin_key) as http:
                rows = await rows_for(app, http, tenant)
                if body is not None:
                    assert (await http.patch("/workspace/retention", json=body)).status_code == 200
            recent = await rows.run("succeeded", created=ago(6), finished=ago(5))
            await rows.run("succeeded", created=ago(500), finished=ago(400))
            tenants[name] = (tenant, rows, recent)
        report = await prune(app, settings, *(tenant.workspace_id for tenant, _, _ in tenants.values()))
        assert await tenants["short"][1].ids("automation_runs") == set()
        assert await tenants["default"][1].ids("automation_runs") == {tenants["default"][2]}
        assert len(await tenants["forever"][1].ids("automation_runs")) == 2
        assert report.workspaces == 3
        assert report.deleted["automation_runs"] == 3

    async def test_in_batches_with_progress(self, app: FastAPI, settings: Settings, rows: Rows) -> None:
        for _ in range(5):
            await rows.run("succeeded", created=ago(50), finished=ago(50))
        seen: list[tuple[str, int, bool]] = []
        report = await prune(
            app,
            settings,
            rows.workspace_id,
            batch_size=2,
            progress=lambda workspace, table, deleted, done: seen.append((table, deleted, done)),
        )
        assert await rows.ids("automation_runs") == set()
        assert [s for s in seen if s[0] == "automation_runs"] == [
            ("automation_runs", 2, False),
            ("automation_runs", 4, False),
            ("automation_runs", 5, True),
        ]
        assert (
            report.batches == 3 + 1 + 1
        )  # runs; one empty batch for deliveries, one for the outbox; timeline: forever

    async def test_a_locked_row_is_skipped_not_waited_for(self, app: FastAPI, settings: Settings, rows: Rows) -> None:
        locked = await rows.run("failed", created=ago(50), finished=ago(50))
        free = await rows.run("failed", created=ago(50), finished=ago(50))
        async with app.state.engine.connect() as holder:
            # As a retry by hand does: it holds the run's row while it decides.
            await holder.execute(text("SELECT 1 FROM automation_runs WHERE id = :id FOR UPDATE"), {"id": locked})
            await prune(app, settings, rows.workspace_id)
            assert await rows.ids("automation_runs") == {locked}
            await holder.rollback()
        await prune(app, settings, rows.workspace_id)
        assert free not in await rows.ids("automation_runs")
        assert await rows.ids("automation_runs") == set()

    async def test_one_pass_at_a_time(self, app: FastAPI, settings: Settings, rows: Rows) -> None:
        run = await rows.run("failed", created=ago(50), finished=ago(50))
        async with app.state.engine.connect() as holder:
            await holder.execute(text("SELECT pg_advisory_lock(:key)"), {"key": service.LOCK_KEY})
            report = await service.prune(app.state.engine, settings, workspaces=[rows.workspace_id])
            assert report.busy
            assert await rows.ids("automation_runs") == {run}
            await holder.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": service.LOCK_KEY})
            await holder.commit()
        await prune(app, settings, rows.workspace_id)
        assert await rows.ids("automation_runs") == set()


class TestSchedule:
    def test_every_few_minutes_or_never(self, settings: Settings) -> None:
        every5 = settings.model_copy(update={"RETENTION_PRUNE_EVERY_MINUTES": 5})
        never = settings.model_copy(update={"RETENTION_PRUNE_EVERY_MINUTES": 0})
        minutes = [ago(0, minutes=m).replace(second=41) for m in range(10)]
        assert sum(service.is_due(every5, at) for at in minutes) == 2
        assert not any(service.is_due(never, at) for at in minutes)

    async def test_the_worker_job_skips_minutes_that_are_not_due(self, app: FastAPI, settings: Settings) -> None:
        from workers.main import CRON_JOBS, prune_retention

        assert "retention.prune" in {job.name for job in CRON_JOBS}
        never = settings.model_copy(update={"RETENTION_PRUNE_EVERY_MINUTES": 0})
        assert await prune_retention({"engine": app.state.engine, "settings": never}) is None  # type: ignore[typeddict-item]


async def test_the_cli_prunes_one_workspace_and_says_what_it_did(
    app: FastAPI, settings: Settings, database_url: str, rows: Rows
) -> None:
    await rows.run("succeeded", created=ago(50), finished=ago(50))
    kept = await rows.run("succeeded", created=ago(5), finished=ago(5))
    env = {**os.environ, "DATABASE_URL": database_url, "PYTHONPATH": str(ROOT), "RETENTION_BATCH_SIZE": "1"}
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "app.cli",
        "prune",
        "--workspace",
        str(rows.workspace_id),
        cwd=ROOT,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output = (await process.communicate())[0].decode()
    assert process.returncode == 0, output
    assert f"{rows.workspace_id} automation_runs: 1 deleted" in output
    assert '"automation_runs": 1' in output
    assert await rows.ids("automation_runs") == {kept}
