"""What a Bitrix24 REST client sends and gets back, without any knowledge of Stageflow.

- Parameters come as a JSON object, a form body or a query string in PHP's bracket notation
  (`filter[>id]=5&select[]=id&order[ID]=ASC`, the brackets `%5B`-encoded or not): `parse_query` builds the same
  nested maps PHP's `parse_str` does. Lists arrive as maps with integer keys; `as_list` reads either.
- Parameter names are matched without regard to case (`param`), as Bitrix24's older methods do.
- Answers follow PHP's `json_encode`: a map whose keys are exactly 0…n-1 in order is a JSON array (`php_json`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import parse_qsl

MAX_PAIRS = 10_000
MAX_DEPTH = 12
MAX_KEY_LENGTH = 500
Params = dict[str, Any]


class TransportError(ValueError):
    """Parameters that cannot be read (too many, too deep, not an object): the client's fault."""


def _key_path(key: str) -> list[str]:
    """`a[b][][c]` → ["a", "b", "", "c"]; a key whose brackets do not close is taken as it is (as PHP does)."""
    opening = key.find("[")
    if opening <= 0 or "]" not in key[opening:]:
        return [key]
    parts = [key[:opening]]
    rest = key[opening:]
    while rest.startswith("["):
        closing = rest.find("]")
        if closing < 0:
            break
        parts.append(rest[1:closing])
        rest = rest[closing + 1 :]
    return parts


def _next_index(container: dict[str, Any]) -> str:
    numbers = [int(k) for k in container if k.isdigit()]
    return str(max(numbers) + 1 if numbers else 0)


def build_params(pairs: Iterable[tuple[str, str]]) -> Params:
    """Nested maps from flat `key=value` pairs in bracket notation (later values win, as in PHP)."""
    params: Params = {}
    for count, (key, value) in enumerate(pairs, start=1):
        if count > MAX_PAIRS:
            raise TransportError(f"more than {MAX_PAIRS} parameters")
        if len(key) > MAX_KEY_LENGTH:
            raise TransportError(f"a parameter name is longer than {MAX_KEY_LENGTH} characters")
        path = _key_path(key)
        if len(path) > MAX_DEPTH:
            raise TransportError(f"a parameter nests deeper than {MAX_DEPTH} levels")
        container = params
        for index, part in enumerate(path):
            name = part if part != "" or index == 0 else _next_index(container)
            if index == len(path) - 1:
                container[name] = value
                break
            child = container.get(name)
            if not isinstance(child, dict):
                child = container[name] = {}
            container = child
    return params


def parse_query(query: str | bytes) -> Params:
    """A query string or form body (`application/x-www-form-urlencoded`)."""
    text = query.decode("utf-8", errors="strict") if isinstance(query, bytes) else query
    try:
        pairs = parse_qsl(text, keep_blank_values=True, max_num_fields=MAX_PAIRS, errors="strict")
    except ValueError as exc:  # max_num_fields exceeded
        raise TransportError(str(exc)) from exc
    return build_params(pairs)


def depth(value: Any, limit: int = MAX_DEPTH) -> int:
    """How deep a JSON value nests (stops counting past `limit`)."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    deepest = 0
    while stack:
        item, level = stack.pop()
        deepest = max(deepest, level)
        if deepest > limit:
            return deepest
        if isinstance(item, dict):
            stack.extend((v, level + 1) for v in item.values())
        elif isinstance(item, list):
            stack.extend((v, level + 1) for v in item)
    return deepest


def param(params: Mapping[str, Any], *names: str) -> Any:
    """The value of the first of `names` present, matched exactly, then without regard to case; None if absent."""
    for name in names:
        if name in params:
            return params[name]
    lowered = {key.lower(): key for key in params if isinstance(key, str)}
    for name in names:
        key = lowered.get(name.lower())
        if key is not None:
            return params[key]
    return None


def as_list(value: Any) -> list[Any] | None:
    """A list from a JSON list or a PHP array (a map with integer keys, in its order); None for anything else."""
    if isinstance(value, list):
        return value
    if isinstance(value, tuple):
        return list(value)
    if isinstance(value, dict):
        return list(value.values())
    return None


def as_map(value: Any) -> dict[str, Any] | None:
    """A map from a JSON object, or from a JSON list (keys 0…n-1, as PHP reads it); None for anything else."""
    if isinstance(value, dict):
        return {str(k): v for k, v in value.items()}
    if isinstance(value, list):
        return {str(i): v for i, v in enumerate(value)}
    return None


def php_json(value: dict[str, Any]) -> dict[str, Any] | list[Any]:
    """A map as PHP's json_encode writes an array: a list when its keys are exactly "0", "1", … in order."""
    if all(key == str(index) for index, key in enumerate(value)):
        return list(value.values())
    return value


# --- batch: `method?query` commands and their `$result[label][key]…` references ---------------------------------

REFERENCE = re.compile(r"\$(result|result_total|result_next|result_error)((?:\[[^\[\]]*\])+)")


def split_command(command: str) -> tuple[str, str]:
    method, _, query = command.partition("?")
    return method.strip(), query


def _lookup(source: Any, keys: list[str]) -> Any:
    current = source
    for key in keys:
        if isinstance(current, list) and key.isdigit() and int(key) < len(current):
            current = current[int(key)]
        elif isinstance(current, dict):
            if key in current:
                current = current[key]
            else:
                match = next((k for k in current if isinstance(k, str) and k.lower() == key.lower()), None)
                if match is None:
                    return None
                current = current[match]
        else:
            return None
    return current


def _scalar_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "Y" if value else "N"
    return str(value)


def resolve_references(value: Any, outputs: Mapping[str, Mapping[str, Any]]) -> Any:
    """`value` with every `$result[label][key]…` replaced by what the earlier command answered. A value that is one
    reference takes the answer as it is (a number stays a number, a list a list); inside text it is written in."""
    if isinstance(value, dict):
        return {k: resolve_references(v, outputs) for k, v in value.items()}
    if isinstance(value, list):
        return [resolve_references(v, outputs) for v in value]
    if not isinstance(value, str) or "$result" not in value:
        return value

    def target(match: re.Match[str]) -> Any:
        keys = re.findall(r"\[([^\[\]]*)\]", match.group(2))
        return _lookup(outputs.get(match.group(1), {}), keys)

    whole = REFERENCE.fullmatch(value)
    if whole:
        return target(whole)
    return REFERENCE.sub(lambda match: _scalar_text(target(match)), value)
