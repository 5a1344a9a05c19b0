"""Opaque keyset cursors: the sort values and id of the last row of a page, encoded for the URL."""

import base64
from typing import Any

import orjson

from app.errors import FieldError, Invalid


def encode_cursor(values: list[Any]) -> str:
    return base64.urlsafe_b64encode(orjson.dumps(values)).decode().rstrip("=")


def decode_cursor(cursor: str, expected_length: int) -> list[Any]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        values = orjson.loads(base64.urlsafe_b64decode(padded))
    except (ValueError, orjson.JSONDecodeError) as exc:
        raise Invalid("The cursor is not valid", errors=[FieldError("cursor", "not a cursor of this list")]) from exc
    if not isinstance(values, list) or len(values) != expected_length:
        raise Invalid("The cursor is not valid", errors=[FieldError("cursor", "does not match this sort order")])
    return values
