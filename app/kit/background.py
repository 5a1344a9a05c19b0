"""Background jobs started once the current transaction commits (and never when it rolls back).

Stageflow's arq worker is not there yet: until it is, long jobs (model training, imports) run as asyncio tasks in
the process that accepted the request. Their state lives in the database, so a lost task is visible (and retried
on demand) rather than silent.
"""

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncSession

Job = Callable[[], Awaitable[object]]
logger = logging.getLogger(__name__)
_running: set[asyncio.Task[None]] = set()


async def _guarded(job: Job) -> None:
    try:
        await job()
    except Exception:  # the job records its own failure; this only keeps the loop quiet
        logger.exception("background job failed")


def start(job: Job) -> asyncio.Task[None]:
    task = asyncio.get_running_loop().create_task(_guarded(job))
    _running.add(task)
    task.add_done_callback(_running.discard)
    return task


def after_commit(session: AsyncSession, job: Job) -> None:
    pending: list[Job] | None = session.info.get("after_commit_jobs")
    if pending is None:
        pending = session.info["after_commit_jobs"] = []
        sync_session = session.sync_session

        def on_commit(_: Any) -> None:
            jobs = list(pending)
            pending.clear()
            for queued in jobs:
                start(queued)

        def on_rollback(_: Any) -> None:
            pending.clear()

        event.listen(sync_session, "after_commit", on_commit)
        event.listen(sync_session, "after_rollback", on_rollback)
    pending.append(job)


async def drain() -> None:
    """Wait for every background job of this process (the CLI and tests use it)."""
    while _running:
        await asyncio.gather(*list(_running), return_exceptions=True)
