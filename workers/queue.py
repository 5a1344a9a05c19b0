"""Where the outbox dispatcher hands events. Every dispatcher (in an API process or a worker) uses `event_sinks`,
so an event reaches every consumer whichever process claims it: GraphQL subscriptions through Redis pub/sub,
the automation engine through an arq job."""

from collections.abc import Sequence

from arq.connections import ArqRedis

from app.events.bus import EventMessage
from app.events.sinks import redis_pubsub_sink
from app.outbox.dispatcher import Sink


def event_sinks(redis: ArqRedis) -> list[Sink]:
    return [redis_pubsub_sink(redis), arq_sink(redis)]


def arq_sink(redis: ArqRedis) -> Sink:
    """One `automation.handle_event` job per event, its job id the event id (a redelivery is not enqueued twice)."""

    async def sink(messages: Sequence[EventMessage]) -> None:
        for message in messages:
            event_id = message["event_id"]
            await redis.enqueue_job("automation.handle_event", event_id, _job_id=f"event:{event_id}")

    return sink
