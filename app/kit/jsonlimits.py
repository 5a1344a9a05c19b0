"""A bound on how deeply user JSON nests, checked on the raw text before anything parses or walks it.

Python's `json`, pydantic's serializer, orjson and our own walkers all recurse: without a bound, `[[[[…]]]]` from a
client ends as a RecursionError (a 500) somewhere. The scan is linear and skips string contents (escapes included).
"""

from __future__ import annotations

import re

from app.errors import FieldError, Invalid

MAX_JSON_DEPTH = 64
_SPECIAL = re.compile(rb'[\\"\[\]{}]')
_BACKSLASH, _QUOTE = ord("\\"), ord('"')
_OPEN = frozenset(b"[{")


class DepthScanner:
    """Follows the nesting depth of a JSON text fed in chunks (a request body as it streams in)."""

    def __init__(self, limit: int = MAX_JSON_DEPTH) -> None:
        self.limit = limit
        self.depth = 0
        self.exceeded = False
        self._in_string = False
        self._skip_first = False  # an escape's backslash ended the previous chunk

    def feed(self, chunk: bytes) -> bool:
        """Scan one more chunk; False (and `exceeded`) once the text nests deeper than the limit."""
        if self.exceeded:
            return False
        skip_before = 1 if self._skip_first else 0
        self._skip_first = False
        for match in _SPECIAL.finditer(chunk):
            index = match.start()
            if index < skip_before:
                continue  # the character an escape stands for
            char = chunk[index]
            if self._in_string:
                if char == _BACKSLASH:
                    skip_before = index + 2
                    self._skip_first = index + 1 >= len(chunk)
                elif char == _QUOTE:
                    self._in_string = False
            elif char == _QUOTE:
                self._in_string = True
            elif char in _OPEN:
                self.depth += 1
                if self.depth > self.limit:
                    self.exceeded = True
                    return False
            else:
                self.depth -= 1  # `]` or `}` (a stray one only makes the text invalid JSON, which parsing reports)
        return True


def too_deep(raw: str | bytes, limit: int = MAX_JSON_DEPTH) -> bool:
    scanner = DepthScanner(limit)
    return not scanner.feed(raw.encode() if isinstance(raw, str) else raw)


def depth_error(location: str, limit: int = MAX_JSON_DEPTH) -> FieldError:
    return FieldError(location, f"nests deeper than {limit} levels")


def check_depth(raw: str | bytes, *, location: str, limit: int = MAX_JSON_DEPTH) -> None:
    """Refuse (422, naming `location`) a JSON text that nests deeper than the limit, before it is parsed."""
    if too_deep(raw, limit):
        raise Invalid(f"The {location} nests too deeply", errors=[depth_error(location, limit)])
