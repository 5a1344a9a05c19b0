"""The arq worker: automation jobs, webhook deliveries and the periodic sweep. `stageflow worker` runs it together
with the outbox dispatcher; `arq workers.main.WorkerSettings` runs the worker alone."""

import asyncio
import hashlib
import logging
import time
import uuid
from datetime import datetime
from typing import Any, TypedDict

import httpx
from arq import cron
from arq.connections import ArqRedis, RedisSettings, create_pool
from arq.worker import Worker, func
from redis.exceptions import RedisError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

import app.models  # noqa: F401  (every mapper registered before the first flush)
from app.analytics import alerts as alert_service
from app.automation import experiments, runner
from app.db import make_engine, make_sessionmaker, unit_of_work
from app.files.storage import use_storage
from app.retention import service as retention_service
from app.scoring import service as scoring_service
from app.settings import Settings, get_settings

EVENT_SWEEP_EVERY_SECONDS = 10
REDIS_RETRY_SECONDS = 1.0
logger = logging.getLogger("stageflow.worker")


class JobContext(TypedDict):
    redis: ArqRedis
    settings: Settings
    engine: AsyncEngine
    sessionmaker: async_sessionmaker[AsyncSession]
    http: httpx.AsyncClient
    waker: "ArqWaker"
    engine_slots: asyncio.Semaphore
    job_try: int


