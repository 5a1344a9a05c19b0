"""Helpers for the files tests: uploads, a file-field type, the storage and the table."""

import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import func, select

from app.db import unit_of_work
from app.files.models import StoredFile
from app.files.storage import LocalFileStorage
from tests.factories import create_field, create_type, created
from tests.graphql.conftest import gql_session, run

__all__ = ["gql_session", "run"]


async def upload(
    client: httpx.AsyncClient, content: bytes = b"hello", name: str = "hello.txt", mime_type: str = "text/plain"
) -> dict[str, Any]:
    return created(await client.post("/files", files={"file": (name, content, mime_type)}))


def storage(app: FastAPI) -> LocalFileStorage:
    store = app.state.file_storage
    assert isinstance(store, LocalFileStorage)
    return store


def stored_paths(app: FastAPI, workspace_id: uuid.UUID) -> list[Path]:
    """Everything in the workspace's storage directory, temporary files included."""
    directory = storage(app).root / str(workspace_id)
    return sorted(p for p in directory.rglob("*") if p.is_file()) if directory.exists() else []


async def file_rows(app: FastAPI, workspace_id: uuid.UUID) -> int:
    async with unit_of_work(app.state.sessionmaker) as session:
        count = await session.scalar(select(func.count()).where(StoredFile.workspace_id == workspace_id))
    return int(count or 0)


async def stored(app: FastAPI, workspace_id: uuid.UUID, file_id: str) -> bool:
    return await storage(app).exists(f"{workspace_id}/{file_id}")


@pytest.fixture
async def docs(client: httpx.AsyncClient) -> dict[str, Any]:
    """A `deal` type with a single image field (≤ 1000 bytes) and a multiple attachments field (PDFs and images)."""
    entity_type = await create_type(client, "deal")
    await create_field(
        client, "deal", "photo", "file", max_size_bytes=1000, allowed_mime_types=["image/*"], label="Photo"
    )
    await create_field(
        client, "deal", "attachments", "file", multiple=True, allowed_mime_types=["application/pdf", "image/*"]
    )
    return entity_type
