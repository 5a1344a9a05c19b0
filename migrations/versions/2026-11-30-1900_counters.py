"""counters: each person's new elements, elements past their stage's time limit and overdue tasks, per entity type

Revision ID: 20261130_counters
Revises: 20261130_org
Create Date: 2026-11-30 19:00:00

`user_counters` holds deltas folded in by statement-level triggers on `elements` and `tasks` (set-based, like
`stage_totals`); time passing is the counters' timer's job (app/counters/service.py `fire_due`, run by the worker's
tick): it claims due `counter_deadlines` rows and due tasks with FOR UPDATE SKIP LOCKED and sets their
`overdue_since`, which the same triggers count. A mark is set once (`overdue_since IS NULL` in the claim), so a
retried tick never counts twice; a move, a reassignment, a deletion or a task done takes exactly what was added.

Exactness against a repair: every trigger that writes a delta holds the workspace's counters lock in share mode from
before it reads anything; `user_counters_recount` (and a change of a pipeline's first stage) holds it exclusively,
so a recount never misses, or counts twice, a delta of a transaction still in flight.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "20261130_counters"
down_revision: str | None = "20261130_org"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SLOTS = 16
MAX_TIME_LIMIT_MINUTES = 366 * 24 * 60
SLOT = f"pg_backend_pid() % {SLOTS}"
KEY = "(workspace_id, user_id, entity_type_id, slot)"
COLUMNS = "(workspace_id, user_id, entity_type_id, slot, new_elements, overdue_elements, overdue_tasks)"

HELPERS = [
    # One advisory lock per workspace (the class 1130 keeps it apart from any other use of advisory locks).
    """
CREATE FUNCTION user_counters_lock_key(ws uuid) RETURNS bigint LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
SELECT (1130::bigint << 32) | (hashtext(ws::text)::bigint & 4294967295)
$$
""",
    # The stage new elements land in: the same order as the API's (sort, then code by code point).
    """
CREATE FUNCTION pipeline_first_stage(pipeline uuid) RETURNS uuid LANGUAGE sql STABLE PARALLEL SAFE AS $$
SELECT id FROM stages WHERE pipeline_id = pipeline ORDER BY sort, code COLLATE "C" LIMIT 1
$$
""",
]


def _element_rows(table: str, sign: str) -> str:
    """What rows of a transition table add to counters: live, assigned ones, with their stage and overdue mark."""
    return (
        f"SELECT workspace_id, assigned_to AS user_id, entity_type_id, pipeline_id, stage_id, {sign} AS n, "
        f"CASE WHEN overdue_since IS NULL THEN 0 ELSE {sign} END AS o "
        f"FROM {table} WHERE assigned_to IS NOT NULL AND deleted_at IS NULL"
    )


def _lock_shared(tables: Sequence[str], live: str) -> str:
    """Share the counters lock of every workspace the statement's counted rows belong to; FOUND says if any."""
    union = " UNION ".join(f"SELECT workspace_id FROM {t} WHERE {live}" for t in tables)
    return (
        f"PERFORM pg_advisory_xact_lock_shared(user_counters_lock_key(w.workspace_id)) "
        f"FROM ({union}) w ORDER BY w.workspace_id;"
    )


