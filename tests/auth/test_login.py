"""Logging in (POST /auth/login), using the access token on REST (session and lean read paths), GET /me, and every
way a token can be wrong: expired, forged, tampered, of another workspace, of a user made inactive."""

import base64
import statistics
import time
import uuid
from typing import Any

import httpx
import jwt
import orjson
import pytest
from fastapi import FastAPI

from app.auth.service import authenticate_raw
from app.settings import Settings
from tests.auth.conftest import PASSWORD, Person, add_person, anonymous_client, log_in, new_address
from tests.conftest import Tenant, make_client, make_tenant
from tests.factories import create_element, create_type


def login_body(person: Person, **changes: Any) -> dict[str, Any]:
    return {"workspace_id": str(person.workspace_id), "email": person.email, "password": person.password, **changes}


def forge(settings: Settings, **claims: Any) -> str:
    """A token signed with the app's own secret (what only the server can make), with the claims given."""
    now = int(time.time())
    base = {"iss": "stageflow", "iat": now, "exp": now + 60, "jti": uuid.uuid4().hex, "typ": "access"}
    return jwt.encode({**base, **claims}, settings.jwt_secret, algorithm="HS256")


class TestLogin:
    async def test_a_login_answers_a_token_pair(self, app: FastAPI, tenant: Tenant, client: httpx.AsyncClient) -> None:
        person = await add_person(app, tenant, client)
        async with anonymous_client(app) as http:
            response = await http.post("/auth/login", json=login_body(person))
        assert response.status_code == 200, response.text
        assert response.headers["cache-control"] == "no-store"
        pair = response.json()
        assert pair["token_type"] == "bearer"
        assert pair["expires_in"] == 15 * 60
        assert len(pair["refresh_token"]) >= 40
        claims = jwt.decode(pair["access_token"], options={"verify_signature": False})
        assert claims["sub"] == person.id
        assert claims["ws"] == str(tenant.workspace_id)
        assert claims["typ"] == "access"
        assert claims["exp"] - claims["iat"] == 15 * 60
        assert len(claims["jti"]) == 32
        assert jwt.get_unverified_header(pair["access_token"])["alg"] == "HS256"

    async def test_email_ignores_case_and_workspace_is_optional_when_unambiguous(
        self, app: FastAPI, tenant: Tenant, client: httpx.AsyncClient
    ) -> None:
        email = f"Mixed.Case-{uuid.uuid4().hex[:8]}@Example.com"
        person = await add_person(app, tenant, client, email=email)
        async with anonymous_client(app) as http:
            response = await http.post("/auth/login", json={"email": email.upper(), "password": person.password})
            assert response.status_code == 200, response.text
            claims = jwt.decode(response.json()["access_token"], options={"verify_signature": False})
            assert claims["sub"] == person.id

    async def test_an_email_in_two_workspaces_needs_the_workspace(
        self, app: FastAPI, tenant: Tenant, client: httpx.AsyncClient
    ) -> None:
        email = f"twice-{uuid.uuid4().hex[:8]}@example.com"
        mine = await add_person(app, tenant, client, email=email)
        other = await make_tenant(app, "other")
        async with make_client(app, other.admin_key) as other_admin:
            theirs = await add_person(app, other, other_admin, email=email, password="their own password")
        async with anonymous_client(app) as http:
            for password in (PASSWORD, theirs.password):
                ambiguous = await http.post("/auth/login", json={"email": email, "password": password})
                assert ambiguous.status_code == 401
            for person in (mine, theirs):
                response = await http.post("/auth/login", json=login_body(person))
                assert response.status_code == 200, response.text
                claims = jwt.decode(response.json()["access_token"], options={"verify_signature": False})
                assert (claims["sub"], claims["ws"]) == (person.id, str(person.workspace_id))
            # The e-mail and password of one, with the other's workspace: nobody.
            crossed = await http.post("/auth/login", json=login_body(mine, workspace_id=str(other.workspace_id)))
            assert crossed.status_code == 401

    async def test_wrong_password_unknown_user_inactive_user_and_no_password_answer_the_same(
        self, app: FastAPI, tenant: Tenant, client: httpx.AsyncClient
    ) -> None:
        person = await add_person(app, tenant, client)
        inactive = await add_person(app, tenant, client, active=False)
        no_password = created_without_password = await client.post(
            "/users", json={"name": "No Password", "email": f"np-{uuid.uuid4().hex[:8]}@example.com"}
        )
        assert created_without_password.status_code == 201
        attempts = [
            login_body(person, password="wrong password"),
            login_body(person, email=f"nobody-{uuid.uuid4().hex[:8]}@example.com"),
            login_body(inactive),
            {"workspace_id": str(tenant.workspace_id), "email": no_password.json()["email"], "password": PASSWORD},
            login_body(person, workspace_id=str(uuid.uuid4())),
        ]
        answers = []
        for body in attempts:
            async with anonymous_client(app) as http:
                response = await http.post("/auth/login", json=body)
            assert response.status_code == 401
            assert response.headers["content-type"] == "application/problem+json"
            answers.append((response.json(), response.headers["www-authenticate"]))
        assert all(answer == answers[0] for answer in answers)

    async def test_an_unknown_user_costs_what_a_wrong_password_costs(
        self, app: FastAPI, tenant: Tenant, client: httpx.AsyncClient
    ) -> None:
        person = await add_person(app, tenant, client)

        async def timed(body: dict[str, Any]) -> float:
            async with anonymous_client(app) as http:
                started = time.perf_counter()
                response = await http.post("/auth/login", json=body)
                elapsed = time.perf_counter() - started
            assert response.status_code == 401
            return elapsed

        wrong = statistics.median([await timed(login_body(person, password=f"wrong-{n}")) for n in range(3)])
        unknown = statistics.median(
            [await timed(login_body(person, email=f"ghost-{uuid.uuid4().hex[:8]}@example.com")) for _ in range(3)]
        )
        # Both verify one argon2 hash (tens of milliseconds); skipping it for the unknown user would be 10x faster.
        assert 0.33 < unknown / wrong < 3, (unknown, wrong)

    @pytest.mark.parametrize(
        "body",
        [
            {"email": "x" * 100_000, "password": "p"},
            {"email": "a@example.com", "password": "p" * 100_000},
            {"workspace_id": "not-a-uuid", "email": "a@example.com", "password": "p"},
            {"email": "a@example.com"},
            {"email": "a@example.com", "password": "p", "role": "admin"},
            {"email": 5, "password": ["p"]},
        ],
    )
    async def test_bad_bodies_are_422(self, app: FastAPI, body: dict[str, Any]) -> None:
        async with anonymous_client(app) as http:
            response = await http.post("/auth/login", json=body)
        assert response.status_code == 422
        assert response.headers["content-type"] == "application/problem+json"

    async def test_a_nul_in_the_email_is_a_4xx(self, app: FastAPI) -> None:
        async with anonymous_client(app) as http:
            response = await http.post("/auth/login", json={"email": "a\u0000@example.com", "password": "p"})
        assert 400 <= response.status_code < 500

    async def test_a_bad_authorization_header_does_not_stop_a_login(
        self, app: FastAPI, tenant: Tenant, client: httpx.AsyncClient
    ) -> None:
        person = await add_person(app, tenant, client)
        async with anonymous_client(app, token="expired.or.garbage") as http:
            response = await http.post("/auth/login", json=login_body(person))
        assert response.status_code == 200, response.text


