"""What every facade method shares: the call, its answer, the method registry and Bitrix24's value formats."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time
from decimal import Decimal, InvalidOperation
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from app.auth.actor import Actor
from app.bitrix.errors import BitrixError, invalid
from app.bitrix.transport import Params, as_map, param

PAGE_SIZE = 50  # Bitrix24's page, which clients (fast-bitrix24's get_all) count on


@dataclass
class Call:
    session: AsyncSession
    actor: Actor
    params: Params
    # The facade's own URL (`http://host/rest/`), for what is sent to event handlers.
    endpoint: str = ""

    def get(self, *names: str) -> Any:
        return param(self.params, *names)

    def map(self, *names: str) -> dict[str, Any]:
        """A map parameter (`fields`, `filter`, `order`); an empty one when absent."""
        value = self.get(*names)
        if value is None or value == "":
            return {}
        mapped = as_map(value)
        if mapped is None:
            raise invalid(f"{names[0]} must be an object")
        return mapped

    def integer(self, *names: str, required: bool = True) -> int | None:
        value = self.get(*names)
        if value is None or value == "":
            if required:
                raise BitrixError("ERROR_ARGUMENT", f"Required parameter {names[0]!r} is missing")
            return None
        return to_int(value, names[0])

    @property
    def workspace_id(self) -> uuid.UUID:
        return self.actor.workspace_id


@dataclass
class Answer:
    result: Any
    total: int | None = None
    next: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)


Handler = Callable[[Call], Awaitable[Answer]]
METHODS: dict[str, Handler] = {}


def method(*names: str) -> Callable[[Handler], Handler]:
    """Register a handler under one or more method names (matched in lower case)."""

    def register(handler: Handler) -> Handler:
        for name in names:
            METHODS[name.lower()] = handler
        return handler

    return register


# --- values ---------------------------------------------------------------------------------------------------


def to_int(value: Any, name: str) -> int:
    """An integer from a number or a numeric string."""
    if isinstance(value, bool):
        raise invalid(f"{name} must be an integer")
    if isinstance(value, int):
        number = value
    elif isinstance(value, float) and value.is_integer():
        number = int(value)
    elif isinstance(value, str) and value.strip().lstrip("-").isdigit() and len(value) < 19:
        number = int(value.strip())
    else:
        raise invalid(f"{name} must be an integer, not {str(value)[:50]!r}")
    if abs(number) >= 2**63:
        raise invalid(f"{name} is out of range")
    return number


def to_decimal(value: Any, name: str) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, int | float | str | Decimal):
        raise invalid(f"{name} must be a number")
    text = str(value).strip().replace(",", ".")
    try:
        number = Decimal(text)
    except InvalidOperation as exc:
        raise invalid(f"{name} must be a number, not {text[:50]!r}") from exc
    if not number.is_finite():
        raise invalid(f"{name} must be a finite number")
    return number


TRUE = frozenset({"y", "yes", "true", "1", "on"})
FALSE = frozenset({"n", "no", "false", "0", "off", ""})


def to_flag(value: Any, name: str) -> bool:
    """Bitrix24's `Y`/`N` (and what clients send for them: true/false, 1/0, "True"/"False")."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in TRUE | FALSE:
        return value.strip().lower() in TRUE
    raise invalid(f"{name} must be Y or N, not {str(value)[:50]!r}")


def yn(value: bool) -> str:
    return "Y" if value else "N"


def iso(value: datetime | date | None) -> str | None:
    """ISO 8601 with the offset, as Bitrix24 writes times (dates as their midnight in UTC)."""
    if value is None:
        return None
    if not isinstance(value, datetime):
        value = datetime.combine(value, time(0), tzinfo=UTC)
    elif value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.isoformat(timespec="seconds")


def to_date(value: Any, name: str) -> date:
    """A date from `YYYY-MM-DD`, an ISO date-time (its date where it was written), or `DD.MM.YYYY`."""
    if isinstance(value, str):
        text = value.strip()
        try:
            if len(text) == 10 and text[2] == "." and text[5] == ".":
                return date(int(text[6:]), int(text[3:5]), int(text[:2]))
            if len(text) > 10:
                return datetime.fromisoformat(text).date()
            return date.fromisoformat(text)
        except ValueError:
            pass
    raise invalid(f"{name} must be a date (YYYY-MM-DD), not {str(value)[:50]!r}")


def to_datetime(value: Any, name: str) -> datetime:
    if isinstance(value, str):
        text = value.strip()
        try:
            parsed = datetime.fromisoformat(text) if len(text) > 10 else datetime.combine(to_date(text, name), time(0))
        except (ValueError, BitrixError):
            parsed = None
        if parsed is not None:
            return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    raise invalid(f"{name} must be a date and time (ISO 8601), not {str(value)[:50]!r}")


def direction(value: Any, name: str) -> bool:
    """An order direction: True for descending."""
    if isinstance(value, str) and value.strip().upper() in ("ASC", "DESC"):
        return value.strip().upper() == "DESC"
    raise invalid(f"order direction of {name!r} must be ASC or DESC, not {str(value)[:50]!r}")


def start_of(call: Call) -> int:
    start = call.integer("start", required=False) or 0
    if start < 0:  # Bitrix24's -1: no count; a page from the start all the same
        return 0
    return start


def page(items: list[Any], total: int, start: int, more: bool) -> tuple[list[Any], int, int | None]:
    return items, total, (start + PAGE_SIZE if more else None)


def window(rows: list[Any], start: int) -> tuple[list[Any], int, int | None]:
    """A page of PAGE_SIZE from a list held in full (types, pipelines, fields: a few rows)."""
    chunk = rows[start : start + PAGE_SIZE]
    more = start + PAGE_SIZE < len(rows)
    return chunk, len(rows), (start + PAGE_SIZE if more else None)
