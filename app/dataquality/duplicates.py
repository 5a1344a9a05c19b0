"""Likely duplicates, found by PostgreSQL: equal normalised e-mails, phones or titles, and similar titles.

Each reason is one statement that groups the readable elements by a normalised key and keeps the groups of two or
more, largest first: a hash aggregate over the type's rows, never a pair-wise comparison of the whole type. Similar
(not equal) titles need pairs: they are looked for with pg_trgm's `similarity` among the newest elements only.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from app.entity_types.meta import FieldMeta
from app.readmodel.compiler import Params
from app.readmodel.ddl import quote

# Phones: digits only; numbers that long compare by their last 10 digits, so a country code, a national trunk prefix
# (+7 / 8, +44 / 0, +1) and the international prefix (00) make no difference; shorter ones without leading zeros.
PHONE_DIGITS = 10
PHONE_MIN_DIGITS = 6
EMAIL_KEY = "lower(btrim(v))"
PHONE_KEY = (
    f"(SELECT CASE WHEN length(d) >= {PHONE_DIGITS} THEN right(d, {PHONE_DIGITS}) "
    f"WHEN length(d) >= {PHONE_MIN_DIGITS} THEN ltrim(d, '0') ELSE '' END "
    "FROM (SELECT regexp_replace(v, '[^0-9]', '', 'g') AS d) digits)"
)
# Titles: case, punctuation and spacing ignored ("ACME, Inc." = "acme inc").
TITLE_KEY = "btrim(regexp_replace(lower(e.title), '[^[:alnum:]]+', ' ', 'g'))"


def values_array(fields: Sequence[FieldMeta]) -> str:
    """Every value of these text fields on one element, as one text[] (a single field's value, a multiple one's
    items)."""
    singles = [f"r.{quote(f.row.code)}" for f in fields if not f.row.multiple]
    parts = [f"ARRAY[{', '.join(singles)}]::text[]"] if singles else []
    parts += [f"r.{quote(f.row.code)}" for f in fields if f.row.multiple]
    return " || ".join(parts)


def grouped(keys_sql: str, params: Params, *, groups: int, ids_per_group: int) -> str:
    """Groups of two or more elements with one key: (key, size, first ids, number of groups), largest first.
    `keys_sql` selects (id, created_at, key) rows, one per element and key."""
    return (
        f"SELECT key, count(*) AS size, (array_agg(id ORDER BY created_at, id))[1:{params.add(ids_per_group)}::int] "
        "AS ids, count(*) OVER () AS groups "
        f"FROM (SELECT DISTINCT id, created_at, key FROM ({keys_sql}) k WHERE key <> '') d "
        f"GROUP BY key HAVING count(*) > 1 ORDER BY count(*) DESC, key LIMIT {params.add(groups)}::int"
    )


def value_keys(source: str, where: str, fields: Sequence[FieldMeta], key: str) -> str:
    return (
        f"SELECT e.id, e.created_at, {key} AS key {source} CROSS JOIN LATERAL unnest({values_array(fields)}) AS u(v) "
        f"WHERE {where} AND v IS NOT NULL"
    )


def title_keys(source: str, where: str) -> str:
    return f"SELECT e.id, e.created_at, {TITLE_KEY} AS key {source} WHERE {where}"


def similar_pairs(source: str, where: str, params: Params, *, window: int, threshold: float) -> str:
    """Pairs of the newest `window` elements whose normalised titles differ but are trigram-similar, with the same
    digits: "Order 12345" and "Order 12346" are two orders, "Jon Smith" and "John Smith" likely one person."""
    return (
        f"WITH w AS (SELECT e.id, {TITLE_KEY} AS key {source} WHERE {where} ORDER BY e.created_at DESC, e.id DESC "
        f"LIMIT {params.add(window)}::int), "
        "k AS (SELECT id, key, regexp_replace(key, '[^0-9]', '', 'g') AS digits FROM w WHERE key <> '') "
        "SELECT a.id, b.id FROM k a JOIN k b ON a.id < b.id AND a.key <> b.key AND a.digits = b.digits "
        f"AND similarity(a.key, b.key) >= {params.add(threshold)}::real"
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
