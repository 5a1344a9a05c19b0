"""analytics: rollups of stage history kept by a trigger, and alert rules with their history

Revision ID: 20261201_analytics
Revises: 20261201_files
Create Date: 2026-12-01 15:00:00

A statement-level trigger on `stage_history` folds every statement's new rows (creations, moves, whatever wrote them)
into `analytics_stage_days` (per pipeline, UTC day, stage and assignee, plus a row for every assignee together:
entries, exits, losses, wins, amounts, time spent) and `analytics_distributions` (per pipeline, day and stage, and per
month: histograms of time in stage, time to close and the score elements closed with), in the transaction of the move, set-based: one statement per statement of moves. Rows
are spread over slots picked from the writing backend, so concurrent movers of one stage rarely wait on one row.

`analytics_rebuild(workspace)` recomputes a workspace's rollups (null: every workspace's) from its history (window functions instead of the
trigger's look-ups); the upgrade runs it for the history that exists already. It attributes past events to the
element's current assignee and score (the trigger uses the ones at the time of the move).

The index on `stage_history (to_pipeline_id, moved_at)` serves the groupings that are not rolled up (by source, by a
custom field); it is built CONCURRENTLY, outside the migration's transaction, so writes go on meanwhile.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "20261201_analytics"
down_revision: str | None = "20261201_files"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SLOTS = 8
NOBODY = "'00000000-0000-0000-0000-000000000000'::uuid"
# The rows of a day and stage summed over every assignee carry this one: what a whole pipeline's funnel reads.
EVERYONE = "'ffffffff-ffff-ffff-ffff-ffffffffffff'::uuid"
COUNT_COLUMNS = (
    "entered, reentered, created, by_rules, exited, exited_seconds, lost, won, entered_amount, closed_seconds"
)

# Eight buckets per doubling of the duration: a percentile read from them is within 4.5 % of the exact one.
BUCKET_FUNCTION = """
CREATE FUNCTION analytics_bucket(seconds double precision) RETURNS smallint LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
SELECT CASE WHEN seconds IS NULL OR seconds < 1 THEN 0
            ELSE least(1 + floor(8 * log(2, seconds::numeric)), 32000)::smallint END
