"""The field-type registry: per field type, its storage column, how raw JSON becomes a typed value, and its operators.

A new field type is one `FieldKind` here (and its tests); `app.readmodel.compiler` and the validators read only this.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from typing import Any

import re2

TEXT_OPS = frozenset({"eq", "ne", "in", "nin", "contains", "icontains", "starts_with", "is_null"})
ORDERED_OPS = frozenset({"eq", "ne", "lt", "lte", "gt", "gte", "in", "nin", "between", "is_null"})
EQUALITY_OPS = frozenset({"eq", "ne", "in", "nin", "is_null"})
BOOL_OPS = frozenset({"eq", "ne", "is_null"})


class PatternRejected(ValueError):
    """A pattern the linear-time engine cannot compile (back-references, look-around, a huge repeat…)."""


def _re2_options() -> Any:
    options = re2.Options()
    options.log_errors = False  # a refused pattern is the user's input, not a log line
    options.max_mem = 1 << 20  # bounds the compiled program, so `(a{1000}){1000}` is refused rather than built
    return options


_RE2_OPTIONS = _re2_options()


@lru_cache(maxsize=1024)
def compile_pattern(pattern: str) -> Any:
    """Compile with RE2: matching is linear in the input, so no pattern can stall a process (ReDoS)."""
    try:
        return re2.compile(pattern, _RE2_OPTIONS)
    except re2.error as exc:
        reason = exc.args[0].decode(errors="replace") if exc.args and isinstance(exc.args[0], bytes) else str(exc)
        raise PatternRejected(reason or "not supported") from exc


# The built-in forms run on RE2 too. `\s` is ASCII-only there: `\pZ` adds the Unicode separators.
EMAIL_RE = compile_pattern(r"^[^@\s\pZ]+@[^@\s\pZ]+\.[^@\s\pZ]+$")
PHONE_RE = compile_pattern(r"^\+?[0-9][0-9 ()\-]{4,30}$")
URL_RE = compile_pattern(r"(?i)^https?://[^\s\pZ/$.?#][^\s\pZ]*$")


class ValueRejected(ValueError):
    """A raw value does not fit its field; the message is shown to the user."""


@dataclass(frozen=True)
class FieldSpec:
    """What a kind needs to know about a field to validate a value (a plain view of the `Field` row)."""

    code: str
    type: str
    validation: Mapping[str, Any]
    options: frozenset[str] = frozenset()


class FieldKind:
    column: str = "value_text"
    ops: frozenset[str] = EQUALITY_OPS
    sortable: bool = True

    def parse(self, raw: Any, spec: FieldSpec) -> Any:
        """Turn a raw JSON value into the stored Python value, or raise ValueRejected."""
        raise NotImplementedError

    def to_json(self, value: Any) -> Any:
        return value

    def check_constraints(self, value: Any, spec: FieldSpec) -> None:
        """min / max / max_length / pattern, for the kinds they apply to."""


class TextKind(FieldKind):
    column = "value_text"
    ops = TEXT_OPS
    form: Any = None  # a compiled RE2 pattern
    form_name = ""
    default_max_length = 255

    def parse(self, raw: Any, spec: FieldSpec) -> str:
        if not isinstance(raw, str):
            raise ValueRejected("must be a string")
        value = raw.strip() if self.form else raw
        if self.form is not None:
            self._check_length(value, spec)  # the length first: no pattern ever sees an over-long value
            if not self.form.match(value):
                raise ValueRejected(f"is not a valid {self.form_name}")
        return value

    def _check_length(self, value: str, spec: FieldSpec) -> None:
        max_length = spec.validation.get("max_length") or self.default_max_length
        if len(value) > max_length:
            raise ValueRejected(f"is longer than {max_length} characters")

    def check_constraints(self, value: Any, spec: FieldSpec) -> None:
        self._check_length(value, spec)
        pattern = spec.validation.get("pattern")
        if not pattern:
            return
        try:
            compiled = compile_pattern(pattern)
        except PatternRejected as exc:  # stored before patterns were checked with RE2
            raise ValueRejected(f"cannot be checked: the field's pattern is not supported ({exc})") from exc
        if not compiled.fullmatch(value):
            raise ValueRejected(f"does not match the pattern {pattern}")


class LongTextKind(TextKind):
    default_max_length = 100_000


class EmailKind(TextKind):
    form = EMAIL_RE
    form_name = "e-mail address"


class PhoneKind(TextKind):
    form = PHONE_RE
    form_name = "phone number"


class UrlKind(TextKind):
    form = URL_RE
    form_name = "URL (http or https)"
    default_max_length = 2000


class EnumKind(FieldKind):
    column = "value_text"
    ops = EQUALITY_OPS

    def parse(self, raw: Any, spec: FieldSpec) -> str:
        if not isinstance(raw, str):
            raise ValueRejected("must be one of the field's option values")
        if raw not in spec.options:
            allowed = ", ".join(sorted(spec.options)) or "none defined"
            raise ValueRejected(f"{raw!r} is not an option (allowed: {allowed})")
        return raw


class NumberKind(FieldKind):
    column = "value_number"
    ops = ORDERED_OPS

    def check_constraints(self, value: Any, spec: FieldSpec) -> None:
        low, high = spec.validation.get("min"), spec.validation.get("max")
        if low is not None and value < Decimal(str(low)):
            raise ValueRejected(f"must be at least {low}")
        if high is not None and value > Decimal(str(high)):
            raise ValueRejected(f"must be at most {high}")


class IntegerKind(NumberKind):
    def parse(self, raw: Any, spec: FieldSpec) -> int:
        if isinstance(raw, bool) or not isinstance(raw, int):
            if isinstance(raw, float) and raw.is_integer():
                return int(raw)
            raise ValueRejected("must be an integer")
        if abs(raw) > 10**15:
            raise ValueRejected("is out of range")
        return raw


DECIMAL_LIMIT = Decimal(10) ** 15


class DecimalKind(NumberKind):
    places: int | None = None

    def parse(self, raw: Any, spec: FieldSpec) -> Decimal:
        if isinstance(raw, bool) or not isinstance(raw, (int, float, str)):
            raise ValueRejected("must be a number")
        try:
            value = Decimal(raw if isinstance(raw, str) else str(raw))
        except InvalidOperation as exc:
            raise ValueRejected("must be a number") from exc
        if not value.is_finite() or abs(value) >= DECIMAL_LIMIT:
            raise ValueRejected("must be a finite number below 10^15")
        if self.places is not None:
            exponent = value.as_tuple().exponent
            if isinstance(exponent, int) and -exponent > self.places:
                raise ValueRejected(f"takes at most {self.places} decimal places")
        return value

    def to_json(self, value: Any) -> Any:
        number = Decimal(value)
        return int(number) if number == number.to_integral_value() else float(number)


class MoneyKind(DecimalKind):
    places = 2


class BooleanKind(FieldKind):
    column = "value_bool"
    ops = BOOL_OPS

    def parse(self, raw: Any, spec: FieldSpec) -> bool:
        if not isinstance(raw, bool):
            raise ValueRejected("must be true or false")
        return raw


class DateKind(FieldKind):
    column = "value_date"
    ops = ORDERED_OPS

    def parse(self, raw: Any, spec: FieldSpec) -> date:
        if not isinstance(raw, str):
            raise ValueRejected("must be a date (YYYY-MM-DD)")
        try:
            return date.fromisoformat(raw)
        except ValueError as exc:
            raise ValueRejected("must be a date (YYYY-MM-DD)") from exc

    def to_json(self, value: Any) -> Any:
        return value.isoformat()


class DateTimeKind(FieldKind):
    column = "value_datetime"
    ops = ORDERED_OPS

    def parse(self, raw: Any, spec: FieldSpec) -> datetime:
        if not isinstance(raw, str):
            raise ValueRejected("must be an ISO 8601 date-time")
        try:
            value = datetime.fromisoformat(raw)
        except ValueError as exc:
            raise ValueRejected("must be an ISO 8601 date-time") from exc
        return value if value.tzinfo else value.replace(tzinfo=UTC)

    def to_json(self, value: Any) -> Any:
        return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


class IdKind(FieldKind):
    """A reference to another record by id (an element, a user)."""

    column = "value_ref"
    ops = EQUALITY_OPS
    sortable = False

    def parse(self, raw: Any, spec: FieldSpec) -> uuid.UUID:
        try:
            return uuid.UUID(str(raw)) if isinstance(raw, str) else _reject_id()
        except ValueError as exc:
            raise ValueRejected("must be an id (UUID)") from exc

    def to_json(self, value: Any) -> Any:
        return str(value)


class FileKind(IdKind):
    """An uploaded file by its id (app/files). Size and MIME limits are checked against the stored file when an element
    is written; the value can only be tested for presence (`is_null`), never sorted on."""

    ops = frozenset({"is_null"})


def _reject_id() -> uuid.UUID:
    raise ValueRejected("must be an id (UUID)")


FIELD_KINDS: dict[str, FieldKind] = {
    "string": TextKind(),
    "text": LongTextKind(),
    "email": EmailKind(),
    "phone": PhoneKind(),
    "url": UrlKind(),
    "enum": EnumKind(),
    "integer": IntegerKind(),
    "decimal": DecimalKind(),
    "money": MoneyKind(),
    "boolean": BooleanKind(),
    "date": DateKind(),
    "datetime": DateTimeKind(),
    "user": IdKind(),
    "reference": IdKind(),
    "file": FileKind(),
}
FIELD_TYPES = tuple(FIELD_KINDS)


def kind_of(field_type: str) -> FieldKind:
    return FIELD_KINDS[field_type]


def parse_value(raw: Any, spec: FieldSpec) -> Any:
    """Parse and check one raw (non-null) value against its field."""
    kind = FIELD_KINDS[spec.type]
    value = kind.parse(raw, spec)
    kind.check_constraints(value, spec)
    return value


# Element system fields: a custom field may not take one of these codes.
RESERVED_CODES = frozenset(
    {
        "id",
        "entity_type",
        "title",
        "pipeline_id",
        "stage_id",
        "stage_code",
        "assigned_to",
        "amount",
        "currency",
        "source",
        "begin_date",
        "close_date",
        "score",
        "values",
        "version",
        "created_by",
        "updated_by",
        "created_at",
        "updated_at",
        "moved_at",
        "deleted_at",
    }
)
