from collections.abc import Sequence

from redis.asyncio import Redis

from app.events.bus import EventMessage, publish
from app.outbox.dispatcher import Sink


def redis_pubsub_sink(redis: Redis) -> Sink:
    """Publish every event on its workspace's channel (GraphQL subscriptions listen there)."""

    async def sink(messages: Sequence[EventMessage]) -> None:
        async with redis.pipeline(transaction=False) as pipe:
            for message in messages:
                await publish(pipe, message)
            await pipe.execute()

    return sink


def default_sinks(redis: Redis) -> list[Sink]:
    """Every sink an outbox event goes to. Every dispatcher (API process or worker) must use this one list: the
    dispatcher that claims a row marks it dispatched for all sinks."""
    return [redis_pubsub_sink(redis)]
