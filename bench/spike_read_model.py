"""The read-model spike (issue 10): a table per entity type against typed expression indexes on `elements.values`.

Builds both layouts at N rows straight in SQL (the same 10 custom fields as the benchmark's leads), then measures
with one client, so wall time per query is PostgreSQL's time: the filtered list (`industry = X AND budget >= Y
ORDER BY budget DESC LIMIT 51`, every column), a sort on a date with a filter, writing 10,000 rows in batches of
1,000, and what writing costs in layout A when the shared `elements` table carries the expression indexes of many
other types (other tenants' fields: every insert checks every partial index's predicate).

    python3 -m bench.spike_read_model --n 1000000
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import statistics
import time
import uuid

import asyncpg

TYPE_ID = uuid.UUID("00000000-0000-0000-0000-00000000a001")
SOURCES = "ARRAY['web','ads','event','referral','cold','partner','social','other']"
FIELDS = (
    (
        "industry",
        "text",
        "(ARRAY['it','retail','bank','health','energy','auto','food','media','edu','gov','legal','pharma'])"
        "[1 + (i % 12)::int]",
    ),
    ("budget", "numeric", "(i * 7919) % 100000"),
    ("company_size", "numeric", "(i * 31) % 5000"),
    ("lead_source", "text", f"({SOURCES})[1 + (i % 8)::int]"),
    ("visits", "numeric", "(i * 13) % 200"),
    ("country", "text", "(ARRAY['DE','FR','US','GB','PL','ES','IT','NL'])[1 + ((i / 7) % 8)::int]"),
    ("created_on", "date", "date '2024-01-01' + (i % 700)::int"),
    ("is_b2b", "boolean", "i % 3 = 0"),
    ("email", "text", "'lead' || i || '@example.com'"),
    ("notes", "text", "repeat('n', 40)"),
)
INDEXED = ("industry", "budget", "company_size", "lead_source", "visits", "created_on", "is_b2b")


def _values_sql() -> str:
    pairs = ", ".join(f"'{code}', {expression}" for code, _, expression in FIELDS)
    return f"jsonb_build_object({pairs})"


def _expression(code: str, sql_type: str) -> str:
    if sql_type == "text":
        return f"(values->>'{code}')"
    if sql_type == "date":
        return f"sf_spike_date(values->>'{code}')"  # text::date is only STABLE: an index needs an IMMUTABLE wrapper
    return f"((values->>'{code}')::{sql_type})"


async def build(connection: asyncpg.Connection, n: int) -> None:
    await connection.execute(
        "DROP TABLE IF EXISTS spike_a, spike_b, spike_b_rm;"
        "CREATE OR REPLACE FUNCTION sf_spike_date(text) RETURNS date LANGUAGE sql IMMUTABLE AS 'SELECT $1::date';"
        "CREATE TABLE spike_a (id uuid PRIMARY KEY, entity_type_id uuid NOT NULL, created_at timestamptz NOT NULL,"
        " deleted_at timestamptz, values jsonb NOT NULL);"
        "CREATE TABLE spike_b (LIKE spike_a INCLUDING ALL);"
    )
    columns = ", ".join(f"{code} {sql_type}" for code, sql_type, _ in FIELDS)
    await connection.execute(f"CREATE TABLE spike_b_rm (id uuid PRIMARY KEY, {columns})")
    rows = (
        f"SELECT gen_random_uuid(), '{TYPE_ID}'::uuid, now() - make_interval(secs => i::int), NULL::timestamptz, "
        f"{_values_sql()} FROM generate_series(1::bigint, {n}) AS i"
    )
    await connection.execute(f"INSERT INTO spike_a {rows}")
    await connection.execute("INSERT INTO spike_b SELECT * FROM spike_a")
    await connection.execute(
        "INSERT INTO spike_b_rm SELECT r.* FROM spike_b e CROSS JOIN LATERAL "
        "jsonb_populate_record(NULL::spike_b_rm, e.values || jsonb_build_object('id', e.id)) r"
    )
    types = {code: sql_type for code, sql_type, _ in FIELDS}
    for code in INDEXED:
        await connection.execute(
            f"CREATE INDEX spike_a_{code} ON spike_a (({_expression(code, types[code])}), id) "
            f"WHERE entity_type_id = '{TYPE_ID}' AND deleted_at IS NULL"
        )
        await connection.execute(f"CREATE INDEX spike_b_rm_{code} ON spike_b_rm ({code}, id)")
    await connection.execute("CREATE INDEX spike_b_created ON spike_b (entity_type_id, created_at, id)")
    await connection.execute("CREATE INDEX spike_a_created ON spike_a (entity_type_id, created_at, id)")
    for table in ("spike_a", "spike_b", "spike_b_rm"):
        await connection.execute(f"VACUUM ANALYZE {table}")


LIST_A = (
    "SELECT id, values FROM spike_a WHERE entity_type_id = $1 AND deleted_at IS NULL AND (values->>'industry') = $2 "
    "AND ((values->>'budget')::numeric) >= $3 ORDER BY ((values->>'budget')::numeric) DESC, id DESC LIMIT 51"
)
LIST_B = (
    "SELECT e.id, e.values FROM spike_b e JOIN spike_b_rm r ON r.id = e.id WHERE e.entity_type_id = $1 "
    "AND e.deleted_at IS NULL AND r.industry = $2 AND r.budget >= $3 ORDER BY r.budget DESC, r.id DESC LIMIT 51"
)
DATE_A = (
    "SELECT id, values FROM spike_a WHERE entity_type_id = $1 AND deleted_at IS NULL AND (values->>'lead_source') = $2 "
    "AND sf_spike_date(values->>'created_on') >= $3 ORDER BY sf_spike_date(values->>'created_on'), id LIMIT 51"
)
DATE_B = (
    "SELECT e.id, e.values FROM spike_b e JOIN spike_b_rm r ON r.id = e.id WHERE e.entity_type_id = $1 "
    "AND e.deleted_at IS NULL AND r.lead_source = $2 AND r.created_on >= $3 ORDER BY r.created_on, r.id LIMIT 51"
)


async def per_query_ms(connection: asyncpg.Connection, sql: str, args: list[tuple[object, ...]]) -> float:
    for params in args[:20]:
        await connection.fetch(sql, *params)
    timings = []
    for params in args:
        t0 = time.perf_counter()
        await connection.fetch(sql, *params)
        timings.append((time.perf_counter() - t0) * 1000)
    return statistics.median(timings)


async def timed_write(connection: asyncpg.Connection, layout: str, rows: int = 10_000) -> float:
    """Milliseconds per row to insert `rows` in batches of 1,000, rolled back afterwards (layout B writes the
    projection row too, as its trigger does)."""
    transaction = connection.transaction()
    await transaction.start()
    try:
        t0 = time.perf_counter()
        for batch in range(rows // 1000):
            values = (
                f"SELECT gen_random_uuid(), '{TYPE_ID}'::uuid, now(), NULL::timestamptz, {_values_sql()} "
                f"FROM generate_series({batch * 1000 + 1}::bigint, {batch * 1000 + 1000}) AS i"
            )
            if layout == "a":
                await connection.execute(f"INSERT INTO spike_a {values}")
            else:
                await connection.execute(
                    f"WITH new_rows AS (INSERT INTO spike_b {values} RETURNING id, values) "
                    "INSERT INTO spike_b_rm SELECT r.* FROM new_rows n CROSS JOIN LATERAL "
                    "jsonb_populate_record(NULL::spike_b_rm, n.values || jsonb_build_object('id', n.id)) r"
                )
        return (time.perf_counter() - t0) * 1000 / rows
    finally:
        await transaction.rollback()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--other-types", type=int, default=200, help="other types' fields indexed on spike_a")
    args = parser.parse_args()
    connection = await asyncpg.connect(args.url)
    try:
        t0 = time.perf_counter()
        await build(connection, args.n)
        print(f"built both layouts at {args.n:,} rows in {time.perf_counter() - t0:.0f} s")
        industries = ["it", "retail", "bank", "health", "energy", "auto"]
        list_args = [(TYPE_ID, industries[i % 6], (i * 997) % 90000) for i in range(300)]
        date_args = [(TYPE_ID, "web", datetime.date(2024, 1, 1 + i % 28)) for i in range(300)]
        print(
            f"filtered list, median ms: A (expression indexes) {await per_query_ms(connection, LIST_A, list_args):.2f}"
            f" | B (table per type) {await per_query_ms(connection, LIST_B, list_args):.2f}"
        )
        print(
            f"filter + date sort, median ms: A {await per_query_ms(connection, DATE_A, date_args):.2f}"
            f" | B {await per_query_ms(connection, DATE_B, date_args):.2f}"
        )
        print(
            f"write, ms per row (batches of 1,000): A {await timed_write(connection, 'a'):.3f}"
            f" | B {await timed_write(connection, 'b'):.3f}"
        )
        # Other tenants' types on the same shared table: layout A puts all their indexes on `elements`.
        for i in range(args.other_types):
            other = uuid.UUID(int=i + 1)
            await connection.execute(
                f"CREATE INDEX spike_a_other_{i} ON spike_a (((values->>'f{i}')::numeric), id) "
                f"WHERE entity_type_id = '{other}' AND deleted_at IS NULL"
            )
        print(
            f"with {args.other_types} other types' indexes on the shared table: write A "
            f"{await timed_write(connection, 'a'):.3f} ms per row, filtered list A "
            f"{await per_query_ms(connection, LIST_A, list_args):.2f} ms"
        )
    finally:
        await connection.execute("DROP TABLE IF EXISTS spike_a, spike_b, spike_b_rm")
        await connection.close()


if __name__ == "__main__":
    asyncio.run(main())
