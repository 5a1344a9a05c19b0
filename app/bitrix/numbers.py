"""Integer numbers for the rows Bitrix24 clients address by number, given on first sight and kept.

Numbered per workspace and kind, from 1 (types from 128, as Bitrix24 numbers smart processes). A number is given
under a transaction-scoped advisory lock of (workspace, kind), so two requests never pick the same one.
"""

import uuid
from collections.abc import Iterable

from sqlalchemy import func, select, text
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from app.bitrix.models import BitrixNumber

TYPE = "type"
CATEGORY = "category"
STAGE = "stage"
FIELD = "field"
OPTION = "option"
USER = "user"
FIRST = {TYPE: 128}


async def numbers_of(
    session: AsyncSession, workspace_id: uuid.UUID, kind: str, object_ids: Iterable[uuid.UUID]
) -> dict[uuid.UUID, int]:
    """The number of each object, giving the next free ones to those that have none yet."""
    wanted = list(dict.fromkeys(object_ids))
    if not wanted:
        return {}
    known = await _known(session, workspace_id, kind, wanted)
    missing = [object_id for object_id in wanted if object_id not in known]
    if missing:
        await session.execute(
            text("SELECT pg_advisory_xact_lock(hashtextextended(:key, 0))"), {"key": f"bitrix:{workspace_id}:{kind}"}
        )
        known.update(await _known(session, workspace_id, kind, missing))
        missing = [object_id for object_id in missing if object_id not in known]
    if missing:
        last = await session.scalar(
            select(func.max(BitrixNumber.number)).where(
                BitrixNumber.workspace_id == workspace_id, BitrixNumber.kind == kind
            )
        )
        start = max(int(last or 0) + 1, FIRST.get(kind, 1))
        given = {object_id: start + offset for offset, object_id in enumerate(missing)}
        rows = [
            {"workspace_id": workspace_id, "kind": kind, "object_id": object_id, "number": number}
            for object_id, number in given.items()
        ]
        await session.execute(pg_insert(BitrixNumber).values(rows))
        known.update(given)
    return known


async def number_of(session: AsyncSession, workspace_id: uuid.UUID, kind: str, object_id: uuid.UUID) -> int:
    return (await numbers_of(session, workspace_id, kind, [object_id]))[object_id]


async def _known(
    session: AsyncSession, workspace_id: uuid.UUID, kind: str, object_ids: list[uuid.UUID]
) -> dict[uuid.UUID, int]:
    rows = await session.execute(
        select(BitrixNumber.object_id, BitrixNumber.number).where(
            BitrixNumber.workspace_id == workspace_id,
            BitrixNumber.kind == kind,
            BitrixNumber.object_id.in_(object_ids),
        )
    )
    return {row[0]: int(row[1]) for row in rows}


async def object_of(session: AsyncSession, workspace_id: uuid.UUID, kind: str, number: int) -> uuid.UUID | None:
    """The object a number stands for in this workspace, or None."""
    return await session.scalar(
        select(BitrixNumber.object_id).where(
            BitrixNumber.workspace_id == workspace_id, BitrixNumber.kind == kind, BitrixNumber.number == number
        )
    )


async def objects_of(
    session: AsyncSession, workspace_id: uuid.UUID, kind: str, numbers: Iterable[int]
) -> dict[int, uuid.UUID]:
    wanted = list(dict.fromkeys(numbers))
    if not wanted:
        return {}
    rows = await session.execute(
        select(BitrixNumber.number, BitrixNumber.object_id).where(
            BitrixNumber.workspace_id == workspace_id, BitrixNumber.kind == kind, BitrixNumber.number.in_(wanted)
        )
    )
    return {int(row[0]): row[1] for row in rows}
