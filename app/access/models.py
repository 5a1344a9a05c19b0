"""Roles, the departments tree and who holds which role: the data behind `app.access.permissions`."""

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import Boolean, DateTime, Enum, ForeignKey, String, UniqueConstraint, func
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from app.auth.models import Role
from app.db import Base, created_at_column, uuid_pk, workspace_fk


class AccessRole(Base):
    """A named set of permissions. Every workspace has the built-in `admin`, `editor` and `viewer`, which cannot be
    changed; other roles grant per entity type and pipeline (see `RolePermissions`)."""

    __tablename__ = "roles"
    __table_args__ = (UniqueConstraint("workspace_id", "name"),)

    id: Mapped[uuid.UUID] = uuid_pk()
    workspace_id: Mapped[uuid.UUID] = workspace_fk()
    name: Mapped[str] = mapped_column(String(100), nullable=False)
    description: Mapped[str] = mapped_column(String(1000), nullable=False, default="", server_default="")
    builtin: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False, server_default="false")
    # What the role may do outside elements: admin manages keys, users and roles; editor changes configuration.
    level: Mapped[Role] = mapped_column(Enum(Role, name="api_key_role", create_type=False), nullable=False)
    permissions: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False, default=dict, server_default="{}")
    created_at: Mapped[datetime] = created_at_column()
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now(), nullable=False)


class UserRole(Base):
    __tablename__ = "user_roles"

    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    role_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("roles.id", ondelete="CASCADE"), primary_key=True)
    workspace_id: Mapped[uuid.UUID] = workspace_fk()


class Department(Base):
    """A node of the workspace's department tree; `department` scope covers a department and everything below it."""

    __tablename__ = "departments"

    id: Mapped[uuid.UUID] = uuid_pk()
    workspace_id: Mapped[uuid.UUID] = workspace_fk()
    name: Mapped[str] = mapped_column(String(200), nullable=False)
    parent_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("departments.id", ondelete="RESTRICT"))
    created_at: Mapped[datetime] = created_at_column()
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now(), nullable=False)