class TestAccessToken:
    async def test_the_token_works_on_rest_and_on_the_lean_read_path(
        self, app: FastAPI, tenant: Tenant, client: httpx.AsyncClient
    ) -> None:
        await create_type(client, "deal")
        element = await create_element(client, "deal", title="Big deal")
        person = await add_person(app, tenant, client)
        pair = await log_in(app, person)
        async with anonymous_client(app, token=pair["access_token"]) as http:
            users = await http.get("/users")
            assert users.status_code == 200, users.text
            assert person.id in {u["id"] for u in users.json()["items"]}
            listed = await http.get("/entity-types/deal/elements")  # the lean read path (authenticate_raw)
            assert listed.status_code == 200, listed.text
            assert [e["id"] for e in listed.json()["items"]] == [element["id"]]
            got = await http.get(f"/elements/{element['id']}")
            assert got.status_code == 200, got.text

    async def test_writes_are_recorded_as_the_person_from_their_address(
        self, app: FastAPI, tenant: Tenant, client: httpx.AsyncClient
    ) -> None:
        await create_type(client, "deal")
        person = await add_person(app, tenant, client)
        address = new_address()
        pair = await log_in(app, person)
        async with anonymous_client(app, address, token=pair["access_token"]) as http:
            created = await http.post("/entity-types/deal/elements", json={"title": "mine"})
            assert created.status_code == 201, created.text
        audit = await client.get(f"/elements/{created.json()['id']}/audit")
        assert audit.status_code == 200, audit.text
        entry = audit.json()["items"][0]
        assert (entry["user_id"], entry["api_key_id"], entry["address"]) == (person.id, None, address)

    async def test_me(self, app: FastAPI, tenant: Tenant, client: httpx.AsyncClient) -> None:
        department = await client.post("/departments", json={"name": "Sales"})
        assert department.status_code == 201, department.text
        person = await add_person(app, tenant, client, role="editor", department_id=department.json()["id"])
        pair = await log_in(app, person)
        async with anonymous_client(app, token=pair["access_token"]) as http:
            response = await http.get("/me")
        assert response.status_code == 200, response.text
        me = response.json()
        assert me["id"] == person.id
        assert me["email"] == person.email
        assert me["workspace_id"] == str(tenant.workspace_id)
        assert me["department_id"] == department.json()["id"]
        assert [(r["name"], r["level"], r["builtin"]) for r in me["roles"]] == [("editor", "editor", True)]
        assert me["level"] == "editor"

    async def test_me_is_403_for_an_api_key_and_401_for_nobody(self, app: FastAPI, client: httpx.AsyncClient) -> None:
        forbidden = await client.get("/me")
        assert forbidden.status_code == 403
        assert forbidden.headers["content-type"] == "application/problem+json"
        async with anonymous_client(app) as http:
            assert (await http.get("/me")).status_code == 401

    async def test_the_role_decides_what_the_person_may_do(
        self, app: FastAPI, tenant: Tenant, client: httpx.AsyncClient
    ) -> None:
        viewer = await add_person(app, tenant, client, role="viewer")
        nobody = await add_person(app, tenant, client, role=None)
        for person in (viewer, nobody):
            pair = await log_in(app, person)
            async with anonymous_client(app, token=pair["access_token"]) as http:
                assert (await http.get("/me")).json()["level"] == "viewer"
                refused = await http.post("/users", json={"name": "X", "email": "x@example.com"})
                assert refused.status_code == 403
                assert (await http.post("/entity-types", json={"code": "things", "title": "X"})).status_code == 403

    async def test_another_workspace_is_404_for_the_person(
        self, app: FastAPI, tenant: Tenant, client: httpx.AsyncClient, other_client: httpx.AsyncClient
    ) -> None:
        theirs = await other_client.post("/users", json={"name": "Theirs", "email": "theirs@example.com"})
        person = await add_person(app, tenant, client)
        pair = await log_in(app, person)
        async with anonymous_client(app, token=pair["access_token"]) as http:
            assert (await http.get(f"/users/{theirs.json()['id']}")).status_code == 404

    async def test_idempotency_keys_belong_to_the_person(
        self, app: FastAPI, tenant: Tenant, client: httpx.AsyncClient
    ) -> None:
        await create_type(client, "deal")
        first_person = await add_person(app, tenant, client, role="editor")
        second_person = await add_person(app, tenant, client, role="editor")
        headers = {"Idempotency-Key": f"deal-{uuid.uuid4().hex}"}
        body = {"title": "once"}
        async with anonymous_client(app, token=(await log_in(app, first_person))["access_token"]) as http:
            first = await http.post("/entity-types/deal/elements", json=body, headers=headers)
            again = await http.post("/entity-types/deal/elements", json=body, headers=headers)
        assert first.status_code == 201, first.text
        assert again.status_code == 201
        assert again.headers["idempotent-replayed"] == "true"
        assert again.json()["id"] == first.json()["id"]
        async with anonymous_client(app, token=(await log_in(app, second_person))["access_token"]) as http:
            theirs = await http.post("/entity-types/deal/elements", json=body, headers=headers)
        assert theirs.status_code == 422
        assert first.json()["id"] not in theirs.text