def _element_deltas(parts: Sequence[tuple[str, str]]) -> str:
    changes = " UNION ALL ".join(_element_rows(table, sign) for table, sign in parts)
    return f"""
        {_lock_shared([t for t, _ in parts], "assigned_to IS NOT NULL AND deleted_at IS NULL")}
        IF NOT FOUND THEN RETURN NULL; END IF;
        WITH by_stage AS (
            SELECT workspace_id, user_id, entity_type_id, pipeline_id, stage_id, sum(n) AS n, sum(o) AS o
            FROM ({changes}) AS changes
            GROUP BY workspace_id, user_id, entity_type_id, pipeline_id, stage_id
            HAVING sum(n) <> 0 OR sum(o) <> 0
        ), deltas AS (
            SELECT workspace_id, user_id, entity_type_id,
                sum(CASE WHEN stage_id = pipeline_first_stage(pipeline_id) THEN n ELSE 0 END) AS new_elements,
                sum(o) AS overdue_elements
            FROM by_stage GROUP BY workspace_id, user_id, entity_type_id
        )
        INSERT INTO user_counters AS c {COLUMNS}
        SELECT d.workspace_id, d.user_id, d.entity_type_id, {SLOT}, d.new_elements, d.overdue_elements, 0
        FROM deltas d
        WHERE (d.new_elements <> 0 OR d.overdue_elements <> 0)
            -- A cascade from a type or workspace deleted in this transaction: their counters go with them.
            AND EXISTS (SELECT 1 FROM workspaces w WHERE w.id = d.workspace_id)
            AND EXISTS (SELECT 1 FROM entity_types t WHERE t.id = d.entity_type_id)
        ORDER BY d.workspace_id, d.user_id, d.entity_type_id
        ON CONFLICT {KEY} DO UPDATE SET
            new_elements = c.new_elements + excluded.new_elements,
            overdue_elements = c.overdue_elements + excluded.overdue_elements;"""


# Elements: one function for the three statement-level triggers. Inserts also arm the deadlines of elements placed
# in a stage with a time limit (a move arms them in `elements_stage_clock`); a purge drops its deadlines.
ELEMENTS_FUNCTION = f"""
CREATE FUNCTION user_counters_elements() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO counter_deadlines (element_id, workspace_id, stage_id, due_at)
        SELECT n.id, n.workspace_id, n.stage_id, n.moved_at + make_interval(mins => s.time_limit_minutes)
        FROM new_rows n JOIN stages s ON s.id = n.stage_id
        WHERE s.time_limit_minutes IS NOT NULL AND n.moved_at IS NOT NULL AND n.deleted_at IS NULL;
        {_element_deltas([("new_rows", "1")])}
    ELSIF TG_OP = 'DELETE' THEN
        DELETE FROM counter_deadlines d USING old_rows o WHERE d.element_id = o.id;
        {_element_deltas([("old_rows", "-1")])}
    ELSE
        {_element_deltas([("new_rows", "1"), ("old_rows", "-1")])}
    END IF;
    RETURN NULL;
END $$
"""

# A move (or a restore, or a trip to the recycle bin) starts the element's clock again in its new stage: no mark,
# and a deadline when the stage has a time limit (already passed, e.g. a restore: the mark right away).
STAGE_CLOCK_FUNCTION = """
CREATE FUNCTION elements_stage_clock() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    minutes integer;
    due timestamptz;
BEGIN
    NEW.overdue_since := NULL;
    DELETE FROM counter_deadlines WHERE element_id = NEW.id;
    IF NEW.stage_id IS NOT NULL AND NEW.moved_at IS NOT NULL AND NEW.deleted_at IS NULL THEN
        SELECT time_limit_minutes INTO minutes FROM stages WHERE id = NEW.stage_id;
        IF minutes IS NOT NULL THEN
            due := NEW.moved_at + make_interval(mins => minutes);
            IF due <= now() THEN
                NEW.overdue_since := due;
            ELSE
                INSERT INTO counter_deadlines (element_id, workspace_id, stage_id, due_at)
                VALUES (NEW.id, NEW.workspace_id, NEW.stage_id, due);
            END IF;
        END IF;
    END IF;
    RETURN NEW;
END $$
"""


def _task_rows(table: str, sign: str) -> str:
    return (
        f"SELECT workspace_id, assignee_id AS user_id, entity_type_id, {sign} AS n FROM {table} "
        f"WHERE {TASK_COUNTS}"
    )


TASK_COUNTS = "assignee_id IS NOT NULL AND status = 'open' AND overdue_since IS NOT NULL"


