"""Access tokens of people who logged in: short-lived JWTs (HS256) that the API verifies without a query.

Claims: `sub` (user id), `ws` (workspace id), `iat`, `exp`, `jti`, `typ` = "access" and `iss` = "stageflow". Whether the
person may still act is the access snapshot's answer (`snapshot.for_user`: None for an inactive or deleted user), so
deactivating someone stops their tokens at once, while a valid token costs no query of its own.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from typing import Any

import jwt

from app.errors import Unauthorized

ISSUER = "stageflow"
ALGORITHM = "HS256"
ACCESS = "access"
REQUIRED_CLAIMS = ["sub", "ws", "exp", "iat", "jti", "typ", "iss"]


@dataclass(frozen=True)
class AccessClaims:
    user_id: uuid.UUID
    workspace_id: uuid.UUID
    expires_at: int


@dataclass(frozen=True)
class IssuedAccessToken:
    token: str
    expires_in: int


class AccessTokens:
    def __init__(self, secret: str, ttl_seconds: int) -> None:
        self._secret = secret
        self.ttl_seconds = ttl_seconds

    def issue(self, user_id: uuid.UUID, workspace_id: uuid.UUID) -> IssuedAccessToken:
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": ISSUER,
            "sub": str(user_id),
            "ws": str(workspace_id),
            "iat": now,
            "exp": now + self.ttl_seconds,
            "jti": uuid.uuid4().hex,
            "typ": ACCESS,
        }
        return IssuedAccessToken(jwt.encode(claims, self._secret, algorithm=ALGORITHM), self.ttl_seconds)

    def verify(self, token: str) -> AccessClaims:
        """The token's person and workspace, or Unauthorized: forged, tampered, expired, another kind of token."""
        try:
            # Only HS256 is accepted: `alg: none` and public-key algorithms never reach the signature check.
            claims = jwt.decode(
                token,
                self._secret,
                algorithms=[ALGORITHM],
                issuer=ISSUER,
                options={"require": REQUIRED_CLAIMS},
            )
        except jwt.ExpiredSignatureError as exc:
            raise Unauthorized("The access token has expired: refresh it") from exc
        except jwt.InvalidTokenError as exc:
            raise Unauthorized("The access token is not valid") from exc
        if claims.get("typ") != ACCESS:
            raise Unauthorized("The access token is not valid")
        try:
            return AccessClaims(uuid.UUID(str(claims["sub"])), uuid.UUID(str(claims["ws"])), int(claims["exp"]))
        except (ValueError, TypeError) as exc:
            raise Unauthorized("The access token is not valid") from exc


def unverified_issuer(token: str) -> str | None:
    """The `iss` a JWT claims, read without trusting it: it only chooses which verification applies."""
    try:
        claims = jwt.decode(token, options={"verify_signature": False})
    except jwt.InvalidTokenError:
        return None
    issuer = claims.get("iss") if isinstance(claims, dict) else None
    return issuer if isinstance(issuer, str) else None
