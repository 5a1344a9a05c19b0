"""people and access: roles (built-in and custom), user roles, departments, passwords; keys act with a role row

Revision ID: 20261130_people
Revises: 20261130_roles
Create Date: 2026-11-30 18:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "20261130_people"
down_revision: str | None = "20261130_roles"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

LEVEL = postgresql.ENUM(name="api_key_role", create_type=False)
LIVE = sa.text("deleted_at IS NULL")


def upgrade() -> None:
    op.execute("SET LOCAL lock_timeout = '5s'")
    op.create_table(
        "roles",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("workspace_id", sa.UUID(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("description", sa.String(length=1000), server_default="", nullable=False),
        sa.Column("builtin", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("level", LEVEL, nullable=False),
        sa.Column("permissions", postgresql.JSONB(astext_type=sa.Text()), server_default="{}", nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.ForeignKeyConstraint(
            ["workspace_id"], ["workspaces.id"], name=op.f("fk_roles_workspace_id_workspaces"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_roles")),
        sa.UniqueConstraint("workspace_id", "name", name=op.f("uq_roles_workspace_id_name")),
    )
    op.execute(
        "INSERT INTO roles (id, workspace_id, name, builtin, level, description) "
        "SELECT gen_random_uuid(), w.id, l.level::text, true, l.level, l.description FROM workspaces w CROSS JOIN "
        "(VALUES ('admin'::api_key_role, 'Everything, including keys, users and roles'), "
        "('editor'::api_key_role, 'Every element action and the configuration of types, pipelines and rules'), "
        "('viewer'::api_key_role, 'Reads and exports everything, changes nothing')) AS l(level, description)"
    )
    op.add_column("api_keys", sa.Column("role_id", sa.UUID(), nullable=True))
    op.execute(
        "UPDATE api_keys k SET role_id = r.id FROM roles r "
        "WHERE r.workspace_id = k.workspace_id AND r.builtin AND r.level = k.role"
    )
    op.alter_column("api_keys", "role_id", nullable=False)
    op.create_foreign_key(
        op.f("fk_api_keys_role_id_roles"), "api_keys", "roles", ["role_id"], ["id"], ondelete="RESTRICT"
    )
    op.drop_column("api_keys", "role")

    op.create_table(
        "departments",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("workspace_id", sa.UUID(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("parent_id", sa.UUID(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.ForeignKeyConstraint(
            ["parent_id"], ["departments.id"], name=op.f("fk_departments_parent_id_departments"), ondelete="RESTRICT"
        ),
        sa.ForeignKeyConstraint(
            ["workspace_id"], ["workspaces.id"], name=op.f("fk_departments_workspace_id_workspaces"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_departments")),
    )
    op.add_column("users", sa.Column("password_hash", sa.String(length=200), nullable=True))
    op.add_column("users", sa.Column("department_id", sa.UUID(), nullable=True))
    op.create_foreign_key(
        op.f("fk_users_department_id_departments"), "users", "departments", ["department_id"], ["id"],
        ondelete="SET NULL",
    )
    op.create_table(
        "user_roles",
        sa.Column("user_id", sa.UUID(), nullable=False),
        sa.Column("role_id", sa.UUID(), nullable=False),
        sa.Column("workspace_id", sa.UUID(), nullable=False),
        sa.ForeignKeyConstraint(["role_id"], ["roles.id"], name=op.f("fk_user_roles_role_id_roles"), ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name=op.f("fk_user_roles_user_id_users"), ondelete="CASCADE"),
        sa.ForeignKeyConstraint(
            ["workspace_id"], ["workspaces.id"], name=op.f("fk_user_roles_workspace_id_workspaces"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("user_id", "role_id", name=op.f("pk_user_roles")),
    )
    # `own` and `department` scopes: "assigned to or created by one of these people", per type.
    op.create_index("ix_elements_type_assigned", "elements", ["entity_type_id", "assigned_to"], postgresql_where=LIVE)
    op.create_index("ix_elements_type_creator", "elements", ["entity_type_id", "created_by"], postgresql_where=LIVE)
    # Roles, their holders and departments are cached per process like API keys: NOTIFY on any change.
    op.execute(
        """
CREATE FUNCTION stageflow_access_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('stageflow_cache', 'access:' || coalesce(NEW.workspace_id, OLD.workspace_id)::text);
    RETURN NULL;
END $$;
"""
    )
    # users: only what access depends on (routing updates last_routed_at all the time).
    for table, events in (
        ("roles", "INSERT OR UPDATE OR DELETE"),
        ("user_roles", "INSERT OR UPDATE OR DELETE"),
        ("departments", "INSERT OR UPDATE OR DELETE"),
        ("users", "INSERT OR DELETE OR UPDATE OF active, department_id"),
    ):
        op.execute(
            f"CREATE TRIGGER {table}_access_notify AFTER {events} ON {table} "
            "FOR EACH ROW EXECUTE FUNCTION stageflow_access_notify()"
        )


def downgrade() -> None:
    for table in ("roles", "user_roles", "departments", "users"):
        op.execute(f"DROP TRIGGER {table}_access_notify ON {table}")
    op.execute("DROP FUNCTION stageflow_access_notify()")
    op.drop_index("ix_elements_type_creator", table_name="elements")
    op.drop_index("ix_elements_type_assigned", table_name="elements")
    op.drop_table("user_roles")
    op.drop_constraint(op.f("fk_users_department_id_departments"), "users", type_="foreignkey")
    op.drop_column("users", "department_id")
    op.drop_column("users", "password_hash")
    op.drop_table("departments")
    op.add_column("api_keys", sa.Column("role", LEVEL, nullable=True))
    op.execute("UPDATE api_keys k SET role = r.level FROM roles r WHERE r.id = k.role_id")
    op.alter_column("api_keys", "role", nullable=False)
    op.drop_constraint(op.f("fk_api_keys_role_id_roles"), "api_keys", type_="foreignkey")
    op.drop_column("api_keys", "role_id")
    op.drop_table("roles")
