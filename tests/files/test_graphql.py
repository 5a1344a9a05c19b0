"""Files through GraphQL: typed file fields resolve to their files, `file(id)` and `fileDownloadUrl(id)`."""

from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from gql.transport.exceptions import TransportQueryError

from tests.files.conftest import upload
from tests.graphql.conftest import Run

PNG = b"\x89PNG\r\n\x1a\n" + b"1" * 10


async def test_typed_file_fields_take_ids_and_give_files(
    app: FastAPI, client: httpx.AsyncClient, run: Run, docs: dict[str, Any]
) -> None:
    photo = await upload(client, PNG, "p.png", "image/png")
    pdf = await upload(client, b"%PDF-1.7", "a.pdf", "application/pdf")
    text = await upload(client, b"plain", "a.txt", "text/plain")
    created = await run(
        """mutation($photo: UUID!, $files: [UUID!]) {
          createDeal(input: {title: "typed", photo: $photo, attachments: $files}) {
            __typename
            ... on Deal { id photo { id name size mimeType sha256 elementId downloadUrl { url expiresAt } }
                          attachments { id name } }
            ... on ValidationError { fields { field message } }
          }
        }""",
        photo=photo["id"],
        files=[pdf["id"]],
    )
    deal = created["createDeal"]
    assert deal["__typename"] == "Deal", deal
    assert deal["photo"]["name"] == "p.png"
    assert deal["photo"]["size"] == len(PNG)
    assert deal["photo"]["mimeType"] == "image/png"
    assert deal["photo"]["elementId"] == deal["id"]
    assert deal["attachments"] == [{"id": pdf["id"], "name": "a.pdf"}]
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver") as http:
        assert (await http.get(deal["photo"]["downloadUrl"]["url"])).content == PNG

    refused = await run(
        """mutation($id: UUID!, $files: [UUID!]) {
          updateDeal(id: $id, input: {attachments: $files}) {
            __typename ... on ValidationError { fields { field message } }
          }
        }""",
        id=deal["id"],
        files=[text["id"]],
    )
    assert refused["updateDeal"]["fields"] == [
        {
            "field": "attachments[0]",
            "message": f"file {text['id']} is text/plain, not one of the field's types (application/pdf, image/*)",
        }
    ]
    found = await run("{ deals(filter: {photo: {isNull: false}}) { edges { node { title photo { name } } } } }")
    assert found["deals"]["edges"] == [{"node": {"title": "typed", "photo": {"name": "p.png"}}}]
    empty = await run("{ deals(filter: {photo: {isNull: true}}) { edges { node { title } } } }")
    assert empty["deals"]["edges"] == []


async def test_file_and_its_download_url(
    app: FastAPI, client: httpx.AsyncClient, other_client: httpx.AsyncClient, run: Run
) -> None:
    file = await upload(client, b"generic bytes", "g.txt")
    found = await run(
        "query($id: UUID!) { file(id: $id) { id name size elementId } fileDownloadUrl(id: $id) { url expiresAt } }",
        id=file["id"],
    )
    assert found["file"] == {"id": file["id"], "name": "g.txt", "size": 13, "elementId": None}
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver") as http:
        assert (await http.get(found["fileDownloadUrl"]["url"])).content == b"generic bytes"
    theirs = await upload(other_client, b"theirs")
    with pytest.raises(TransportQueryError) as caught:
        await run("query($id: UUID!) { fileDownloadUrl(id: $id) { url } }", id=theirs["id"])
    assert caught.value.errors is not None
    assert caught.value.errors[0]["extensions"]["code"] == "not-found"


async def test_file_field_settings_through_graphql(run: Run, docs: dict[str, Any]) -> None:
    created = await run(
        """mutation {
          createField(type: "deal", input: {code: "scan", type: "file", maxSizeBytes: 5000000000,
                                            allowedMimeTypes: ["application/pdf"]}) {
            __typename ... on Field { code type maxSizeBytes allowedMimeTypes }
          }
        }"""
    )
    assert created["createField"] == {
        "__typename": "Field",
        "code": "scan",
        "type": "file",
        "maxSizeBytes": 5000000000,
        "allowedMimeTypes": ["application/pdf"],
    }
