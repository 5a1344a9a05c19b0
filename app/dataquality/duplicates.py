"""Likely duplicates, found by PostgreSQL: equal normalised e-mails, phones or titles, and similar titles.

One statement reads the readable elements of the type once, gives each element its keys (its normalised title, and
the normalised value of each e-mail and phone field), groups the keys and keeps those two or more elements share,
largest first: aggregates over the type's rows, never a pair-wise comparison. The keys are built with plain string
functions: PostgreSQL's regular expressions cost several times as much per row. Similar (not equal) titles need
pairs: pg_trgm's `similarity` compares the newest elements only.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from app.dataquality.schemas import DuplicateReason
from app.entity_types.meta import FieldMeta
from app.readmodel.compiler import Params
from app.readmodel.ddl import quote

# Phones: digits only (a phone field's value holds nothing but digits, spaces, "+", "-" and parentheses), compared by
# the last 10 without leading zeros: a country code, a national trunk prefix (+7 / 8, +44 / 0, +1) and the
# international prefix (00) make no difference. Fewer than 6 digits are not compared.
PHONE_DIGITS = 10
PHONE_MIN_DIGITS = 6
# Titles: case, spaces and common punctuation ignored ("ACME, Inc." = "acme inc" = "Acme-Inc!"); a chain of
# replace() costs a third of one regular expression.
TITLE_IGNORED = (" ", ",", ".", "-", "'", '"', "(", ")", "!", "?", "&", "/")


def email_key(value: str) -> str:
    return f"lower(btrim({value}))"


def phone_key(value: str) -> str:
    return f"ltrim(right(translate({value}, '+ ()-', ''), {PHONE_DIGITS}), '0')"


def title_key(value: str = "title") -> str:
    key = f"lower({value})"
    for char in TITLE_IGNORED:
        quoted = char.replace("'", "''")
        key = f"replace({key}, '{quoted}', '')"
    return key


KEYS: dict[DuplicateReason, tuple[str, Callable[[str], str]]] = {
    "email": ("email", email_key),
    "phone": ("phone", phone_key),
}


def keys_sql(source: str, where: str, fields: Sequence[FieldMeta], window: str) -> str:
    """(id, created_at, reason, key) rows for the newest `window` readable elements: each one's title key and the
    keys of its e-mail and phone values, empty ones too (`grouped` leaves them out). An element holds a key once per
    reason, even when two of its fields (or items) share it. One branch per key over the elements read once (a
    VALUES list per element costs more)."""
    columns = ", ".join(f"r.{quote(f.row.code)} AS {quote(f.row.code)}" for f in fields)
    base = (
        f"SELECT e.id, e.created_at, e.title{', ' + columns if columns else ''} {source} WHERE {where} "
        f"ORDER BY e.created_at DESC, e.id DESC LIMIT {window}"
    )
    branches = [f"SELECT id, created_at, 'title' AS reason, {title_key()} AS key FROM b"]
    reasons = []
    for reason, (field_type, normalise) in KEYS.items():
        for field_meta in (f for f in fields if f.row.type == field_type):
            column = quote(field_meta.row.code)
            reasons.append(reason)
            if field_meta.row.multiple:
                branches.append(
                    f"SELECT id, created_at, '{reason}', {normalise('v')} FROM b CROSS JOIN LATERAL unnest({column}) v"
                )
            else:
                branches.append(
                    f"SELECT id, created_at, '{reason}', {normalise(column)} FROM b WHERE {column} IS NOT NULL"
                )
    several = len(reasons) != len(set(reasons)) or any(f.row.multiple for f in fields)
    every = " UNION ALL ".join(branches)
    keyed = f"SELECT DISTINCT * FROM ({every}) k" if several else every
    return f"WITH b AS MATERIALIZED ({base}) {keyed}"


def grouped(keys: str, params: Params, *, groups: int, ids_per_group: int) -> str:
    """Per reason, the largest groups of elements sharing a key: (reason, key, size, first ids, groups of the
    reason). The keys are computed once: the CTE is read to group them, then to list the ids of the few groups kept
    (a hashed semi-join against them: no sort of every key)."""
    return (
        f"WITH k AS MATERIALIZED ({keys}), "
        # Empty keys are left out here, from the stored keys: a filter on the key in `k` would compute it twice.
        "d AS (SELECT reason, key, count(*) AS size FROM k "
        f"WHERE key <> '' AND (reason <> 'phone' OR length(key) >= {PHONE_MIN_DIGITS}) "
        "GROUP BY reason, key HAVING count(*) > 1), "
        "t AS MATERIALIZED (SELECT reason, key, size, groups FROM (SELECT reason, key, size, "
        "count(*) OVER (PARTITION BY reason) AS groups, "
        "row_number() OVER (PARTITION BY reason ORDER BY size DESC, key) AS n FROM d) ranked "
        f"WHERE n <= {params.add(groups)}::int), "
        f"i AS (SELECT reason, key, (array_agg(id ORDER BY created_at, id))[1:{params.add(ids_per_group)}::int] AS ids "
        "FROM k WHERE (reason, key) IN (SELECT reason, key FROM t) GROUP BY reason, key) "
        "SELECT t.reason, t.key, t.size, t.groups, i.ids FROM t JOIN i USING (reason, key) "
        "ORDER BY t.reason, t.size DESC, t.key"
    )


def similar_pairs(source: str, where: str, params: Params, *, window: int, threshold: float) -> str:
    """Pairs of the newest `window` elements whose titles differ (as keys) but are trigram-similar, with the same
    digits: "Order 12345" and "Order 12346" are two orders, "Jon Smith" and "John Smith" likely one person."""
    return (
        f"WITH w AS (SELECT e.id, lower(e.title) AS title, {title_key()} AS key {source} WHERE {where} "
        f"ORDER BY e.created_at DESC, e.id DESC LIMIT {params.add(window)}::int), "
        "k AS (SELECT id, title, key, regexp_replace(key, '[^0-9]', '', 'g') AS digits FROM w WHERE key <> '') "
        "SELECT a.id, b.id FROM k a JOIN k b ON a.id < b.id AND a.key <> b.key AND a.digits = b.digits "
        f"AND similarity(a.title, b.title) >= {params.add(threshold)}::real"
    )


def components(pairs: Sequence[tuple[Any, Any]]) -> list[list[Any]]:
    """The pairs' connected components (A~B and B~C make one group), each sorted."""
    parent: dict[Any, Any] = {}

    def root(item: Any) -> Any:
        parent.setdefault(item, item)
        while parent[item] != item:
            parent[item] = parent[parent[item]]
            item = parent[item]
        return item

    for left, right in pairs:
        parent[root(left)] = root(right)
    groups: dict[Any, list[Any]] = {}
    for item in parent:
        groups.setdefault(root(item), []).append(item)
    return [sorted(group) for group in groups.values()]
