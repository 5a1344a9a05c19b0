"""Issue 14, "Done when": a 50 MB upload streams with flat memory and downloads byte-identical through its signed URL;
an expired (or tampered) URL gets 403; an upload over the limit is a 413 that leaves nothing behind."""

import hashlib
import random
import time
import tracemalloc
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest
from fastapi import FastAPI

from app.auth.actor import Actor
from app.auth.models import Role
from app.files import service
from app.kit import background
from app.settings import Settings
from tests.conftest import Tenant
from tests.files.conftest import file_rows, storage, stored, stored_paths, upload

MiB = 1024 * 1024
CHUNK = 64 * 1024  # what a server hands on per receive, about
BOUNDARY = "stageflow-files-test-3f9c2a"


async def multipart_stream(size: int, digest: Any, *, name: str = "big.bin", seed: int = 47) -> AsyncIterator[bytes]:
    """A multipart body made on the fly (never whole in memory), hashing the file's bytes as they go out."""
    yield (
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="{name}"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n"
    ).encode()
    # Slices of one random MiB at shifting offsets: varied bytes without paying for 50 MB of randomness.
    rng = random.Random(seed)
    block = rng.randbytes(MiB + CHUNK)
    sent = 0
    while sent < size:
        offset = rng.randrange(MiB)
        chunk = block[offset : offset + min(CHUNK, size - sent)]
        digest.update(chunk)
        sent += len(chunk)
        yield chunk
    yield f"\r\n--{BOUNDARY}--\r\n".encode()


def streamed(size: int, digest: Any, **kwargs: Any) -> dict[str, Any]:
    return {
        "content": multipart_stream(size, digest, **kwargs),
        "headers": {"Content-Type": f"multipart/form-data; boundary={BOUNDARY}"},
    }


def anonymous(app: FastAPI) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver")


async def test_a_50_mb_upload_streams_with_flat_memory_and_downloads_byte_identical(
    app: FastAPI, tenant: Tenant, client: httpx.AsyncClient
) -> None:
    size = 50 * MiB
    sent = hashlib.sha256()
    # The app's first requests build its routes' models lazily: not the upload's memory, so not measured.
    await upload(client, b"warm-up")
    started = time.perf_counter()
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        response = await client.post("/files", **streamed(size, sent))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    upload_seconds = time.perf_counter() - started
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["size"] == size
    assert body["sha256"] == sent.hexdigest()
    assert body["name"] == "big.bin"
    assert body["mime_type"] == "application/octet-stream"
    # Every Python allocation of the client's body, the parser, the hashing and the writes at their peak together:
    # the 50 MB never are in memory at once.
    assert peak < 8 * MiB, f"peak {peak / MiB:.1f} MiB of Python allocations during the upload"
    assert upload_seconds < 30, upload_seconds

    link = (await client.get(f"/files/{body['id']}/url")).json()
    assert link["url"].startswith(f"http://testserver/api/v1/files/{body['id']}/content?expires=")
    async with anonymous(app) as http:  # no API key: the signature is the credential
        download = await http.get(link["url"])
    assert download.status_code == 200, download.text
    assert hashlib.sha256(download.content).hexdigest() == sent.hexdigest()
    assert download.headers["content-length"] == str(size)
    assert download.headers["content-type"] == "application/octet-stream"
    assert download.headers["content-disposition"] == "attachment; filename=\"big.bin\"; filename*=UTF-8''big.bin"
    assert download.headers["x-content-type-options"] == "nosniff"
    await storage(app).delete(f"{tenant.workspace_id}/{body['id']}")  # 50 MB less on the test machine's disk


class TestSignedLinks:
    async def test_an_expired_or_tampered_link_is_403(
        self, app: FastAPI, settings: Settings, client: httpx.AsyncClient
    ) -> None:
        file = await upload(client, b"signed bytes")
        link = (await client.get(f"/files/{file['id']}/url")).json()
        expires_at = datetime.fromisoformat(link["expires_at"])
        assert timedelta(seconds=290) < expires_at - datetime.now(UTC) <= timedelta(seconds=300)
        parts = urlsplit(link["url"])
        query = {k: v[0] for k, v in parse_qs(parts.query).items()}
        path = parts.path
        content_url = f"http://testserver{path}"
        past = service.signed_url(
            settings, uuid.UUID(file["id"]), content_url=content_url, now=datetime.now(UTC) - timedelta(minutes=6)
        )
        flipped = query["signature"][:-1] + ("A" if query["signature"][-1] != "A" else "B")
        other = await upload(client, b"another file")
        async with anonymous(app) as http:
            assert (await http.get(link["url"])).content == b"signed bytes"
            expired = await http.get(past.url)
            assert expired.status_code == 403, expired.text
            assert expired.headers["content-type"] == "application/problem+json"
            for tampered in (
                {**query, "signature": flipped},
                {**query, "expires": str(int(query["expires"]) + 3600)},  # stretched
                {**query, "signature": ""},
            ):
                assert (await http.get(f"{path}?{urlencode(tampered)}")).status_code == 403
            moved = await http.get(f"/api/v1/files/{other['id']}/content?{parts.query}")  # another file's
            assert moved.status_code == 403
            assert (await http.get(path)).status_code == 422  # no signature at all

    async def test_a_link_is_only_given_to_who_may_read_the_file(
        self, client: httpx.AsyncClient, other_client: httpx.AsyncClient
    ) -> None:
        file = await upload(client)
        assert (await other_client.get(f"/files/{file['id']}/url")).status_code == 404
        assert (await other_client.get(f"/files/{file['id']}")).status_code == 404
        assert (await client.get(f"/files/{uuid.uuid4()}/url")).status_code == 404


