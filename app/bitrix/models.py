"""The integer numbers Bitrix24 clients expect for Stageflow's own rows (types, pipelines, stages, fields, options,
users): one mapping table, numbered per workspace and kind like a Bitrix24 portal numbers its own. Elements carry
their number themselves (`elements.number`): filters and sorts on an item's id need it in the same row."""

import uuid

from sqlalchemy import BigInteger, PrimaryKeyConstraint, String, UniqueConstraint
from sqlalchemy.dialects.postgresql import UUID as PgUUID
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base, workspace_fk


class BitrixNumber(Base):
    __tablename__ = "bitrix_numbers"
    __table_args__ = (
        PrimaryKeyConstraint("workspace_id", "kind", "number"),
        UniqueConstraint("workspace_id", "kind", "object_id"),
    )

    workspace_id: Mapped[uuid.UUID] = workspace_fk()
    # type | category | stage | field | option | user
    kind: Mapped[str] = mapped_column(String(20), nullable=False)
    number: Mapped[int] = mapped_column(BigInteger, nullable=False)
    # The Stageflow row's id (no foreign key: the kinds live in different tables; a number of a deleted row is
    # never reached again, since every lookup goes on to load the row itself).
    object_id: Mapped[uuid.UUID] = mapped_column(PgUUID(as_uuid=True), nullable=False)
