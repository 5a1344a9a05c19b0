"""A real HTTP server running the app (uvicorn in the tests' event loop), for the fast-bitrix24 client, which talks
aiohttp over the network."""

import asyncio
import logging
from collections.abc import AsyncIterator

import pytest
import uvicorn
from fast_bitrix24 import BitrixAsync

from app.kit.net import free_port
from app.main import create_app
from app.settings import Settings

# The client logs every request and answer at DEBUG: a scenario's worth drowns a failure's report.
logging.getLogger("fast_bitrix24").setLevel(logging.WARNING)


@pytest.fixture(scope="module")
async def server(settings: Settings) -> AsyncIterator[str]:
    application = create_app(settings)
    port = free_port()
    config = uvicorn.Config(application, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    instance = uvicorn.Server(config)
    task = asyncio.create_task(instance.serve())
    for _ in range(200):
        if instance.started:
            break
        await asyncio.sleep(0.05)
    assert instance.started
    yield f"http://127.0.0.1:{port}"
    instance.should_exit = True
    await asyncio.wait_for(task, timeout=10)


def webhook(server: str, key: str) -> str:
    return f"{server}/rest/1/{key}/"


def client(server: str, key: str) -> BitrixAsync:
    """fast-bitrix24 as an integration would use it, without its throttling: its leaky bucket (2 requests a second
    after a pool of 50) would make a scenario of a few hundred calls take minutes."""
    return BitrixAsync(
        webhook(server, key), verbose=False, request_pool_size=10_000, requests_per_second=10_000.0, batch_size=50
    )
