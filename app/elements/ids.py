"""Time-ordered element ids (UUID version 7, RFC 9562).

Random (v4) ids land all over the primary-key btrees of `elements` and `element_values` (whose key starts with the
element id): at a million elements and twenty values each, every insert touches a different cold page. Ids that
grow with time append at the right edge of those indexes instead.
"""

import os
import time
import uuid


def new_id() -> uuid.UUID:
    milliseconds = time.time_ns() // 1_000_000
    value = (milliseconds & 0xFFFF_FFFF_FFFF) << 80 | int.from_bytes(os.urandom(10)) & ((1 << 80) - 1)
    value = (value & ~(0xF << 76)) | (0x7 << 76)  # version 7
    value = (value & ~(0x3 << 62)) | (0x2 << 62)  # RFC 4122 variant
    return uuid.UUID(int=value)
