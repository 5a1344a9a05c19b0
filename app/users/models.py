import enum
import uuid
from datetime import datetime

from sqlalchemy import Boolean, DateTime, Enum, ForeignKey, Index, Integer, String, UniqueConstraint, func
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base, created_at_column, uuid_pk, workspace_fk


class UserTier(enum.StrEnum):
    senior = "senior"
    regular = "regular"
    junior = "junior"


class User(Base):
    """A person of the workspace who can be assigned elements (a manager)."""

    __tablename__ = "users"
    __table_args__ = (UniqueConstraint("workspace_id", "email"),)

    id: Mapped[uuid.UUID] = uuid_pk()
    workspace_id: Mapped[uuid.UUID] = workspace_fk()
    name: Mapped[str] = mapped_column(String(200), nullable=False)
    email: Mapped[str] = mapped_column(String(320), nullable=False)
    tier: Mapped[UserTier] = mapped_column(Enum(UserTier, name="user_tier"), nullable=False)
    # How many open elements (stage semantic `process`) the user can hold.
    capacity: Mapped[int] = mapped_column(Integer, nullable=False)
    timezone: Mapped[str] = mapped_column(String(64), nullable=False)
    # The weekly working hours in `timezone` ({"mon": [["09:00", "18:00"]], …}, app/calendar/hours.py); None: the
    # default, Monday to Friday 09:00-18:00.
    working_hours: Mapped[dict[str, list[list[str]]] | None] = mapped_column(JSONB)
    active: Mapped[bool] = mapped_column(Boolean, nullable=False)
    # argon2; None for a person who cannot log in with a password (an OpenID Connect login still maps by email).
    password_hash: Mapped[str | None] = mapped_column(String(200))
    department_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("departments.id", ondelete="SET NULL"))
    # When routing last gave this user an element: ties on free capacity go to the longest-waiting user.
    last_routed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = created_at_column()
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now(), nullable=False)


# Logging in finds the user by e-mail, case-insensitively, across workspaces when no workspace is given.
Index("ix_users_email_lower", func.lower(User.email))
