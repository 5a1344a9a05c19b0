import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import Integer, String, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base, created_at_column, uuid_pk


class Workspace(Base):
    __tablename__ = "workspaces"

    id: Mapped[uuid.UUID] = uuid_pk()
    name: Mapped[str] = mapped_column(String(200), nullable=False)
    # Bumped on every change to entity types, fields, pipelines or stages so caches keyed on it stay honest.
    metadata_version: Mapped[int] = mapped_column(Integer, nullable=False, default=1, server_default="1")
    # The workspace's own settings, each key owned by one domain: `retention` (app.retention). Absent: the instance's.
    settings: Mapped[dict[str, Any]] = mapped_column(
        JSONB, nullable=False, default=dict, server_default=text("'{}'::jsonb")
    )
    created_at: Mapped[datetime] = created_at_column()