def _task_deltas(parts: Sequence[tuple[str, str]]) -> str:
    changes = " UNION ALL ".join(_task_rows(table, sign) for table, sign in parts)
    return f"""
        {_lock_shared([t for t, _ in parts], TASK_COUNTS)}
        IF NOT FOUND THEN RETURN NULL; END IF;
        INSERT INTO user_counters AS c {COLUMNS}
        SELECT d.workspace_id, d.user_id, d.entity_type_id, {SLOT}, 0, 0, d.n
        FROM (
            SELECT workspace_id, user_id, entity_type_id, sum(n) AS n FROM ({changes}) AS changes
            GROUP BY workspace_id, user_id, entity_type_id HAVING sum(n) <> 0
        ) d
        WHERE EXISTS (SELECT 1 FROM workspaces w WHERE w.id = d.workspace_id)
            AND (d.entity_type_id IS NULL OR EXISTS (SELECT 1 FROM entity_types t WHERE t.id = d.entity_type_id))
        ORDER BY d.workspace_id, d.user_id, d.entity_type_id
        ON CONFLICT {KEY} DO UPDATE SET overdue_tasks = c.overdue_tasks + excluded.overdue_tasks;"""


TASKS_FUNCTION = f"""
CREATE FUNCTION user_counters_tasks() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        {_task_deltas([("new_rows", "1")])}
    ELSIF TG_OP = 'DELETE' THEN
        {_task_deltas([("old_rows", "-1")])}
    ELSE
        {_task_deltas([("new_rows", "1"), ("old_rows", "-1")])}
    END IF;
    RETURN NULL;
END $$
"""

# A task's mark follows its due time: set when it is already past (a new task, or a due time moved back), cleared
# when it moves ahead; the timer sets the rest as they come due.
TASK_CLOCK_FUNCTION = """
CREATE FUNCTION tasks_overdue_clock() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' OR NEW.due_at IS DISTINCT FROM OLD.due_at THEN
        NEW.overdue_since := CASE WHEN NEW.due_at <= now() THEN NEW.due_at END;
    END IF;
    RETURN NEW;
END $$
"""


def _first_changes(op_name: str) -> str:
    """Pipelines whose first stage the statement changed: (workspace, pipeline, first before, first after)."""
    if op_name == "INSERT":
        touched = "SELECT workspace_id, pipeline_id FROM new_rows"
        before = "SELECT id, sort, code FROM stages WHERE pipeline_id = p.pipeline_id AND id NOT IN (SELECT id FROM new_rows)"
    elif op_name == "DELETE":
        touched = "SELECT workspace_id, pipeline_id FROM old_rows"
        before = (
            "SELECT id, sort, code FROM stages WHERE pipeline_id = p.pipeline_id "
            "UNION ALL SELECT id, sort, code FROM old_rows WHERE pipeline_id = p.pipeline_id"
        )
    else:
        changed = (
            "FROM new_rows n JOIN old_rows o ON o.id = n.id "
            "WHERE (n.sort, n.code, n.pipeline_id) IS DISTINCT FROM (o.sort, o.code, o.pipeline_id)"
        )
        touched = f"SELECT n.workspace_id, n.pipeline_id {changed} UNION SELECT o.workspace_id, o.pipeline_id {changed}"
        before = (
            "SELECT id, sort, code FROM stages WHERE pipeline_id = p.pipeline_id AND id NOT IN (SELECT id FROM new_rows) "
            "UNION ALL SELECT id, sort, code FROM old_rows WHERE pipeline_id = p.pipeline_id"
        )
    # The first stage before the statement, in the order of pipeline_first_stage.
    return f"""
        SELECT * FROM (
            SELECT p.workspace_id, p.pipeline_id, pipeline_first_stage(p.pipeline_id) AS first_after,
                (SELECT b.id FROM ({before}) b ORDER BY b.sort, b.code COLLATE "C" LIMIT 1) AS first_before
            FROM ({touched}) p
        ) f
        WHERE f.first_before IS DISTINCT FROM f.first_after AND f.first_before IS NOT NULL AND f.first_after IS NOT NULL
        ORDER BY f.workspace_id, f.pipeline_id"""