$$
"""


def _fold(moves: str, slot: str) -> str:
    """One statement adding `moves` (a query with the columns of MOVE_COLUMNS) into both rollups."""
    return f"""
    WITH moves AS MATERIALIZED ({moves}),
    counts AS (
        SELECT workspace_id, to_pipeline_id AS pipeline_id, to_stage_id AS stage_id, day, assignee_id,
            CASE WHEN seen_before THEN 0 ELSE 1 END AS entered,
            CASE WHEN seen_before THEN 1 ELSE 0 END AS reentered,
            CASE WHEN from_stage_id IS NULL THEN 1 ELSE 0 END AS created,
            CASE WHEN by_rules AND from_stage_id IS NOT NULL THEN 1 ELSE 0 END AS by_rules,
            0 AS exited, 0::float8 AS exited_seconds, 0 AS lost, 0 AS won,
            CASE WHEN seen_before THEN 0 ELSE amount END AS entered_amount,
            CASE WHEN NOT seen_before AND to_semantic IN ('success', 'failure') THEN coalesce(age_seconds, 0)
                ELSE 0 END AS closed_seconds
        FROM moves WHERE to_stage_id IS NOT NULL AND to_pipeline_id IS NOT NULL
        UNION ALL
        SELECT workspace_id, from_pipeline_id, from_stage_id, day, assignee_id, 0, 0, 0, 0,
            1, coalesce(stay_seconds, 0),
            CASE WHEN to_semantic = 'failure' THEN 1 ELSE 0 END,
            CASE WHEN to_semantic = 'success' THEN 1 ELSE 0 END,
            0, 0
        FROM moves WHERE from_stage_id IS NOT NULL AND from_pipeline_id IS NOT NULL
    ),
    folded AS (
        INSERT INTO analytics_stage_days AS t (workspace_id, pipeline_id, day, stage_id, assignee_id, slot,
            entered, reentered, created, by_rules, exited, exited_seconds, lost, won, entered_amount, closed_seconds)
        SELECT c.workspace_id, c.pipeline_id, c.day, c.stage_id, c.assignee_id, {slot},
            sum(c.entered), sum(c.reentered), sum(c.created), sum(c.by_rules), sum(c.exited), sum(c.exited_seconds),
            sum(c.lost), sum(c.won), sum(c.entered_amount), sum(c.closed_seconds)
        FROM (
            SELECT * FROM counts
            UNION ALL
            SELECT workspace_id, pipeline_id, stage_id, day, {EVERYONE}, {COUNT_COLUMNS} FROM counts
        ) c
        -- A stage or pipeline deleted meanwhile (a cascade in this transaction) keeps no rollups.
        JOIN stages s ON s.id = c.stage_id AND s.pipeline_id = c.pipeline_id
        GROUP BY c.workspace_id, c.pipeline_id, c.day, c.stage_id, c.assignee_id
        ORDER BY c.workspace_id, c.pipeline_id, c.day, c.stage_id, c.assignee_id
        ON CONFLICT (workspace_id, pipeline_id, day, stage_id, assignee_id, slot) DO UPDATE SET
            entered = t.entered + excluded.entered,
            reentered = t.reentered + excluded.reentered,
            created = t.created + excluded.created,
            by_rules = t.by_rules + excluded.by_rules,
            exited = t.exited + excluded.exited,
            exited_seconds = t.exited_seconds + excluded.exited_seconds,
            lost = t.lost + excluded.lost,
            won = t.won + excluded.won,
            entered_amount = t.entered_amount + excluded.entered_amount,
            closed_seconds = t.closed_seconds + excluded.closed_seconds
    ),
    points AS (
        SELECT workspace_id, from_pipeline_id AS pipeline_id, from_stage_id AS stage_id, day, 0::smallint AS kind,
            analytics_bucket(stay_seconds) AS bucket
        FROM moves WHERE from_stage_id IS NOT NULL AND from_pipeline_id IS NOT NULL AND stay_seconds IS NOT NULL
        UNION ALL
        SELECT workspace_id, to_pipeline_id, to_stage_id, day, 1, analytics_bucket(age_seconds)
        FROM moves WHERE to_semantic IN ('success', 'failure') AND NOT seen_before
        UNION ALL
        SELECT workspace_id, to_pipeline_id, to_stage_id, day, 2, CASE WHEN score IS NULL THEN 0 ELSE least(greatest(score, 0), 100) + 1 END
        FROM moves WHERE to_semantic IN ('success', 'failure') AND NOT seen_before
    )
    INSERT INTO analytics_distributions AS d (workspace_id, pipeline_id, grain, day, kind, stage_id, bucket, slot,
        count)
    SELECT p.workspace_id, p.pipeline_id, p.grain, p.day, p.kind, p.stage_id, p.bucket, {slot}, count(*)
    FROM (
        SELECT *, 0 AS grain FROM points
        UNION ALL
        -- The same per month (dated the 1st), so a long period reads a month's histogram in one set of rows.
        SELECT workspace_id, pipeline_id, stage_id, date_trunc('month', day::timestamp)::date, kind, bucket, 1
        FROM points
    ) p
    JOIN stages s ON s.id = p.stage_id AND s.pipeline_id = p.pipeline_id
    GROUP BY p.workspace_id, p.pipeline_id, p.grain, p.day, p.kind, p.stage_id, p.bucket
    ORDER BY p.workspace_id, p.pipeline_id, p.grain, p.day, p.kind, p.stage_id, p.bucket
    ON CONFLICT (workspace_id, pipeline_id, grain, day, kind, stage_id, bucket, slot) DO UPDATE SET
        count = d.count + excluded.count"""


# What one move contributes, from a statement's new history rows: the element's assignee, amount and score now (at
# the move), the semantic of the stage it went to, and from its earlier history when it entered the stage it left and
# whether it had been in the new stage before (one index probe per moved element; none for a creation).
NEW_MOVES = f"""
        SELECT h.workspace_id, h.from_pipeline_id, h.from_stage_id, h.to_pipeline_id, h.to_stage_id,
            (h.moved_at AT TIME ZONE 'UTC')::date AS day,
            coalesce(e.assigned_to, {NOBODY}) AS assignee_id,
            h.moved_by IS NULL AS by_rules,
            coalesce(e.amount, 0) AS amount,
            e.score,
            ts.semantic::text AS to_semantic,
            extract(epoch FROM h.moved_at - e.created_at)::float8 AS age_seconds,
            extract(epoch FROM h.moved_at - prev.entered_at)::float8 AS stay_seconds,
            coalesce(prev.seen, false) AS seen_before
        FROM new_rows h
        JOIN elements e ON e.id = h.element_id
        LEFT JOIN stages ts ON ts.id = h.to_stage_id
        LEFT JOIN LATERAL (
            SELECT max(p.moved_at) AS entered_at, bool_or(p.to_stage_id = h.to_stage_id) AS seen
            FROM stage_history p
            WHERE h.from_stage_id IS NOT NULL AND p.element_id = h.element_id AND p.id < h.id
        ) prev ON true"""

TRIGGER_FUNCTION = f"""
CREATE FUNCTION analytics_fold_history() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    {_fold(NEW_MOVES, f"pg_backend_pid() % {SLOTS}")};
    RETURN NULL;