class ArqWaker:
    """The engine's follow-ups as arq jobs; job ids come from business keys, so a repeat is not enqueued twice."""

    def __init__(self, redis: ArqRedis, *, requeue_seconds: float = 60) -> None:
        self.redis = redis
        # The sweep's jobs carry the time window they were made in. A job whose worker was SIGKILLed stays "in
        # progress" in arq for the longest job timeout plus 10 s (an hour: model training's), and arq refuses its id
        # meanwhile; in the next window the sweep enqueues the work afresh (a repeat is a no-op: claims are atomic).
        self.requeue_seconds = requeue_seconds

    def _window(self) -> int:
        return int(time.time() // self.requeue_seconds)

    async def run(self, run_id: uuid.UUID, attempt: int) -> None:
        await self.redis.enqueue_job("automation.run", str(run_id), attempt, _job_id=f"run:{run_id}:{attempt}")

    async def resume(self, run_id: uuid.UUID, at: datetime) -> None:
        await self.redis.enqueue_job(
            "automation.resume", str(run_id), _job_id=f"resume:{run_id}:{at.timestamp()}", _defer_until=at
        )

    async def timer(self, timer_id: uuid.UUID, at: datetime) -> None:
        await self.redis.enqueue_job(
            "automation.fire_timer", str(timer_id), _job_id=f"timer:{timer_id}", _defer_until=at
        )

    async def deliver(self, delivery_id: uuid.UUID, at: datetime | None = None) -> None:
        key = f"deliver:{delivery_id}:{at.timestamp() if at else 'now'}"
        await self.redis.enqueue_job("webhook.deliver", str(delivery_id), _job_id=key, _defer_until=at)

    async def deliver_many(self, delivery_ids: list[uuid.UUID]) -> None:
        ids = [str(delivery_id) for delivery_id in delivery_ids]
        key = hashlib.sha256(",".join(ids).encode()).hexdigest()[:32]
        await self.redis.enqueue_job("webhook.deliver_many", ids, _job_id=f"deliver-many:{key}")

    async def deliver_due(self, delivery_id: uuid.UUID, due: datetime) -> None:
        # Keyed by the due time: a replayed or retried delivery gets a new job, a repeat of the sweep does not.
        await self.redis.enqueue_job(
            "webhook.deliver", str(delivery_id), _job_id=f"deliver:{delivery_id}:{due.timestamp()}:{self._window()}"
        )

    async def events(self, event_ids: list[uuid.UUID]) -> None:
        # Not the dispatcher's job id: that one may still be kept as "done" by arq after a lost run.
        ids = [str(event_id) for event_id in event_ids]
        key = hashlib.sha256(",".join(ids).encode()).hexdigest()[:32]
        await self.redis.enqueue_job("automation.handle_events", ids, _job_id=f"events-sweep:{key}:{self._window()}")


async def startup(ctx: dict[str, Any]) -> None:
    settings = get_settings()
    ctx["settings"] = settings
    use_storage(settings)  # files purged by a job's writes leave the storage once it commits
    ctx["engine"] = make_engine(settings)
    ctx["sessionmaker"] = make_sessionmaker(ctx["engine"])
    ctx["http"] = httpx.AsyncClient(follow_redirects=False)
    ctx["waker"] = ArqWaker(ctx["redis"], requeue_seconds=settings.AUTOMATION_LEASE_SECONDS)
    ctx["engine_slots"] = asyncio.Semaphore(settings.WORKER_ENGINE_CONCURRENCY)


async def shutdown(ctx: dict[str, Any]) -> None:
    await ctx["http"].aclose()
    await ctx["engine"].dispose()


async def handle_event(ctx: JobContext, event_id: str) -> int:
    return await runner.process_event(ctx["sessionmaker"], ctx["settings"], ctx["waker"], uuid.UUID(event_id))


async def handle_events(ctx: JobContext, event_ids: list[str]) -> int:
    """A batch of events and their runs. The batches are CPU work: a few at a time per process (more would only
    stretch each one), and the lease-bound deadline counts from when the batch gets its turn."""
    ids = [uuid.UUID(event_id) for event_id in event_ids]
    settings = ctx["settings"]
    async with ctx["engine_slots"], asyncio.timeout(settings.job_timeout_seconds):
        return await runner.process_events(ctx["sessionmaker"], settings, ctx["waker"], ids)


async def run(ctx: JobContext, run_id: str, attempt: int) -> None:
    await runner.run_claimed(ctx["sessionmaker"], ctx["settings"], ctx["waker"], uuid.UUID(run_id), attempt)


async def resume(ctx: JobContext, run_id: str) -> None:
    await runner.resume_run(ctx["sessionmaker"], ctx["settings"], ctx["waker"], uuid.UUID(run_id))


async def fire_timer(ctx: JobContext, timer_id: str) -> None:
    await runner.fire_timer(ctx["sessionmaker"], ctx["settings"], ctx["waker"], uuid.UUID(timer_id))


async def deliver(ctx: JobContext, delivery_id: str) -> None:
    await runner.deliver(ctx["sessionmaker"], ctx["settings"], ctx["http"], ctx["waker"], uuid.UUID(delivery_id))


async def deliver_many(ctx: JobContext, delivery_ids: list[str]) -> None:
    ids = [uuid.UUID(delivery_id) for delivery_id in delivery_ids]
    await runner.deliver_many(ctx["sessionmaker"], ctx["settings"], ctx["http"], ctx["waker"], ids)


async def tick(ctx: JobContext) -> None:
    # Looking for unhandled events scans recent outbox rows: do it every few seconds, not on every tick.
    every = max(1, min(EVENT_SWEEP_EVERY_SECONDS, int(ctx["settings"].AUTOMATION_SWEEP_AFTER_SECONDS)))
    events = int(datetime.now().timestamp()) % every == 0
    await runner.tick(ctx["sessionmaker"], ctx["settings"], ctx["waker"], events=events)


async def retrain_models(ctx: JobContext) -> list[dict[str, Any]]:
    """Scheduled retraining of learned scoring models whose `training.retrain_every_hours` has come round."""
    return await scoring_service.retrain_due_models(ctx["engine"])


async def prune_retention(ctx: JobContext) -> dict[str, Any] | None:
    """Old finished runs, deliveries, handled events (and timeline entries, if asked) go, in small batches."""
    report = await retention_service.scheduled_prune(ctx["engine"], ctx["settings"])
    return report.as_dict() if report else None


async def check_alerts(ctx: JobContext) -> int:
    """Analytics alerts whose check is due (each on its own schedule); their events reach webhooks via the outbox."""
    async with unit_of_work(ctx["sessionmaker"]) as session:
        return await alert_service.check_due(session)


async def check_experiments(ctx: JobContext) -> int:
    """A/B rules with `auto_promote`: promote a variant once its P(best) passes the threshold (idempotent)."""
    async with unit_of_work(ctx["sessionmaker"]) as session:
        return await experiments.check_due(session)


def redis_settings(settings: Settings | None = None) -> RedisSettings:
    url = (settings or get_settings()).REDIS_URL
    if not url:
        raise RuntimeError("REDIS_URL is not set")
    return RedisSettings.from_dsn(url)


def functions(settings: Settings) -> list[Any]:
    # A batch may wait its turn for an engine slot (see handle_events) well past the job timeout the others get.
    batch_timeout = settings.job_timeout_seconds * BATCH_TIMEOUT_FACTOR
    return [
        _function(handle_event, "automation.handle_event"),
        _function(handle_events, "automation.handle_events", timeout=batch_timeout),
        _function(run, "automation.run"),
        _function(resume, "automation.resume"),
        _function(fire_timer, "automation.fire_timer"),
        _function(deliver, "webhook.deliver"),
        _function(deliver_many, "webhook.deliver_many"),
    ]


def _function(coroutine: Any, name: str, **options: Any) -> Any:
    # No result kept: arq refuses a job id whose result it still holds, and the sweep re-enqueues lost work under the
    # same business key (`events-sweep:…`, `deliver:{id}:{due}`). A job that failed while PostgreSQL was down would
    # otherwise keep its event unhandled, or its delivery pending, for the hour the result is kept.
    return func(coroutine, name=name, keep_result=0, **options)


BATCH_TIMEOUT_FACTOR = 5
CRON_JOBS = [
    cron(
        tick,  # type: ignore[arg-type]
        name="automation.tick",
        second=set(range(60)),
        microsecond=0,
        unique=True,
        timeout=30,
    ),
    # Checked every 5 minutes; training runs off the event loop (a thread), so other jobs go on meanwhile.
    cron(
        retrain_models,  # type: ignore[arg-type]
        name="scoring.retrain",
        minute=set(range(0, 60, 5)),
        second=17,
        unique=True,
        timeout=3600,
    ),
    # Every minute; each alert is checked on its own `check_every_minutes`.
    cron(
        check_alerts,  # type: ignore[arg-type]
        name="analytics.check_alerts",
        second=23,
        unique=True,
        timeout=120,
    ),
    # Every 5 minutes: experiments whose winner may be promoted automatically.
    cron(
        check_experiments,  # type: ignore[arg-type]
        name="automation.check_experiments",
        minute=set(range(2, 60, 5)),
        second=31,
        unique=True,
        timeout=300,
    ),
    # Ticks every minute; a pass runs every RETENTION_PRUNE_EVERY_MINUTES and stops starting batches within its budget.
    cron(
        prune_retention,  # type: ignore[arg-type]
        name="retention.prune",
        second=41,
        unique=True,
        timeout=retention_service.PASS_BUDGET_SECONDS + 60,
    ),
]


class WorkerSettings:
    """For `arq workers.main.WorkerSettings` (Redis on localhost); `stageflow worker` uses `make_worker`."""

    functions = functions(get_settings())
    cron_jobs = CRON_JOBS
    on_startup = startup
    on_shutdown = shutdown
    max_jobs = 20
    # Below the lease (see Settings.job_timeout_seconds): a hung job is cancelled before another worker may take over.
    job_timeout = get_settings().job_timeout_seconds
    keep_result = 3600


def make_worker(
    settings: Settings, *, redis_pool: ArqRedis | None = None, burst: bool = False, **overrides: Any
) -> Worker:
    options: dict[str, Any] = {
        "functions": functions(settings),
        "cron_jobs": CRON_JOBS,
        "on_startup": startup,
        "on_shutdown": shutdown,
        "max_jobs": settings.WORKER_MAX_JOBS,
        "job_timeout": settings.job_timeout_seconds,
        "keep_result": WorkerSettings.keep_result,
        "redis_settings": redis_settings(settings),
        "redis_pool": redis_pool,
        "burst": burst,
        "poll_delay": 0.05,
        **overrides,
    }
    return Worker(**options)


async def run_worker(settings: Settings, *, burst: bool = False, with_dispatcher: bool = True) -> None:
    """The worker process: the outbox dispatcher (events -> jobs) and the arq worker, until a signal stops it."""
    from app.outbox.dispatcher import run_dispatcher
    from workers.queue import event_sinks

    # arq logs every job start and end at INFO (the sweep runs every second): keep that for DEBUG only.
    if settings.LOG_LEVEL.upper() != "DEBUG":
        logging.getLogger("arq.worker").setLevel(logging.WARNING)
    redis = await create_pool(redis_settings(settings))
    worker = make_worker(settings, redis_pool=redis, burst=burst)
    engine = make_engine(settings)
    stop = asyncio.Event()
    dispatcher = None
    if with_dispatcher:
        dispatcher = asyncio.create_task(run_dispatcher(make_sessionmaker(engine), event_sinks(redis), stop=stop))
    try:
        await _poll_until_stopped(worker)
    except asyncio.CancelledError:
        pass
    finally:
        stop.set()
        if dispatcher is not None:
            await dispatcher
        await worker.close()
        await engine.dispose()


async def _poll_until_stopped(worker: Worker) -> None:
    """arq's poll loop ends at the first Redis error (a restart, a failover): poll again once Redis answers, in the
    same process, its jobs in flight going on. Whatever Redis lost meanwhile the sweep finds again in PostgreSQL."""
    while True:
        try:
            await worker.async_run()
            return
        except RedisError as exc:
            logger.warning("Redis is unreachable (%s); polling again in %gs", exc, REDIS_RETRY_SECONDS)
            worker.on_startup = None  # the engine and clients made at the first start are kept
            await asyncio.sleep(REDIS_RETRY_SECONDS)