class CountingConnection:
    """A real read-pool connection that records the statements sent through it."""

    def __init__(self, connection: Any) -> None:
        self.connection = connection
        self.statements: list[str] = []

    async def fetch(self, sql: str, *args: Any) -> Any:
        self.statements.append(sql)
        return await self.connection.fetch(sql, *args)

    async def fetchrow(self, sql: str, *args: Any) -> Any:
        self.statements.append(sql)
        return await self.connection.fetchrow(sql, *args)

    async def fetchval(self, sql: str, *args: Any) -> Any:
        self.statements.append(sql)
        return await self.connection.fetchval(sql, *args)

    async def execute(self, sql: str, *args: Any) -> Any:
        self.statements.append(sql)
        return await self.connection.execute(sql, *args)


async def test_a_valid_token_costs_no_query_once_the_access_snapshot_is_cached(
    app: FastAPI, tenant: Tenant, client: httpx.AsyncClient
) -> None:
    person = await add_person(app, tenant, client, role="editor")
    authorization = f"Bearer {(await log_in(app, person))['access_token']}"
    async with app.state.read_pool.acquire() as raw:
        connection = CountingConnection(raw)
        await authenticate_raw(connection, authorization, tokens=app.state.bearer_tokens)  # may load the snapshot
        connection.statements.clear()
        actor = await authenticate_raw(connection, authorization, tokens=app.state.bearer_tokens, address="192.0.2.7")
    assert connection.statements == []
    assert (actor.user_id, actor.workspace_id, actor.api_key_id) == (uuid.UUID(person.id), tenant.workspace_id, None)
    assert (actor.role, actor.address) == ("editor", "192.0.2.7")
    assert actor.access is not None


