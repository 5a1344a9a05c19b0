import uuid
from datetime import datetime

from sqlalchemy import Boolean, Enum, Integer, LargeBinary, PrimaryKeyConstraint, String, false
from sqlalchemy.dialects.postgresql import UUID as PgUUID
from sqlalchemy.orm import Mapped, mapped_column

from app.auth.models import Role
from app.db import Base, created_at_column, workspace_fk


class IdempotencyKey(Base):
    __tablename__ = "idempotency_keys"
    __table_args__ = (PrimaryKeyConstraint("workspace_id", "key"),)

    workspace_id: Mapped[uuid.UUID] = workspace_fk()
    key: Mapped[str] = mapped_column(String(200), nullable=False)
    request_hash: Mapped[str] = mapped_column(String(64), nullable=False)
    # The API key (or the person: `Actor.principal_id`) that made the record, and its role then: only they, with that
    # role, get the answer again.
    api_key_id: Mapped[uuid.UUID | None] = mapped_column(PgUUID(as_uuid=True))
    role: Mapped[Role | None] = mapped_column(Enum(Role, name="api_key_role", create_type=False))
    # NULL while the first request is still running.
    status_code: Mapped[int | None] = mapped_column(Integer)
    response_body: Mapped[bytes | None] = mapped_column(LargeBinary)
    # The answer carried a secret shown only once: the stored body has it blanked out and a replay is refused.
    secret_withheld: Mapped[bool] = mapped_column(Boolean, nullable=False, server_default=false(), default=False)
    created_at: Mapped[datetime] = created_at_column()