END $$
"""

# The same from a workspace's whole history: the previous entry by a window instead of a look-up per row.
HISTORY_MOVES = f"""
        SELECT h.workspace_id, h.from_pipeline_id, h.from_stage_id, h.to_pipeline_id, h.to_stage_id,
            (h.moved_at AT TIME ZONE 'UTC')::date AS day,
            coalesce(e.assigned_to, {NOBODY}) AS assignee_id,
            h.moved_by IS NULL AS by_rules,
            coalesce(e.amount, 0) AS amount,
            e.score,
            ts.semantic::text AS to_semantic,
            extract(epoch FROM h.moved_at - e.created_at)::float8 AS age_seconds,
            CASE WHEN h.from_stage_id IS NOT NULL THEN extract(epoch FROM h.moved_at - h.previous_at)::float8
                END AS stay_seconds,
            h.nth > 1 AS seen_before
        FROM (
            SELECT x.*,
                lag(x.moved_at) OVER (PARTITION BY x.element_id ORDER BY x.moved_at, x.id) AS previous_at,
                row_number() OVER (PARTITION BY x.element_id, x.to_stage_id ORDER BY x.moved_at, x.id) AS nth
            FROM stage_history x WHERE ws IS NULL OR x.workspace_id = ws
        ) h
        JOIN elements e ON e.id = h.element_id
        LEFT JOIN stages ts ON ts.id = h.to_stage_id"""

REBUILD_FUNCTION = f"""
CREATE FUNCTION analytics_rebuild(ws uuid) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM analytics_stage_days WHERE ws IS NULL OR workspace_id = ws;
    DELETE FROM analytics_distributions WHERE ws IS NULL OR workspace_id = ws;
    {_fold(HISTORY_MOVES, "0")};
