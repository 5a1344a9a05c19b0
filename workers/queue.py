"""Where the outbox dispatcher hands events. Every dispatcher (in an API process or a worker) uses `event_sinks`,
so an event reaches every consumer whichever process claims it: GraphQL subscriptions through Redis pub/sub,
the automation engine through an arq job."""

import hashlib
from collections.abc import Sequence

from arq.connections import ArqRedis

from app.automation.runner import EVENTS_PER_JOB
from app.events.bus import EventMessage
from app.events.sinks import redis_pubsub_sink
from app.outbox.dispatcher import Sink


def event_sinks(redis: ArqRedis) -> list[Sink]:
    return [redis_pubsub_sink(redis), arq_sink(redis)]


def arq_sink(redis: ArqRedis) -> Sink:
    """One `automation.handle_events` job per slice of a dispatched batch, its job id its events' ids (a redelivered
    batch is not enqueued twice; should its slices differ, handling an event twice does nothing the second time)."""

    async def sink(messages: Sequence[EventMessage]) -> None:
        for start in range(0, len(messages), EVENTS_PER_JOB):
            event_ids = [message["event_id"] for message in messages[start : start + EVENTS_PER_JOB]]
            key = hashlib.sha256(",".join(event_ids).encode()).hexdigest()[:32]
            await redis.enqueue_job("automation.handle_events", event_ids, _job_id=f"events:{key}")

    return sink
