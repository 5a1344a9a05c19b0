"""Refresh tokens: rotation, reuse detection (the family is revoked), logout, and what ends a login."""

import asyncio
import hashlib
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select, update

from app.auth.models import RefreshToken
from app.db import unit_of_work
from tests.auth.conftest import add_person, anonymous_client, log_in
from tests.conftest import Tenant


async def refresh(app: FastAPI, refresh_token: str) -> httpx.Response:
    async with anonymous_client(app) as http:
        return await http.post("/auth/refresh", json={"refresh_token": refresh_token})


async def can_use(app: FastAPI, access_token: str) -> bool:
    async with anonymous_client(app, token=access_token) as http:
        return (await http.get("/me")).status_code == 200


async def stored(app: FastAPI, refresh_token: str) -> RefreshToken | None:
    async with unit_of_work(app.state.sessionmaker) as session:
        return await session.scalar(
            select(RefreshToken).where(RefreshToken.token_hash == hashlib.sha256(refresh_token.encode()).hexdigest())
        )


@pytest.fixture
async def pair(app: FastAPI, tenant: Tenant, client: httpx.AsyncClient) -> dict[str, Any]:
    return await log_in(app, await add_person(app, tenant, client))


class TestRotation:
    async def test_a_refresh_rotates_the_pair(self, app: FastAPI, pair: dict[str, Any]) -> None:
        response = await refresh(app, pair["refresh_token"])
        assert response.status_code == 200, response.text
        assert response.headers["cache-control"] == "no-store"
        rotated = response.json()
        assert rotated["refresh_token"] != pair["refresh_token"]
        assert rotated["access_token"] != pair["access_token"]
        assert rotated["token_type"] == "bearer"
        assert await can_use(app, rotated["access_token"])
        old, new = await stored(app, pair["refresh_token"]), await stored(app, rotated["refresh_token"])
        assert old is not None
        assert new is not None
        assert old.used_at is not None
        assert old.replaced_by == new.id
        assert old.family_id == new.family_id
        assert new.used_at is None
        assert new.revoked_at is None
        # A chain of rotations goes on.
        again = await refresh(app, rotated["refresh_token"])
        assert again.status_code == 200, again.text

    async def test_only_a_hash_is_stored(self, app: FastAPI, pair: dict[str, Any]) -> None:
        row = await stored(app, pair["refresh_token"])
        assert row is not None
        assert pair["refresh_token"] not in (row.token_hash, str(row.id))

    async def test_reusing_a_rotated_token_revokes_the_whole_family(
        self, app: FastAPI, tenant: Tenant, client: httpx.AsyncClient
    ) -> None:
        person = await add_person(app, tenant, client)
        first = await log_in(app, person)
        other_login = await log_in(app, person)  # another device: a family of its own
        second = (await refresh(app, first["refresh_token"])).json()
        third = (await refresh(app, second["refresh_token"])).json()
        replayed = await refresh(app, first["refresh_token"])  # a thief replays the first token
        assert replayed.status_code == 401
        assert replayed.headers["content-type"] == "application/problem+json"
        assert "already used" in replayed.json()["detail"]
        # Every token of the family is dead now, the newest included; the other login is not touched.
        for token in (second["refresh_token"], third["refresh_token"]):
            assert (await refresh(app, token)).status_code == 401
        family = await stored(app, third["refresh_token"])
        assert family is not None
        assert family.revoked_at is not None
        assert (await refresh(app, other_login["refresh_token"])).status_code == 200

    async def test_two_refreshes_racing_with_one_token_leave_one_winner_and_end_the_login(
        self, app: FastAPI, pair: dict[str, Any]
    ) -> None:
        answers = await asyncio.gather(*(refresh(app, pair["refresh_token"]) for _ in range(2)))
        assert sorted(a.status_code for a in answers) == [200, 401]
        winner = next(a for a in answers if a.status_code == 200).json()
        assert (await refresh(app, winner["refresh_token"])).status_code == 401

    async def test_an_expired_refresh_token_is_401(self, app: FastAPI, pair: dict[str, Any]) -> None:
        row = await stored(app, pair["refresh_token"])
        assert row is not None
        async with unit_of_work(app.state.sessionmaker) as session:
            await session.execute(
                update(RefreshToken)
                .where(RefreshToken.id == row.id)
                .values(expires_at=datetime.now(UTC) - timedelta(seconds=1))
            )
        assert (await refresh(app, pair["refresh_token"])).status_code == 401

    @pytest.mark.parametrize("token", ["", "x" * 100_000])
    async def test_bad_bodies_are_422(self, app: FastAPI, token: str) -> None:
        for path in ("/auth/refresh", "/auth/logout"):
            async with anonymous_client(app) as http:
                response = await http.post(path, json={"refresh_token": token})
            assert response.status_code == 422
            assert response.headers["content-type"] == "application/problem+json"

    async def test_an_unknown_or_access_token_is_401(self, app: FastAPI, pair: dict[str, Any]) -> None:
        for token in ("made-up-token", pair["access_token"][:200]):
            response = await refresh(app, token)
            assert response.status_code == 401
            assert response.headers["content-type"] == "application/problem+json"


class TestLogout:
    async def test_logout_revokes_the_family(self, app: FastAPI, pair: dict[str, Any]) -> None:
        rotated = (await refresh(app, pair["refresh_token"])).json()
        async with anonymous_client(app) as http:
            # The older (used) token of the same login logs it out too.
            response = await http.post("/auth/logout", json={"refresh_token": pair["refresh_token"]})
        assert response.status_code == 204
        assert (await refresh(app, rotated["refresh_token"])).status_code == 401

    async def test_logout_of_an_unknown_token_changes_nothing(self, app: FastAPI, pair: dict[str, Any]) -> None:
        async with anonymous_client(app) as http:
            response = await http.post("/auth/logout", json={"refresh_token": "not-a-token-we-issued"})
        assert response.status_code == 204
        assert (await refresh(app, pair["refresh_token"])).status_code == 200

    async def test_a_new_password_ends_every_login(
        self, app: FastAPI, tenant: Tenant, client: httpx.AsyncClient
    ) -> None:
        person = await add_person(app, tenant, client)
        logins = [await log_in(app, person) for _ in range(2)]
        changed = await client.patch(f"/users/{person.id}", json={"password": "a brand new password"})
        assert changed.status_code == 200, changed.text
        for login in logins:
            assert (await refresh(app, login["refresh_token"])).status_code == 401
