"""Today's field rules as conditions on the read model, to find the stored values a rule changed since refuses.

A field's rules are read from the same settings the write path validates with (`FieldMeta.spec`, the kind's default
length): required, min, max, max_length, the enum's options, and the pattern. The SQL of each only counts and picks
examples; what a value is answered comes from the write path itself (`explain`, over `app.elements.values`), and a
parity test checks both agree. A pattern runs on RE2, which PostgreSQL does not have: the field's distinct values
are checked in Python (`pattern_breaks`, at most `PATTERN_VALUES` of them) and SQL then counts the ones refused.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from dataclasses import dataclass, replace
from decimal import Decimal
from typing import Any

from app.dataquality.schemas import RuleName
from app.elements.values import parse_values
from app.entity_types.fields import EnumKind, NumberKind, TextKind, ValueRejected
from app.entity_types.meta import FieldMeta, TypeMeta
from app.errors import ErrorCollector
from app.readmodel.compiler import Params
from app.readmodel.ddl import quote

PATTERN_VALUES = 50_000  # values of one field a pattern is checked on per report (the first ones read)


@dataclass(frozen=True)
class Rule:
    """One rule of one field, as it is today."""

    field: FieldMeta
    name: RuleName
    detail: str
    limit: Any = None  # the bound, the length, the options
    # A pattern's refused values (found in Python) and whether every distinct value was checked.
    refused: tuple[str, ...] = ()
    complete: bool = True

    @property
    def code(self) -> str:
        return self.field.row.code

    def breaks(self, params: Params) -> str:
        """A condition on `r` (the read model row): the element's value breaks the rule."""
        column = f"r.{quote(self.code)}"
        multiple = self.field.row.multiple
        if self.name == "required":
            return f"coalesce(cardinality({column}), 0) = 0" if multiple else f"{column} IS NULL"
        test = self._value_test("v" if multiple else column, params)
        if multiple:
            return f"EXISTS (SELECT 1 FROM unnest({column}) AS v WHERE {test})"
        return f"({test})"

    def _value_test(self, value: str, params: Params) -> str:
        if self.name == "min":
            return f"{value} < {params.add(self.limit)}::numeric"
        if self.name == "max":
            return f"{value} > {params.add(self.limit)}::numeric"
        if self.name == "max_length":
            return f"char_length({value}) > {params.add(self.limit)}::int"
        if self.name == "option":
            return f"NOT ({value} = ANY({params.add(list(self.limit))}::text[]))"
        # IN over a subquery: a hash of the refused values, where `= ANY(array)` would compare each of them per row.
        return f"{value} IN (SELECT unnest({params.add(list(self.refused))}::text[]))"


def rules_of(field_meta: FieldMeta) -> list[Rule]:
    """The rules a stored value of this field can break after the field changed."""
    row, spec, kind = field_meta.row, field_meta.spec, field_meta.kind
    rules: list[Rule] = []
    if row.required:
        rules.append(Rule(field_meta, "required", "required"))
    if isinstance(kind, NumberKind):
        for name in ("min", "max"):
            bound = spec.validation.get(name)
            if bound is not None:
                rules.append(Rule(field_meta, name, f"{name} {bound}", Decimal(str(bound))))
    if isinstance(kind, TextKind):
        max_length = spec.validation.get("max_length") or kind.default_max_length
        rules.append(Rule(field_meta, "max_length", f"max_length {max_length}", int(max_length)))
        pattern = spec.validation.get("pattern")
        if pattern:
            rules.append(Rule(field_meta, "pattern", f"pattern {pattern}", pattern))
    if isinstance(kind, EnumKind):
        options = sorted(spec.options)
        rules.append(Rule(field_meta, "option", "options: " + ", ".join(options), options))
    return rules


def type_rules(meta: TypeMeta) -> list[Rule]:
    return [rule for field_meta in meta.fields.values() for rule in rules_of(field_meta)]


def pattern_breaks(rule: Rule, values: Iterable[str]) -> list[str]:
    """The values the field's pattern refuses, by the validator itself (asked about the pattern alone: an over-long
    value is the max_length rule's)."""
    spec = replace(rule.field.spec, validation={"pattern": rule.limit, "max_length": sys.maxsize})
    refused = []
    for value in values:
        try:
            rule.field.kind.check_constraints(value, spec)
        except ValueRejected:
            refused.append(value)
    return refused


def explain(meta: TypeMeta, code: str, value: Any) -> str:
    """What writing `value` (the stored JSON form) to the field would be answered today: the write path's own
    validation (`app.elements.values.parse_values`)."""
    errors = ErrorCollector()
    parse_values(meta, {code: value}, errors, prefix="", creating=False)
    return "; ".join(dict.fromkeys(error.message for error in errors.errors)) or "is accepted today"
