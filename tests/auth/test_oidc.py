"""OpenID Connect: a provider's ID tokens, verified against the JWKS a real local HTTP server publishes (keys made here
with cryptography), mapped to the workspace's active user with the token's e-mail."""

import asyncio
import base64
import hashlib
import hmac
import json
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from fastapi import FastAPI
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from app.main import create_app
from app.settings import Settings
from tests.auth.conftest import Person, add_person, anonymous_client
from tests.conftest import Tenant, make_client, make_tenant

ISSUER = "https://idp.example.test"
AUDIENCE = "stageflow-frontend"


@dataclass
class Provider:
    """The identity provider: signing keys, and the JWKS its HTTP server publishes (counting the fetches)."""

    url: str = ""
    published: dict[str, dict[str, Any]] = field(default_factory=dict)
    private: dict[str, Any] = field(default_factory=dict)
    fetches: int = 0

    def add_rsa(self, kid: str, *, publish: bool = True) -> None:
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.private[kid] = key
        if publish:
            self.published[kid] = {**RSAAlgorithm.to_jwk(key.public_key(), as_dict=True), "kid": kid, "use": "sig"}

    def add_ec(self, kid: str) -> None:
        key = ec.generate_private_key(ec.SECP256R1())
        self.private[kid] = key
        self.published[kid] = {**ECAlgorithm.to_jwk(key.public_key(), as_dict=True), "kid": kid, "use": "sig"}

    def token(
        self, kid: str = "rsa-1", *, algorithm: str = "RS256", header_kid: str | None = None, **claims: Any
    ) -> str:
        now = int(time.time())
        body = {"iss": ISSUER, "aud": AUDIENCE, "iat": now, "exp": now + 300, "sub": "idp-user-1", **claims}
        return jwt.encode(body, self.private[kid], algorithm=algorithm, headers={"kid": header_kid or kid})

    def jwks(self) -> bytes:
        self.fetches += 1
        return json.dumps({"keys": list(self.published.values())}).encode()


@pytest.fixture(scope="module")
def provider() -> Iterator[Provider]:
    state = Provider()
    state.add_rsa("rsa-1")
    state.add_ec("ec-1")

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = state.jwks()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}/.well-known/jwks.json"
    yield state
    server.shutdown()
    server.server_close()


@dataclass
class Setup:
    app: FastAPI
    tenant: Tenant
    admin: httpx.AsyncClient


@pytest.fixture(scope="module")
async def oidc(app: FastAPI, settings: Settings, provider: Provider) -> AsyncIterator[Setup]:
    """An API configured for the provider, its workspace (OIDC_WORKSPACE_ID) and that workspace's admin."""
    tenant = await make_tenant(app, "oidc")
    configured = settings.model_copy(
        update={
            "OIDC_ISSUER": ISSUER,
            "OIDC_JWKS_URL": provider.url,
            "OIDC_AUDIENCE": AUDIENCE,
            "OIDC_WORKSPACE_ID": tenant.workspace_id,
            "OIDC_JWKS_REFETCH_SECONDS": 0.5,
            "DB_POOL_SIZE": 2,
        }
    )
    application = create_app(configured)
    async with application.router.lifespan_context(application), make_client(application, tenant.admin_key) as admin:
        yield Setup(application, tenant, admin)


def hs256_with(secret: bytes, claims: dict[str, Any], *, kid: str) -> str:
    """An HS256 token "signed" with the provider's public key (the algorithm-confusion attack), made by hand: PyJWT
    itself refuses to use a PEM key as an HMAC secret."""

    def part(data: Any) -> bytes:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=")

    signing_input = part({"alg": "HS256", "typ": "JWT", "kid": kid}) + b"." + part(claims)
    signature = base64.urlsafe_b64encode(hmac.new(secret, signing_input, hashlib.sha256).digest()).rstrip(b"=")
    return (signing_input + b"." + signature).decode()


async def status(setup: Setup, token: str, path: str = "/me") -> int:
    async with anonymous_client(setup.app, token=token) as http:
        return (await http.get(path)).status_code


async def person(setup: Setup, **body: Any) -> Person:
    return await add_person(setup.app, setup.tenant, setup.admin, **body)


