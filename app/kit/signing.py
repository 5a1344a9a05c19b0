"""Standard Webhooks signatures: `v1,<base64 HMAC-SHA256 of "id.timestamp.body">`, keyed by the secret's bytes."""

import base64
import hashlib
import hmac

SECRET_PREFIX = "whsec_"  # noqa: S105  (a prefix, not a secret)


def secret_bytes(secret: str) -> bytes:
    return base64.b64decode(secret.removeprefix(SECRET_PREFIX))


def check_secret(secret: str) -> None:
    """ValueError unless the secret decodes to a key (not base64, not ASCII, or empty: no signature would hold)."""
    if not secret_bytes(secret):
        raise ValueError("the signing secret is empty")


def sign(secret: str, message_id: str, timestamp: int, body: bytes) -> str:
    payload = f"{message_id}.{timestamp}.".encode() + body
    digest = hmac.new(secret_bytes(secret), payload, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def verify(secret: str, message_id: str, timestamp: int, body: bytes, header: str) -> bool:
    """True when any of the space-separated `v1,` signatures in the header matches."""
    expected = sign(secret, message_id, timestamp, body)
    return any(hmac.compare_digest(expected, candidate) for candidate in header.split())
