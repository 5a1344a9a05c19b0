"""The one lookup every service repeats: a row of the caller's workspace by id, or NotFound (another workspace's row
is not found either)."""

import uuid
from typing import Any, TypeVar

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.errors import NotFound

T = TypeVar("T")


async def workspace_row(
    session: AsyncSession, model: type[T], workspace_id: uuid.UUID, row_id: uuid.UUID, label: str
) -> T:
    table: Any = model
    row = await session.scalar(select(model).where(table.workspace_id == workspace_id, table.id == row_id))
    if row is None:
        raise NotFound(f"{label} {row_id} not found")
    return row
