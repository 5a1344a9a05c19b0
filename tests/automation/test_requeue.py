"""The sweep re-enqueues lost work under its business key (`events-sweep:…`, `deliver:{id}:{due}`). arq refuses a
job id whose result it still keeps, or whose job it thinks in progress: an attempt that failed (PostgreSQL down, say)
must leave no result behind, and a job whose worker was SIGKILLed (in progress for an hour in arq's eyes) must not
keep the sweep from enqueueing the work again. Else the event stays unhandled, or the delivery pending, for an hour
(both found by the fault suite, tests/faults)."""

import asyncio
import time
import uuid
from datetime import UTC, datetime

from arq.connections import create_pool

from app.settings import Settings
from workers.main import ArqWaker, make_worker, redis_settings


async def test_a_failed_job_leaves_its_key_free_for_the_sweep(settings: Settings) -> None:
    queue = f"test-requeue-{uuid.uuid4().hex}"  # its own queue: the burst worker runs nobody else's jobs
    redis = await create_pool(redis_settings(settings), default_queue_name=queue)
    key = f"event-sweep:{uuid.uuid4()}"
    try:
        # Not an event id: the attempt fails, as it would with the database down.
        assert await redis.enqueue_job("automation.handle_event", "not-an-event", _job_id=key) is not None
        # No crons: a burst worker whose tick enqueues a job every second would never find its queue empty.
        worker = make_worker(
            settings, redis_pool=redis, burst=True, queue_name=queue, cron_jobs=[], on_startup=None, on_shutdown=None
        )
        await worker.main()
        assert worker.jobs_failed == 1

        again = await redis.enqueue_job("automation.handle_event", "not-an-event", _job_id=key)

        assert again is not None  # the sweep's next pass gets the work queued again
    finally:
        await redis.delete(queue, f"arq:job:{key}", f"arq:result:{key}")
        await redis.aclose()


async def test_the_sweep_enqueues_again_what_a_killed_worker_left_in_progress(settings: Settings) -> None:
    queue = f"test-requeue-{uuid.uuid4().hex}"
    redis = await create_pool(redis_settings(settings), default_queue_name=queue)
    waker = ArqWaker(redis, requeue_seconds=1)
    event_id, delivery_id, due = uuid.uuid4(), uuid.uuid4(), datetime.now(UTC)
    try:
        await asyncio.sleep(1 - time.time() % 1 + 0.01)  # at the start of a window
        await waker.events([event_id])
        await waker.deliver_due(delivery_id, due)
        await waker.events([event_id])  # the same sweep window: not twice
        await waker.deliver_due(delivery_id, due)
        assert await redis.zcard(queue) == 2
        # The worker that took them was SIGKILLed: arq keeps them "in progress" (and their ids taken) for an hour.
        for job_id in [j.decode() for j in await redis.zrange(queue, 0, -1)]:
            await redis.psetex(f"arq:in-progress:{job_id}", 3_600_000, b"1")

        await asyncio.sleep(1)  # the next window
        await waker.events([event_id])
        await waker.deliver_due(delivery_id, due)

        assert await redis.zcard(queue) == 4  # queued afresh, for a live worker to take
    finally:
        keys = [k async for k in redis.scan_iter(match="arq:*events-sweep*")]
        keys += [k async for k in redis.scan_iter(match=f"arq:*{delivery_id}*")]
        await redis.delete(queue, *keys)
        await redis.aclose()