def _refirst(op_name: str) -> str:
    """A pipeline's elements in its old first stage stop being new, those in the new one start (a pipeline that had
    no stage before, or has none left, holds no element)."""
    return f"""
        FOR moved IN {_first_changes(op_name)} LOOP
            PERFORM pg_advisory_xact_lock(user_counters_lock_key(moved.workspace_id));
            INSERT INTO user_counters AS c {COLUMNS}
            SELECT e.workspace_id, e.assigned_to, e.entity_type_id, {SLOT},
                sum(CASE WHEN e.stage_id = moved.first_after THEN 1 ELSE -1 END), 0, 0
            FROM elements e
            WHERE e.stage_id IN (moved.first_before, moved.first_after)
                AND e.deleted_at IS NULL AND e.assigned_to IS NOT NULL
            GROUP BY e.workspace_id, e.assigned_to, e.entity_type_id
            HAVING sum(CASE WHEN e.stage_id = moved.first_after THEN 1 ELSE -1 END) <> 0
            ORDER BY e.workspace_id, e.assigned_to, e.entity_type_id
            ON CONFLICT {KEY} DO UPDATE SET new_elements = c.new_elements + excluded.new_elements;
        END LOOP;"""


# A stage's time limit changed: its live elements are overdue or not by the new limit, their deadlines re-armed.
RELIMIT = """
        FOR limited IN
            SELECT n.id, n.time_limit_minutes AS minutes FROM new_rows n JOIN old_rows o ON o.id = n.id
            WHERE n.time_limit_minutes IS DISTINCT FROM o.time_limit_minutes ORDER BY n.id
        LOOP
            -- Only live elements of a stage have deadlines, and always in their own stage.
            DELETE FROM counter_deadlines d USING elements e
            WHERE e.stage_id = limited.id AND e.deleted_at IS NULL AND d.element_id = e.id;
            UPDATE elements e SET overdue_since = stage_overdue_since(e.moved_at, limited.minutes)
            WHERE e.stage_id = limited.id AND e.deleted_at IS NULL
                AND e.overdue_since IS DISTINCT FROM stage_overdue_since(e.moved_at, limited.minutes);
            IF limited.minutes IS NOT NULL THEN
                INSERT INTO counter_deadlines (element_id, workspace_id, stage_id, due_at)
                SELECT e.id, e.workspace_id, e.stage_id, e.moved_at + make_interval(mins => limited.minutes)
                FROM elements e
                WHERE e.stage_id = limited.id AND e.deleted_at IS NULL
                    AND e.moved_at + make_interval(mins => limited.minutes) > now()
                ON CONFLICT (element_id) DO UPDATE SET stage_id = excluded.stage_id, due_at = excluded.due_at;
            END IF;
        END LOOP;"""

STAGES_FUNCTION = f"""
CREATE FUNCTION user_counters_stages() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    moved record;
    limited record;
BEGIN
    IF TG_OP = 'INSERT' THEN
        {_refirst("INSERT")}
    ELSIF TG_OP = 'DELETE' THEN
        {_refirst("DELETE")}
    ELSE
        {_refirst("UPDATE")}
        {RELIMIT}
    END IF;
    RETURN NULL;
END $$
"""

OVERDUE_SINCE_FUNCTION = """
CREATE FUNCTION stage_overdue_since(moved_at timestamptz, minutes integer) RETURNS timestamptz
LANGUAGE sql STABLE PARALLEL SAFE AS $$
SELECT CASE WHEN moved_at + make_interval(mins => minutes) <= now() THEN moved_at + make_interval(mins => minutes) END
$$
"""