class TestBadTokens:
    async def test_an_expired_token_is_401(
        self, app: FastAPI, settings: Settings, tenant: Tenant, client: httpx.AsyncClient
    ) -> None:
        person = await add_person(app, tenant, client)
        now = int(time.time())
        expired = forge(settings, sub=person.id, ws=str(tenant.workspace_id), iat=now - 1000, exp=now - 10)
        fresh = forge(settings, sub=person.id, ws=str(tenant.workspace_id))
        async with anonymous_client(app) as http:
            ok = await http.get("/me", headers={"Authorization": f"Bearer {fresh}"})
            assert ok.status_code == 200, ok.text
            for path in ("/me", "/entity-types", "/users"):
                response = await http.get(path, headers={"Authorization": f"Bearer {expired}"})
                assert response.status_code == 401
                assert response.headers["content-type"] == "application/problem+json"
                assert "expired" in response.json()["detail"]

    async def test_forged_tampered_and_malformed_tokens_are_401(
        self, app: FastAPI, settings: Settings, tenant: Tenant, client: httpx.AsyncClient
    ) -> None:
        await create_type(client, "deal")
        person = await add_person(app, tenant, client)
        victim = await add_person(app, tenant, client)
        real = (await log_in(app, person))["access_token"]
        header, payload, signature = real.split(".")
        claims = orjson.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))

        def encode(data: dict[str, Any]) -> str:
            return base64.urlsafe_b64encode(orjson.dumps(data)).rstrip(b"=").decode()

        mine = {"sub": person.id, "ws": str(tenant.workspace_id)}
        bad_tokens = {
            "other secret": jwt.encode({**claims}, "another secret that is long enough, 32+", algorithm="HS256"),
            "alg none": f"{encode({'alg': 'none', 'typ': 'JWT'})}.{encode(claims)}.",
            "alg none, no signature part": f"{encode({'alg': 'none', 'typ': 'JWT'})}.{encode(claims)}",
            "tampered payload": f"{header}.{encode({**claims, 'sub': victim.id})}.{signature}",
            "tampered expiry": f"{header}.{encode({**claims, 'exp': claims['exp'] + 10**6})}.{signature}",
            "signature cut": f"{header}.{payload}.",
            "another kind of token": forge(settings, **mine, typ="refresh"),
            "another issuer": forge(settings, **mine, iss="https://idp.example.com"),
            "no expiry": jwt.encode({**claims, "exp": None}, settings.jwt_secret, algorithm="HS256"),
            "no workspace": jwt.encode(
                {k: v for k, v in claims.items() if k != "ws"}, settings.jwt_secret, algorithm="HS256"
            ),
            "not a uuid": forge(settings, sub="admin", ws=str(tenant.workspace_id)),
            "HS512": jwt.encode(claims, settings.jwt_secret, algorithm="HS512"),
            "garbage": "abc.def.ghi",
            "one word": "nonsense",
            "huge": "x" * 100_000,
        }
        async with anonymous_client(app) as http:
            assert (await http.get("/me", headers={"Authorization": f"Bearer {real}"})).status_code == 200
            for name, token in bad_tokens.items():
                for path in ("/me", "/entity-types/deal/elements"):
                    response = await http.get(path, headers={"Authorization": f"Bearer {token}"})
                    assert response.status_code == 401, (name, path, response.text)
                    assert response.headers["content-type"] == "application/problem+json", name

    async def test_a_token_naming_another_workspace_is_401(
        self, app: FastAPI, settings: Settings, tenant: Tenant, client: httpx.AsyncClient
    ) -> None:
        person = await add_person(app, tenant, client)
        other = await make_tenant(app, "other")
        for workspace in (other.workspace_id, uuid.uuid4()):
            token = forge(settings, sub=person.id, ws=str(workspace))
            async with anonymous_client(app, token=token) as http:
                assert (await http.get("/me")).status_code == 401
                assert (await http.get("/entity-types")).status_code == 401

    async def test_a_user_made_inactive_is_refused_at_once(
        self, app: FastAPI, tenant: Tenant, client: httpx.AsyncClient
    ) -> None:
        person = await add_person(app, tenant, client)
        pair = await log_in(app, person)
        async with anonymous_client(app, token=pair["access_token"]) as http:
            assert (await http.get("/me")).status_code == 200
            assert (await client.patch(f"/users/{person.id}", json={"active": False})).status_code == 200
            assert (await http.get("/me")).status_code == 401
            assert (await http.get("/entity-types")).status_code == 401
            refreshed = await http.post("/auth/refresh", json={"refresh_token": pair["refresh_token"]})
            assert refreshed.status_code == 401
            again = await http.post("/auth/login", json=login_body(person))
            assert again.status_code == 401
            # Active again: the old login stays ended (deactivating revoked it); a new one works.
            assert (await client.patch(f"/users/{person.id}", json={"active": True})).status_code == 200
            assert (await http.post("/auth/refresh", json={"refresh_token": pair["refresh_token"]})).status_code == 401
            assert (await http.post("/auth/login", json=login_body(person))).status_code == 200

    async def test_a_deleted_user_is_refused(self, app: FastAPI, tenant: Tenant, client: httpx.AsyncClient) -> None:
        person = await add_person(app, tenant, client)
        pair = await log_in(app, person)
        assert (await client.delete(f"/users/{person.id}")).status_code == 204
        async with anonymous_client(app, token=pair["access_token"]) as http:
            assert (await http.get("/me")).status_code == 401
            assert (await http.post("/auth/refresh", json={"refresh_token": pair["refresh_token"]})).status_code == 401


async def test_an_api_key_actor_carries_the_client_address(app: FastAPI, tenant: Tenant) -> None:
    async with app.state.read_pool.acquire() as connection:
        actor = await authenticate_raw(
            connection, f"Bearer {tenant.admin_key}", tokens=app.state.bearer_tokens, address="198.51.100.4"
        )
    assert (actor.api_key_id is not None, actor.user_id, actor.address) == (True, None, "198.51.100.4")
