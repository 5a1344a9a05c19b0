"""Secrets shown once: response fields marked `SHOWN_ONCE` are never kept after the answer leaves (e.g. by the
Idempotency-Key store), and OpenAPI flags them with `x-shown-once` so clients know to save them."""

from typing import Any

import orjson
from pydantic import BaseModel

SHOWN_ONCE: dict[str, Any] = {"x-shown-once": True}


def shown_once_fields(model: Any) -> frozenset[str]:
    """The top-level fields of a response model that carry a secret shown once."""
    if not isinstance(model, type) or not issubclass(model, BaseModel):
        return frozenset()
    return frozenset(
        field.alias or name
        for name, field in model.model_fields.items()
        if isinstance(field.json_schema_extra, dict) and field.json_schema_extra.get("x-shown-once")
    )


def withhold(body: bytes, fields: frozenset[str]) -> tuple[bytes, list[str]]:
    """The JSON body with those fields nulled, and which of them held a value."""
    if not fields or not body:
        return body, []
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError:
        return body, []
    if not isinstance(document, dict):
        return body, []
    held = sorted(name for name in fields if document.get(name) is not None)
    if not held:
        return body, []
    return orjson.dumps({**document, **dict.fromkeys(held)}), held