# What the counters of a workspace (or of one person in it) should be, from the elements and tasks themselves.
EXPECTED_FUNCTION = """
CREATE FUNCTION user_counters_expected(ws uuid, only_user uuid)
RETURNS TABLE (user_id uuid, entity_type_id uuid, new_elements bigint, overdue_elements bigint, overdue_tasks bigint)
LANGUAGE sql STABLE AS $$
WITH firsts AS (
    SELECT pipeline_first_stage(p.id) AS stage_id FROM pipelines p WHERE p.workspace_id = ws
), counts AS (
    SELECT e.assigned_to AS user_id, e.entity_type_id,
        count(*) FILTER (WHERE e.stage_id IN (SELECT stage_id FROM firsts)) AS new_elements,
        count(*) FILTER (WHERE e.overdue_since IS NOT NULL) AS overdue_elements,
        0::bigint AS overdue_tasks
    FROM elements e
    WHERE e.workspace_id = ws AND e.deleted_at IS NULL AND e.assigned_to IS NOT NULL
        AND (only_user IS NULL OR e.assigned_to = only_user)
    GROUP BY e.assigned_to, e.entity_type_id
    UNION ALL
    SELECT t.assignee_id, t.entity_type_id, 0, 0, count(*)
    FROM tasks t
    WHERE t.workspace_id = ws AND t.assignee_id IS NOT NULL AND t.status = 'open' AND t.overdue_since IS NOT NULL
        AND (only_user IS NULL OR t.assignee_id = only_user)
    GROUP BY t.assignee_id, t.entity_type_id
)
SELECT user_id, entity_type_id, sum(new_elements)::bigint, sum(overdue_elements)::bigint, sum(overdue_tasks)::bigint
FROM counts GROUP BY user_id, entity_type_id
HAVING sum(new_elements) <> 0 OR sum(overdue_elements) <> 0 OR sum(overdue_tasks) <> 0
$$
"""

# The repair: under the workspace's lock (no delta in flight) each person's counters are set to what the data says,
# by adding the difference to slot 0; the rows that were wrong are returned (stored, expected).
RECOUNT_FUNCTION = f"""
CREATE FUNCTION user_counters_recount(ws uuid, only_user uuid)
RETURNS TABLE (
    user_id uuid, entity_type_id uuid,
    new_stored bigint, new_expected bigint,
    overdue_stored bigint, overdue_expected bigint,
    tasks_stored bigint, tasks_expected bigint
)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
BEGIN
    PERFORM pg_advisory_xact_lock(user_counters_lock_key(ws));
    RETURN QUERY
    WITH expected AS MATERIALIZED (
        SELECT * FROM user_counters_expected(ws, only_user)
    ), stored AS (
        SELECT c.user_id, c.entity_type_id, sum(c.new_elements)::bigint AS new_elements,
            sum(c.overdue_elements)::bigint AS overdue_elements, sum(c.overdue_tasks)::bigint AS overdue_tasks
        FROM user_counters c
        WHERE c.workspace_id = ws AND (only_user IS NULL OR c.user_id = only_user)
        GROUP BY c.user_id, c.entity_type_id
    ), drift AS MATERIALIZED (
        SELECT coalesce(s.user_id, x.user_id) AS user_id, coalesce(s.entity_type_id, x.entity_type_id) AS type_id,
            coalesce(s.new_elements, 0) AS new_stored, coalesce(x.new_elements, 0) AS new_expected,
            coalesce(s.overdue_elements, 0) AS overdue_stored, coalesce(x.overdue_elements, 0) AS overdue_expected,
            coalesce(s.overdue_tasks, 0) AS tasks_stored, coalesce(x.overdue_tasks, 0) AS tasks_expected
        FROM stored s
        FULL JOIN expected x ON x.user_id = s.user_id AND x.entity_type_id IS NOT DISTINCT FROM s.entity_type_id
    ), wrong AS MATERIALIZED (
        SELECT * FROM drift d
        WHERE (d.new_stored, d.overdue_stored, d.tasks_stored)
            IS DISTINCT FROM (d.new_expected, d.overdue_expected, d.tasks_expected)
    ), fixed AS (
        INSERT INTO user_counters AS c {COLUMNS}
        SELECT ws, w.user_id, w.type_id, 0, w.new_expected - w.new_stored, w.overdue_expected - w.overdue_stored,
            w.tasks_expected - w.tasks_stored
        FROM wrong w ORDER BY w.user_id, w.type_id
        ON CONFLICT {KEY} DO UPDATE SET
            new_elements = c.new_elements + excluded.new_elements,
            overdue_elements = c.overdue_elements + excluded.overdue_elements,
            overdue_tasks = c.overdue_tasks + excluded.overdue_tasks
    )
    SELECT w.user_id, w.type_id, w.new_stored, w.new_expected, w.overdue_stored, w.overdue_expected,
        w.tasks_stored, w.tasks_expected
    FROM wrong w ORDER BY w.user_id, w.type_id;
    -- Rows that add up to nothing (slots of a person's past work) go.
    DELETE FROM user_counters c
    WHERE c.workspace_id = ws AND (only_user IS NULL OR c.user_id = only_user)
        AND c.new_elements = 0 AND c.overdue_elements = 0 AND c.overdue_tasks = 0;
END $$
"""

