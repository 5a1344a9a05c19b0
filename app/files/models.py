import uuid
from datetime import datetime

from sqlalchemy import BigInteger, DateTime, Index, String, text
from sqlalchemy.dialects.postgresql import UUID as PgUUID
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base, created_at_column, uuid_pk, workspace_fk


class StoredFile(Base):
    """An uploaded file: its metadata here, its bytes in the file storage under a key made of our own ids.

    A file belongs to its workspace and, once an element's file field names it, to that element and field (at most
    one): it follows the element into the recycle bin (derived from the element's `deleted_at`) and back. A purged
    file (its element deleted for good, its field deleted, or the file taken out of the value) has `purged_at` set in
    that same transaction; its bytes and then its row go right after the commit, or at the worker's next retention
    pass. Uploads that no element took are purged after FILES_UNBOUND_HOURS.
    """

    __tablename__ = "files"
    __table_args__ = (
        Index("ix_files_element", "element_id", postgresql_where=text("element_id IS NOT NULL")),
        Index("ix_files_field", "field_id", postgresql_where=text("field_id IS NOT NULL")),
        # The retention pass: purged files, and uploads no element took, per workspace.
        Index("ix_files_purged", "workspace_id", "purged_at", postgresql_where=text("purged_at IS NOT NULL")),
        Index(
            "ix_files_unbound",
            "workspace_id",
            "created_at",
            postgresql_where=text("element_id IS NULL AND purged_at IS NULL"),
        ),
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    workspace_id: Mapped[uuid.UUID] = workspace_fk()
    name: Mapped[str] = mapped_column(String(255), nullable=False)
    mime_type: Mapped[str] = mapped_column(String(255), nullable=False)
    size: Mapped[int] = mapped_column(BigInteger, nullable=False)
    sha256: Mapped[str] = mapped_column(String(64), nullable=False)
    created_by: Mapped[uuid.UUID | None] = mapped_column(PgUUID(as_uuid=True))
    created_at: Mapped[datetime] = created_at_column()
    # No foreign keys to elements and fields: statement-level triggers (migration 20261201_files) purge the files of
    # deleted elements and fields, whichever path deleted them (a purge, a type deleted with its elements, a cascade).
    element_id: Mapped[uuid.UUID | None] = mapped_column(PgUUID(as_uuid=True))
    field_id: Mapped[uuid.UUID | None] = mapped_column(PgUUID(as_uuid=True))
    purged_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