class TestAccepted:
    async def test_a_provider_token_acts_as_the_user_with_its_email(self, oidc: Setup, provider: Provider) -> None:
        someone = await person(oidc, email=f"Ann-{uuid.uuid4().hex[:6]}@Example.com", role="editor")
        for token in (
            provider.token(email=someone.email.lower(), email_verified=True),
            provider.token("ec-1", algorithm="ES256", email=someone.email.upper()),
        ):
            async with anonymous_client(oidc.app, token=token) as http:
                me = await http.get("/me")
                assert me.status_code == 200, me.text
                assert me.json()["id"] == someone.id
                assert me.json()["level"] == "editor"
                # The lean read path too.
                assert (await http.get("/entity-types")).status_code == 200

    async def test_our_own_tokens_and_api_keys_still_work_beside_it(self, oidc: Setup) -> None:
        someone = await person(oidc)
        async with anonymous_client(oidc.app) as http:
            login = await http.post(
                "/auth/login",
                json={
                    "workspace_id": str(oidc.tenant.workspace_id),
                    "email": someone.email,
                    "password": someone.password,
                },
            )
        assert login.status_code == 200, login.text
        assert await status(oidc, login.json()["access_token"]) == 200
        assert (await oidc.admin.get("/entity-types")).status_code == 200

    async def test_a_rotated_key_is_fetched_once_and_made_up_key_ids_do_not_hammer_the_provider(
        self, oidc: Setup, provider: Provider
    ) -> None:
        someone = await person(oidc)
        assert await status(oidc, provider.token(email=someone.email)) == 200
        await asyncio.sleep(0.6)  # past OIDC_JWKS_REFETCH_SECONDS since any earlier fetch
        provider.add_rsa("rsa-2")
        before = provider.fetches
        assert await status(oidc, provider.token("rsa-2", email=someone.email)) == 200
        assert provider.fetches == before + 1
        # Tokens with key ids nobody publishes: one refetch at most within the interval, however many arrive.
        provider.add_rsa("never-published", publish=False)
        before = provider.fetches
        for _ in range(5):
            assert await status(oidc, provider.token("never-published", email=someone.email)) == 401
        assert provider.fetches - before <= 1


class TestRefused:
    async def test_bad_audience_expiry_issuer_kid_signature_and_algorithm_are_401(
        self, oidc: Setup, provider: Provider
    ) -> None:
        someone = await person(oidc)
        email = someone.email
        now = int(time.time())
        public_pem = (
            provider.private["rsa-1"]
            .public_key()
            .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        )
        stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        refused = {
            "bad audience": provider.token(email=email, aud="someone-else"),
            "no audience": provider.token(email=email, aud=None),
            "expired": provider.token(email=email, iat=now - 3600, exp=now - 120),
            "wrong issuer": provider.token(email=email, iss="https://evil.example.test"),
            "unknown kid": jwt.encode(
                {"iss": ISSUER, "aud": AUDIENCE, "exp": now + 300, "email": email},
                stranger,
                algorithm="RS256",
                headers={"kid": "nobody-knows"},
            ),
            "known kid, another key": jwt.encode(
                {"iss": ISSUER, "aud": AUDIENCE, "exp": now + 300, "email": email},
                stranger,
                algorithm="RS256",
                headers={"kid": "rsa-1"},
            ),
            "HS256 with the public key as secret": hs256_with(
                public_pem, {"iss": ISSUER, "aud": AUDIENCE, "exp": now + 300, "email": email}, kid="rsa-1"
            ),
            "RS512": provider.token("rsa-1", algorithm="RS512", email=email),
            "ES256 under the RSA key's id": provider.token("ec-1", algorithm="ES256", header_kid="rsa-1", email=email),
            "alg none": jwt.encode({"iss": ISSUER, "aud": AUDIENCE, "exp": now + 300, "email": email}, "", "none"),
            "email not verified": provider.token(email=email, email_verified=False),
            "no email": provider.token(),
            "unknown email": provider.token(email="nobody@example.com"),
        }
        for name, token in refused.items():
            async with anonymous_client(oidc.app, token=token) as http:
                response = await http.get("/me")
            assert response.status_code == 401, (name, response.text)
            assert response.headers["content-type"] == "application/problem+json", name

    async def test_only_active_users_of_the_configured_workspace(
        self, oidc: Setup, provider: Provider, app: FastAPI
    ) -> None:
        inactive = await person(oidc, active=False)
        assert await status(oidc, provider.token(email=inactive.email)) == 401
        # The same e-mail as a user of another workspace maps to nobody here.
        other = await make_tenant(app, "elsewhere")
        async with make_client(app, other.admin_key) as other_admin:
            elsewhere = await add_person(app, other, other_admin)
        assert await status(oidc, provider.token(email=elsewhere.email)) == 401

    async def test_a_user_made_inactive_is_refused(self, oidc: Setup, provider: Provider) -> None:
        someone = await person(oidc)
        token = provider.token(email=someone.email)
        assert await status(oidc, token) == 200
        assert (await oidc.admin.patch(f"/users/{someone.id}", json={"active": False})).status_code == 200
        assert await status(oidc, token) == 401