FUNCTIONS = {
    "user_counters_lock_key": "uuid",
    "pipeline_first_stage": "uuid",
    "stage_overdue_since": "timestamptz, integer",
    "user_counters_elements": "",
    "elements_stage_clock": "",
    "user_counters_tasks": "",
    "tasks_overdue_clock": "",
    "user_counters_stages": "",
    "user_counters_expected": "uuid, uuid",
    "user_counters_recount": "uuid, uuid",
}
STATEMENT_TRIGGERS = {
    "elements": "user_counters_elements",
    "tasks": "user_counters_tasks",
    "stages": "user_counters_stages",
}
TRANSITIONS = {
    "INSERT": "NEW TABLE AS new_rows",
    "UPDATE": "OLD TABLE AS old_rows NEW TABLE AS new_rows",
    "DELETE": "OLD TABLE AS old_rows",
}


def upgrade() -> None:
    op.execute("SET LOCAL lock_timeout = '5s'")
    op.add_column("stages", sa.Column("time_limit_minutes", sa.Integer(), nullable=True))
    op.create_check_constraint(
        op.f("ck_stages_time_limit_minutes_range"),
        "stages",
        f"time_limit_minutes BETWEEN 1 AND {MAX_TIME_LIMIT_MINUTES}",
    )
    op.add_column("elements", sa.Column("overdue_since", sa.DateTime(timezone=True), nullable=True))
    op.add_column("tasks", sa.Column("entity_type_id", sa.UUID(), nullable=True))
    op.add_column("tasks", sa.Column("overdue_since", sa.DateTime(timezone=True), nullable=True))
    op.create_foreign_key(
        op.f("fk_tasks_entity_type_id_entity_types"), "tasks", "entity_types", ["entity_type_id"], ["id"],
        ondelete="SET NULL",
    )
    op.execute(
        "UPDATE tasks t SET entity_type_id = e.entity_type_id FROM elements e "
        "WHERE e.id = t.element_id AND e.workspace_id = t.workspace_id"
    )
    op.execute("UPDATE tasks SET overdue_since = due_at WHERE status = 'open' AND due_at <= now()")
    op.create_index(
        "ix_tasks_due",
        "tasks",
        ["due_at"],
        postgresql_where=sa.text("status = 'open' AND overdue_since IS NULL AND due_at IS NOT NULL"),
    )
    op.create_table(
        "user_counters",
        sa.Column("workspace_id", sa.UUID(), nullable=False),
        sa.Column("user_id", sa.UUID(), nullable=False),
        sa.Column("entity_type_id", sa.UUID(), nullable=True),
        sa.Column("slot", sa.SmallInteger(), nullable=False),
        sa.Column("new_elements", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("overdue_elements", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("overdue_tasks", sa.BigInteger(), server_default="0", nullable=False),
        sa.ForeignKeyConstraint(
            ["entity_type_id"], ["entity_types.id"], name=op.f("fk_user_counters_entity_type_id_entity_types"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["workspace_id"], ["workspaces.id"], name=op.f("fk_user_counters_workspace_id_workspaces"),
            ondelete="CASCADE",
        ),
    )
    op.create_index(
        "uq_user_counters_key",
        "user_counters",
        ["workspace_id", "user_id", "entity_type_id", "slot"],
        unique=True,
        postgresql_nulls_not_distinct=True,
    )
    op.create_table(
        "counter_deadlines",
        sa.Column("element_id", sa.UUID(), nullable=False),
        sa.Column("workspace_id", sa.UUID(), nullable=False),
        sa.Column("stage_id", sa.UUID(), nullable=False),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("element_id", name=op.f("pk_counter_deadlines")),
    )
    op.create_index("ix_counter_deadlines_due_at", "counter_deadlines", ["due_at"])
    for function in (
        *HELPERS,
        OVERDUE_SINCE_FUNCTION,
        ELEMENTS_FUNCTION,
        STAGE_CLOCK_FUNCTION,
        TASKS_FUNCTION,
        TASK_CLOCK_FUNCTION,
        STAGES_FUNCTION,
        EXPECTED_FUNCTION,
        RECOUNT_FUNCTION,
    ):
        op.execute(function)
    for table, function in STATEMENT_TRIGGERS.items():
        for event, tables in TRANSITIONS.items():
            op.execute(
                f"CREATE TRIGGER {table}_user_counters_{event.lower()} AFTER {event} ON {table} "
                f"REFERENCING {tables} FOR EACH STATEMENT EXECUTE FUNCTION {function}()"
            )
    # Only what restarts the clock fires it (the WHEN is checked in C, not per row in PL/pgSQL).
    op.execute(
        "CREATE TRIGGER elements_stage_clock BEFORE UPDATE OF stage_id, moved_at, deleted_at ON elements "
        "FOR EACH ROW WHEN (OLD.stage_id IS DISTINCT FROM NEW.stage_id OR OLD.moved_at IS DISTINCT FROM NEW.moved_at "
        "OR OLD.deleted_at IS DISTINCT FROM NEW.deleted_at) EXECUTE FUNCTION elements_stage_clock()"
    )
    op.execute(
        "CREATE TRIGGER tasks_overdue_clock BEFORE INSERT OR UPDATE OF due_at ON tasks "
        "FOR EACH ROW EXECUTE FUNCTION tasks_overdue_clock()"
    )
    # Counters of what exists already (no stage has a time limit yet: no element is overdue).
    op.execute("SELECT count(*) FROM workspaces w, LATERAL user_counters_recount(w.id, NULL)")


def downgrade() -> None:
    op.execute("DROP TRIGGER IF EXISTS tasks_overdue_clock ON tasks")
    op.execute("DROP TRIGGER IF EXISTS elements_stage_clock ON elements")
    for table in STATEMENT_TRIGGERS:
        for event in TRANSITIONS:
            op.execute(f"DROP TRIGGER IF EXISTS {table}_user_counters_{event.lower()} ON {table}")
    for name, arguments in reversed(FUNCTIONS.items()):
        op.execute(f"DROP FUNCTION IF EXISTS {name}({arguments})")
    op.drop_table("counter_deadlines")
    op.drop_index("uq_user_counters_key", table_name="user_counters")
    op.drop_table("user_counters")
    op.drop_index("ix_tasks_due", table_name="tasks")
    op.drop_constraint(op.f("fk_tasks_entity_type_id_entity_types"), "tasks", type_="foreignkey")
    op.drop_column("tasks", "overdue_since")
    op.drop_column("tasks", "entity_type_id")
    op.drop_column("elements", "overdue_since")
    op.drop_constraint(op.f("ck_stages_time_limit_minutes_range"), "stages", type_="check")
    op.drop_column("stages", "time_limit_minutes")

