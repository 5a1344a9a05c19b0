"""hardening (roles): incoming-hook tokens stored hashed; idempotency records owned by their API key

Revision ID: 20261130_roles
Revises: 0005
Create Date: 2026-11-30 10:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "20261130_roles"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute("SET LOCAL lock_timeout = '5s'")
    # Hook tokens become SHA-256 digests: the URLs already handed out keep working (a request's token is hashed).
    op.drop_index("ix_automation_rules_hook_token", table_name="automation_rules")
    op.drop_constraint("uq_automation_rules_workspace_id_hook_token", "automation_rules", type_="unique")
    op.alter_column("automation_rules", "hook_token", new_column_name="hook_token_hash")
    op.execute(
        "UPDATE automation_rules SET hook_token_hash = encode(sha256(convert_to(hook_token_hash, 'UTF8')), 'hex') "
        "WHERE hook_token_hash IS NOT NULL"
    )
    op.create_unique_constraint(
        op.f("uq_automation_rules_workspace_id_hook_token_hash"), "automation_rules", ["workspace_id", "hook_token_hash"]
    )
    op.create_index(
        "ix_automation_rules_hook_token_hash",
        "automation_rules",
        ["hook_token_hash"],
        unique=False,
        postgresql_where=sa.text("hook_token_hash IS NOT NULL"),
    )
    # Records made before they had an owner could be replayed by any key and may hold secrets in plain text:
    # they are short-lived (IDEMPOTENCY_TTL_HOURS), so drop them rather than keep either.
    op.execute("DELETE FROM idempotency_keys")
    op.add_column("idempotency_keys", sa.Column("api_key_id", sa.UUID(), nullable=True))
    op.add_column(
        "idempotency_keys",
        sa.Column("role", postgresql.ENUM(name="api_key_role", create_type=False), nullable=True),
    )
    op.add_column(
        "idempotency_keys",
        sa.Column("secret_withheld", sa.Boolean(), server_default=sa.false(), nullable=False),
    )


def downgrade() -> None:
    op.drop_column("idempotency_keys", "secret_withheld")
    op.drop_column("idempotency_keys", "role")
    op.drop_column("idempotency_keys", "api_key_id")
    # The tokens cannot be recovered from their digests: incoming rules need a new URL after a downgrade.
    op.drop_index("ix_automation_rules_hook_token_hash", table_name="automation_rules")
    op.drop_constraint("uq_automation_rules_workspace_id_hook_token_hash", "automation_rules", type_="unique")
    op.execute("UPDATE automation_rules SET hook_token_hash = NULL")
    op.alter_column("automation_rules", "hook_token_hash", new_column_name="hook_token")
    op.create_unique_constraint(
        op.f("uq_automation_rules_workspace_id_hook_token"), "automation_rules", ["workspace_id", "hook_token"]
    )
    op.create_index(
        "ix_automation_rules_hook_token",
        "automation_rules",
        ["hook_token"],
        unique=False,
        postgresql_where=sa.text("hook_token IS NOT NULL"),
    )
