"""Tokens of an external OpenID Connect provider (OIDC_ISSUER): verified against its JWKS, mapped to a user by e-mail.

The provider's signing keys are fetched with httpx (OIDC_TIMEOUT_SECONDS) and kept for OIDC_JWKS_TTL_SECONDS. A token
signed with a key id the cached set lacks (the provider rotated its keys) fetches the set again, at most once per
OIDC_JWKS_REFETCH_SECONDS, so tokens with made-up key ids cannot make us hammer the provider. Only RS256 and ES256 are
accepted, each with a key of its own kind: an `alg: HS256` token "signed" with the public key never verifies.

The workspace is the configured OIDC_WORKSPACE_ID, not a claim: a provider serves one workspace, and no claim a user
might edit at the provider chooses where they land. The user is the workspace's active user whose e-mail equals the
token's `email` claim, ignoring case; a token whose `email_verified` is false is refused.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from typing import Any

import httpx
import jwt

from app.auth.tokens import AccessClaims
from app.errors import Unauthorized
from app.kit.invalidation import TimedCache
from app.settings import Settings

logger = logging.getLogger("stageflow.auth.oidc")

ALGORITHMS = ("RS256", "ES256")
LEEWAY_SECONDS = 30  # clock skew between the provider and us
USER_SQL = "SELECT id FROM users WHERE workspace_id = $1 AND lower(email) = $2 AND active ORDER BY created_at LIMIT 1"

# (workspace, e-mail) -> user id, so a request with a provider's token costs no query; entries live MAX_STALENESS.
_users: TimedCache[str, uuid.UUID] = TimedCache("oidc_user", 10_000, str)


class JwksCache:
    def __init__(self, url: str, *, ttl: float, refetch_after: float, timeout: float) -> None:
        self.url = url
        self.ttl = ttl
        self.refetch_after = refetch_after
        self.timeout = timeout
        self.fetches = 0
        self._keys: dict[str | None, jwt.PyJWK] = {}
        self._fetched_at = float("-inf")  # the last successful fetch
        self._tried_at = float("-inf")  # the last attempt, successful or not
        self._lock = asyncio.Lock()

    async def key(self, kid: str | None) -> jwt.PyJWK | None:
        if time.monotonic() - self._fetched_at > self.ttl or self._missing(kid):
            async with self._lock:  # one fetch for every request waiting on it
                now = time.monotonic()
                stale = now - self._fetched_at > self.ttl
                if (stale or self._missing(kid)) and now - self._tried_at >= self.refetch_after:
                    await self._fetch()
        return self._find(kid)

    def _missing(self, kid: str | None) -> bool:
        return self._find(kid) is None

    def _find(self, kid: str | None) -> jwt.PyJWK | None:
        if kid is None and len(self._keys) == 1:
            return next(iter(self._keys.values()))
        return self._keys.get(kid)

    async def _fetch(self) -> None:
        self._tried_at = time.monotonic()
        self.fetches += 1
        try:
            async with httpx.AsyncClient(timeout=self.timeout, follow_redirects=False) as client:
                response = await client.get(self.url, headers={"Accept": "application/json"})
                response.raise_for_status()
                document = response.json()
        except (httpx.HTTPError, ValueError) as exc:
            # Keep the keys we had: a provider that is briefly down does not log everyone out.
            logger.warning("could not fetch the OpenID Connect JWKS from %s: %s", self.url, exc)
            return
        self._keys = _signing_keys(document)
        self._fetched_at = time.monotonic()


def _signing_keys(document: Any) -> dict[str | None, jwt.PyJWK]:
    keys: dict[str | None, jwt.PyJWK] = {}
    entries = document.get("keys") if isinstance(document, dict) else None
    for entry in entries if isinstance(entries, list) else []:
        if not isinstance(entry, dict) or entry.get("use", "sig") != "sig" or entry.get("kty") not in ("RSA", "EC"):
            continue  # encryption keys, and symmetric keys that would let anyone holding them sign
        try:
            key = jwt.PyJWK(entry)
        except (jwt.PyJWKError, jwt.InvalidKeyError, ValueError, TypeError):
            continue
        if key.algorithm_name in ALGORITHMS:
            keys[entry.get("kid")] = key
    return keys


class OidcVerifier:
    def __init__(self, issuer: str, audience: str, workspace_id: uuid.UUID, jwks: JwksCache) -> None:
        self.issuer = issuer
        self.audience = audience
        self.workspace_id = workspace_id
        self.jwks = jwks

    @classmethod
    def from_settings(cls, settings: Settings) -> OidcVerifier | None:
        issuer, url, audience = settings.OIDC_ISSUER, settings.OIDC_JWKS_URL, settings.OIDC_AUDIENCE
        workspace_id = settings.OIDC_WORKSPACE_ID
        if not (issuer and url and audience and workspace_id):  # the settings validated they come together
            return None
        jwks = JwksCache(
            url,
            ttl=settings.OIDC_JWKS_TTL_SECONDS,
            refetch_after=settings.OIDC_JWKS_REFETCH_SECONDS,
            timeout=settings.OIDC_TIMEOUT_SECONDS,
        )
        return cls(issuer, audience, workspace_id, jwks)

    async def email(self, token: str) -> tuple[str, int]:
        """The verified token's e-mail (lower case) and expiry, or Unauthorized."""
        try:
            header = jwt.get_unverified_header(token)
        except jwt.InvalidTokenError as exc:
            raise Unauthorized("The identity token is not valid") from exc
        algorithm, kid = header.get("alg"), header.get("kid")
        if algorithm not in ALGORITHMS or not (kid is None or isinstance(kid, str)):
            raise Unauthorized("The identity token is not valid")
        key = await self.jwks.key(kid)
        if key is None or key.algorithm_name != algorithm:
            raise Unauthorized("The identity token is signed with a key the provider does not publish")
        try:
            claims = jwt.decode(
                token,
                key.key,
                algorithms=[algorithm],
                audience=self.audience,
                issuer=self.issuer,
                leeway=LEEWAY_SECONDS,
                options={"require": ["exp", "iss", "aud"]},
            )
        except jwt.ExpiredSignatureError as exc:
            raise Unauthorized("The identity token has expired") from exc
        except jwt.InvalidTokenError as exc:
            raise Unauthorized("The identity token is not valid") from exc
        email = claims.get("email")
        if not isinstance(email, str) or not email or claims.get("email_verified") is False:
            raise Unauthorized("The identity token carries no verified e-mail")
        return email.strip().lower(), int(claims["exp"])

    async def claims(self, connection: Any, token: str) -> AccessClaims:
        """The user the token stands for: the active user of the workspace with its e-mail."""
        email, expires_at = await self.email(token)
        cache_key = f"{self.workspace_id}:{email}"
        user_id = _users.get(cache_key)
        if user_id is None:
            loaded_at = time.monotonic()
            user_id = await connection.fetchval(USER_SQL, self.workspace_id, email)
            if user_id is None:
                raise Unauthorized("No active user of this workspace has the identity token's e-mail")
            _users.put(cache_key, user_id, loaded_at=loaded_at)
        return AccessClaims(user_id, self.workspace_id, expires_at)
