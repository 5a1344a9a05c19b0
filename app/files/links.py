"""Short-lived signed download URLs: `…/files/{id}/content?expires=<unix time>&signature=<HMAC>`.

The signature is the credential: HMAC-SHA256 over the file id and the expiry, keyed by a key derived from the app's
secret (JWT_SECRET; in development and test the one derived from the database URL), so no API key travels in the URL
and a link cannot be stretched or moved to another file.
"""

import base64
import hashlib
import hmac
import uuid
from dataclasses import dataclass
from urllib.parse import urlencode

from app.settings import Settings

KEY_PURPOSE = b"stageflow files: signed download URLs v1"
SIGNATURE_LENGTH = 43  # unpadded base64url of 32 bytes


def signing_key(settings: Settings) -> bytes:
    """A key of its own for download links, derived from the app's secret (a token signature is never a link's)."""
    return hmac.new(settings.jwt_secret.encode(), KEY_PURPOSE, hashlib.sha256).digest()


def signature(key: bytes, file_id: uuid.UUID, expires: int) -> str:
    digest = hmac.new(key, f"{file_id}:{expires}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def valid(key: bytes, file_id: uuid.UUID, expires: int, given: str, *, now: float) -> bool:
    """The signature is ours for this file and expiry, and the expiry has not passed (compared in constant time)."""
    # As bytes: a given signature may hold any character (compare_digest refuses non-ASCII str).
    expected = signature(key, file_id, expires).encode()
    return hmac.compare_digest(expected, given.encode("utf-8", "replace")) and now < expires


@dataclass(frozen=True)
class SignedDownload:
    file_id: uuid.UUID
    expires: int
    signature: str

    def url(self, content_url: str) -> str:
        """The link, given the absolute URL of the file's content route."""
        return f"{content_url}?{urlencode({'expires': self.expires, 'signature': self.signature})}"
