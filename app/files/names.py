"""What an upload says about itself (its name and type) made safe to keep and to send back.

The name is only ever shown and sent back in `Content-Disposition`; the storage key is our own id. Still: no path, no
control or format characters (a right-to-left override can make `cod.exe` read `exe.doc`), bounded length.
"""

import re
import unicodedata
from urllib.parse import quote

MAX_NAME_LENGTH = 255
MAX_EXTENSION_LENGTH = 16
DEFAULT_NAME = "file"
DEFAULT_MIME_TYPE = "application/octet-stream"
MIME_TYPE = re.compile(r"^[a-z0-9][a-z0-9!#$&^_.+-]{0,62}/[a-z0-9][a-z0-9!#$&^_.+-]{0,126}$")


def clean_name(raw: str | None) -> str:
    """The last path segment, NFC, without control and format characters or surrounding spaces and dots, at most
    MAX_NAME_LENGTH characters (the extension kept when it is cut); `file` when nothing is left."""
    name = unicodedata.normalize("NFC", raw or "")
    name = re.split(r"[/\\]", name)[-1]
    spaced = (" " if char in "\t\n\r\v\f" or unicodedata.category(char) == "Zs" else char for char in name)
    name = "".join(char for char in spaced if not unicodedata.category(char).startswith(("C", "Z")) or char == " ")
    name = " ".join(name.split()).strip(" .")
    if len(name) > MAX_NAME_LENGTH:
        stem, dot, extension = name.rpartition(".")
        if dot and stem and 0 < len(extension) <= MAX_EXTENSION_LENGTH:
            name = stem[: MAX_NAME_LENGTH - len(extension) - 1].rstrip(" .") + "." + extension
        else:
            name = name[:MAX_NAME_LENGTH].rstrip(" .")
    return name or DEFAULT_NAME


def clean_mime_type(raw: str | None) -> str:
    """`type/subtype` in lower case, its parameters dropped; anything else is `application/octet-stream`."""
    media = (raw or "").split(";", 1)[0].strip().lower()
    return media if MIME_TYPE.match(media) else DEFAULT_MIME_TYPE


def mime_allowed(mime_type: str, allowed: list[str] | None) -> bool:
    """Whether a file's type is one of a field's: exact, a family (`image/*`) or anything (`*/*`, or no list)."""
    if not allowed:
        return True
    family = mime_type.split("/", 1)[0] + "/*"
    return any(pattern in ("*/*", family, mime_type) for pattern in allowed)


def content_disposition(name: str) -> str:
    """`attachment` with an ASCII fallback and the exact name in RFC 5987 form (RFC 6266)."""
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    ascii_name = re.sub(r'["\\]', "_", ascii_name).strip() or DEFAULT_NAME
    return f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(name, safe='')}"