END $$
"""


def upgrade() -> None:
    op.create_table(
        "analytics_stage_days",
        sa.Column("workspace_id", sa.UUID(), nullable=False),
        sa.Column("pipeline_id", sa.UUID(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("stage_id", sa.UUID(), nullable=False),
        sa.Column("assignee_id", sa.UUID(), nullable=False),
        sa.Column("slot", sa.SmallInteger(), nullable=False),
        sa.Column("entered", sa.Integer(), nullable=False),
        sa.Column("reentered", sa.Integer(), nullable=False),
        sa.Column("created", sa.Integer(), nullable=False),
        sa.Column("by_rules", sa.Integer(), nullable=False),
        sa.Column("exited", sa.Integer(), nullable=False),
        sa.Column("exited_seconds", sa.Double(), nullable=False),
        sa.Column("lost", sa.Integer(), nullable=False),
        sa.Column("won", sa.Integer(), nullable=False),
        sa.Column("entered_amount", sa.Numeric(), nullable=False),
        sa.Column("closed_seconds", sa.Double(), nullable=False),
        sa.ForeignKeyConstraint(
            ["pipeline_id"],
            ["pipelines.id"],
            name=op.f("fk_analytics_stage_days_pipeline_id_pipelines"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["stage_id"], ["stages.id"], name=op.f("fk_analytics_stage_days_stage_id_stages"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["workspace_id"],
            ["workspaces.id"],
            name=op.f("fk_analytics_stage_days_workspace_id_workspaces"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint(
            "workspace_id", "pipeline_id", "day", "stage_id", "assignee_id", "slot", name=op.f("pk_analytics_stage_days")
        ),
    )
    # A person's own rows (dashboards, roles that read their own elements), without walking everyone's.
    op.create_index(
        "ix_analytics_stage_days_assignee",
        "analytics_stage_days",
        ["workspace_id", "assignee_id", "pipeline_id", "day"],
        unique=False,
    )
    op.create_table(
        "analytics_distributions",
        sa.Column("workspace_id", sa.UUID(), nullable=False),
        sa.Column("pipeline_id", sa.UUID(), nullable=False),
        sa.Column("grain", sa.SmallInteger(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("kind", sa.SmallInteger(), nullable=False),
        sa.Column("stage_id", sa.UUID(), nullable=False),
        sa.Column("bucket", sa.SmallInteger(), nullable=False),
        sa.Column("slot", sa.SmallInteger(), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["pipeline_id"],
            ["pipelines.id"],
            name=op.f("fk_analytics_distributions_pipeline_id_pipelines"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["stage_id"], ["stages.id"], name=op.f("fk_analytics_distributions_stage_id_stages"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["workspace_id"],
            ["workspaces.id"],
            name=op.f("fk_analytics_distributions_workspace_id_workspaces"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint(
            "workspace_id",
            "pipeline_id",
            "grain",
            "day",
            "kind",
            "stage_id",
            "bucket",
            "slot",
            name=op.f("pk_analytics_distributions"),
        ),
    )
    op.create_table(
        "analytics_alert_rules",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("workspace_id", sa.UUID(), nullable=False),
        sa.Column("entity_type_id", sa.UUID(), nullable=False),
        sa.Column("pipeline_id", sa.UUID(), nullable=False),
        sa.Column("stage_id", sa.UUID(), nullable=True),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("metric", sa.String(length=40), nullable=False),
        sa.Column("condition", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("window_days", sa.Integer(), nullable=False),
        sa.Column("min_volume", sa.Integer(), nullable=False),
        sa.Column("check_every_minutes", sa.Integer(), nullable=False),
        sa.Column("notify_user_ids", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("state", sa.String(length=20), nullable=False),
        sa.Column("last_value", sa.Double(), nullable=True),
        sa.Column("last_checked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("next_check_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.UUID(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.ForeignKeyConstraint(
            ["entity_type_id"],
            ["entity_types.id"],
            name=op.f("fk_analytics_alert_rules_entity_type_id_entity_types"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["pipeline_id"],
            ["pipelines.id"],
            name=op.f("fk_analytics_alert_rules_pipeline_id_pipelines"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["stage_id"], ["stages.id"], name=op.f("fk_analytics_alert_rules_stage_id_stages"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["workspace_id"],
            ["workspaces.id"],
            name=op.f("fk_analytics_alert_rules_workspace_id_workspaces"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_analytics_alert_rules")),
    )
    op.create_index(
        "ix_analytics_alert_rules_workspace", "analytics_alert_rules", ["workspace_id", "created_at"], unique=False
    )
    op.create_index(
        "ix_analytics_alert_rules_due",
        "analytics_alert_rules",
        ["next_check_at"],
        unique=False,
        postgresql_where=sa.text("enabled"),
    )
    op.create_table(
        "analytics_alert_events",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("workspace_id", sa.UUID(), nullable=False),
        sa.Column("rule_id", sa.UUID(), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("value", sa.Double(), nullable=True),
        sa.Column("low", sa.Double(), nullable=True),
        sa.Column("high", sa.Double(), nullable=True),
        sa.Column("window_start", sa.Date(), nullable=False),
        sa.Column("window_end", sa.Date(), nullable=False),
        sa.Column("notified", sa.Integer(), nullable=False),
        sa.Column("event_id", sa.UUID(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.ForeignKeyConstraint(
            ["rule_id"],
            ["analytics_alert_rules.id"],
            name=op.f("fk_analytics_alert_events_rule_id_analytics_alert_rules"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["workspace_id"],
            ["workspaces.id"],
            name=op.f("fk_analytics_alert_events_workspace_id_workspaces"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_analytics_alert_events")),
    )
    op.create_index("ix_analytics_alert_events_rule", "analytics_alert_events", ["rule_id", "id"], unique=False)
    op.execute(BUCKET_FUNCTION)
    op.execute(TRIGGER_FUNCTION)
    op.execute(REBUILD_FUNCTION)
    op.execute(
        "CREATE TRIGGER stage_history_analytics AFTER INSERT ON stage_history REFERENCING NEW TABLE AS new_rows "
        "FOR EACH STATEMENT EXECUTE FUNCTION analytics_fold_history()"
    )
    # The history that exists already (null: every workspace's, in one pass).
    op.execute("SELECT analytics_rebuild(NULL)")
    with op.get_context().autocommit_block():
        # A build interrupted earlier leaves an invalid index of that name: drop it so this one is built.
        op.execute("DROP INDEX CONCURRENTLY IF EXISTS ix_stage_history_pipeline_moved")
        op.create_index(
            "ix_stage_history_pipeline_moved",
            "stage_history",
            ["to_pipeline_id", "moved_at"],
            postgresql_concurrently=True,
        )


def downgrade() -> None:
    with op.get_context().autocommit_block():
        op.execute("DROP INDEX CONCURRENTLY IF EXISTS ix_stage_history_pipeline_moved")
    op.execute("DROP TRIGGER IF EXISTS stage_history_analytics ON stage_history")
    op.execute("DROP FUNCTION IF EXISTS analytics_rebuild(uuid)")
    op.execute("DROP FUNCTION IF EXISTS analytics_fold_history()")
    op.execute("DROP FUNCTION IF EXISTS analytics_bucket(double precision)")
    op.drop_index("ix_analytics_alert_events_rule", table_name="analytics_alert_events")
    op.drop_table("analytics_alert_events")
    op.drop_index("ix_analytics_alert_rules_due", table_name="analytics_alert_rules", postgresql_where=sa.text("enabled"))
    op.drop_index("ix_analytics_alert_rules_workspace", table_name="analytics_alert_rules")
    op.drop_table("analytics_alert_rules")
    op.drop_table("analytics_distributions")
    op.drop_index("ix_analytics_stage_days_assignee", table_name="analytics_stage_days")
    op.drop_table("analytics_stage_days")
