"""The sweep re-enqueues lost work under its business key (`event-sweep:{id}`, `deliver:{id}:{due}`). arq refuses a
job id whose result it still keeps, so an attempt that failed (PostgreSQL down, say) must leave no result behind:
else the event stays unhandled, or the delivery pending, for as long as the result is kept (found by the fault
suite, tests/faults: after PostgreSQL restarts, events and deliveries sat untouched)."""

import uuid

from arq.connections import create_pool

from app.settings import Settings
from workers.main import make_worker, redis_settings


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
