"""A bound on how deeply user JSON nests, checked on the raw text before anything parses or walks it.

Python's `json`, pydantic's serializer, orjson and our own walkers all recurse: without a bound, `[[[[…]]]]` from a
client ends as a RecursionError (a 500) somewhere. The scan is linear, runs in C (re, numpy) and skips string
contents, escapes included.
"""

from __future__ import annotations

import re

import numpy as np

from app.errors import FieldError, Invalid

MAX_JSON_DEPTH = 64
_ESCAPE = re.compile(rb"\\.", re.DOTALL)


def json_depth(raw: str | bytes) -> int:
    """How deeply a JSON text nests, from its text alone: escapes dropped, then brackets inside strings ignored."""
    data = raw.encode() if isinstance(raw, str) else raw
    codes = np.frombuffer(_ESCAPE.sub(b"", data), dtype=np.uint8)
    if codes.size == 0:
        return 0
    in_string = (np.cumsum(codes == ord('"')) & 1).astype(bool)  # odd count of quotes so far: inside a string
    opens = ((codes == ord("[")) | (codes == ord("{"))) & ~in_string
    closes = ((codes == ord("]")) | (codes == ord("}"))) & ~in_string
    return max(0, int(np.cumsum(opens.astype(np.int64) - closes.astype(np.int64)).max()))


def too_deep(raw: str | bytes, limit: int = MAX_JSON_DEPTH) -> bool:
    data = raw.encode() if isinstance(raw, str) else raw
    if data.count(b"[") + data.count(b"{") <= limit:
        return False  # it cannot nest deeper than it opens
    return json_depth(data) > limit


def depth_error(location: str, limit: int = MAX_JSON_DEPTH) -> FieldError:
    return FieldError(location, f"nests deeper than {limit} levels")


def check_depth(raw: str | bytes, *, location: str, limit: int = MAX_JSON_DEPTH) -> None:
    """Refuse (422, naming `location`) a JSON text that nests deeper than the limit, before it is parsed."""
    if too_deep(raw, limit):
        raise Invalid(f"The {location} nests too deeply", errors=[depth_error(location, limit)])
