"""Password hashes (argon2id). Verifying costs tens of milliseconds on purpose: it runs in a thread."""

import asyncio
from functools import cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

_hasher = PasswordHasher()


@cache
def _dummy_hash() -> str:
    """Verified against when the account is unknown, so a wrong email costs what a wrong password does. Made on first
    use: hashing costs ~0.7 s of CPU, which every process start (a restarted worker or API) would otherwise pay."""
    return _hasher.hash("stageflow: no such account")


async def hash_password(password: str) -> str:
    return await asyncio.to_thread(_hasher.hash, password)


async def verify_password(password_hash: str | None, password: str) -> bool:
    def verify() -> bool:
        try:
            return _hasher.verify(password_hash or _dummy_hash(), password) and password_hash is not None
        except (VerificationError, InvalidHashError):
            return False

    return await asyncio.to_thread(verify)