class TestLimits:
    async def test_a_declared_body_over_the_limit_is_refused_before_it_is_read(
        self,
        app: FastAPI,
        tenant: Tenant,
        settings: Settings,
        client: httpx.AsyncClient,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        monkeypatch.setattr(settings, "FILES_MAX_BYTES", 100_000)
        response = await client.post("/files", files={"file": ("big.bin", b"x" * 200_000, "application/pdf")})
        assert response.status_code == 413, response.text
        assert response.json()["type"].endswith("/payload-too-large")
        assert stored_paths(app, tenant.workspace_id) == []
        assert await file_rows(app, tenant.workspace_id) == 0

    async def test_a_streamed_body_over_the_limit_is_cut_off_and_leaves_nothing(
        self,
        app: FastAPI,
        tenant: Tenant,
        settings: Settings,
        client: httpx.AsyncClient,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        monkeypatch.setattr(settings, "FILES_MAX_BYTES", 3 * MiB)
        response = await client.post("/files", **streamed(3 * MiB + 1, hashlib.sha256()))
        assert response.status_code == 413, response.text
        assert "3145728 bytes" in response.json()["detail"]
        assert stored_paths(app, tenant.workspace_id) == []  # no temporary file either
        assert await file_rows(app, tenant.workspace_id) == 0
        exactly = await client.post("/files", **streamed(3 * MiB, hashlib.sha256()))
        assert exactly.status_code == 201, exactly.text
        assert await stored(app, tenant.workspace_id, exactly.json()["id"])


class TestBadBodies:
    async def test_what_is_not_one_file_in_multipart_is_refused_and_leaves_nothing(
        self, app: FastAPI, tenant: Tenant, client: httpx.AsyncClient
    ) -> None:
        assert (await client.post("/files", json={"file": "x"})).status_code == 415
        assert (
            await client.post("/files", content=b"raw", headers={"Content-Type": "multipart/form-data"})
        ).status_code == 422
        fields_only = await client.post("/files", data={"note": "no file here"}, files={})
        assert fields_only.status_code in (415, 422), fields_only.text
        no_file = await client.post(
            "/files",
            content=f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="note"\r\n\r\nhi\r\n--{BOUNDARY}--\r\n',
            headers={"Content-Type": f"multipart/form-data; boundary={BOUNDARY}"},
        )
        assert no_file.status_code == 422
        assert no_file.json()["errors"] == [
            {"field": "file", "message": "the body holds no file part (a part with a filename)"}
        ]
        two = await client.post(
            "/files", files=[("file", ("a.txt", b"a", "text/plain")), ("more", ("b.txt", b"b", "text/plain"))]
        )
        assert two.status_code == 422
        assert two.json()["errors"][0]["message"] == "send one file per request"
        cut = await client.post(
            "/files",
            content=f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="a.bin"\r\n\r\nsome bytes',
            headers={"Content-Type": f"multipart/form-data; boundary={BOUNDARY}"},
        )
        assert cut.status_code == 422
        assert stored_paths(app, tenant.workspace_id) == []
        assert await file_rows(app, tenant.workspace_id) == 0

    async def test_the_name_and_type_sent_are_cleaned(self, client: httpx.AsyncClient) -> None:
        # Sent as raw bytes: httpx would percent-encode the control character itself.
        evil = "../../etc/pass\x07wd\u202e.txt".encode()
        raw = (
            f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="'.encode()
            + evil
            + f'"\r\nContent-Type: Text/HTML; charset=utf-8\r\n\r\n<html>\r\n--{BOUNDARY}--\r\n'.encode()
        )
        sent = await client.post(
            "/files", content=raw, headers={"Content-Type": f"multipart/form-data; boundary={BOUNDARY}"}
        )
        assert sent.status_code == 201, sent.text
        file = sent.json()
        assert file["name"] == "passwd.txt"
        assert file["mime_type"] == "text/html"
        odd = await upload(client, b"?", name="   ", mime_type="not a type")
        assert (odd["name"], odd["mime_type"]) == ("file", "application/octet-stream")
        long = await upload(client, b"?", name="x" * 400 + ".pdf")
        assert len(long["name"]) == 255
        assert long["name"].endswith("x.pdf")
        assert (await client.get(f"/files/{file['id']}")).json() == file


class OneChunk:
    async def open(self) -> tuple[str | None, str | None]:
        return "a.txt", "text/plain"

    async def chunks(self) -> AsyncIterator[bytes]:
        yield b"abc"


async def test_bytes_whose_row_is_rolled_back_are_removed(app: FastAPI, tenant: Tenant) -> None:
    actor = Actor(tenant.workspace_id, Role.admin)
    async with app.state.sessionmaker() as session:
        read = await service.upload_file(session, actor, storage(app), OneChunk(), max_bytes=10)
        assert await stored(app, tenant.workspace_id, str(read.id))
        await session.rollback()
    await background.drain()
    assert not await stored(app, tenant.workspace_id, str(read.id))
    assert stored_paths(app, tenant.workspace_id) == []
