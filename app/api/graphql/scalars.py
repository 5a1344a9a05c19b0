"""Scalars of our own, shared by the generic schema (file sizes) and the typed ones (integer fields)."""

from __future__ import annotations

import typing
from typing import Any

import strawberry


def _big_int(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"BigInt cannot represent {value!r}")
    return value


BigInt = typing.NewType("BigInt", int)
# Registered through the schema's scalar_map (StrawberryConfig), as Strawberry recommends.
BIG_INT = strawberry.scalar(
    name="BigInt",
    description="A whole number beyond GraphQL's 32-bit Int (up to ±10^15), as a JSON number",
    serialize=_big_int,
    parse_value=_big_int,
)
