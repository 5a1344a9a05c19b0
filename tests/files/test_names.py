"""The pure parts: names and types as sent, MIME patterns, Content-Disposition, link signatures."""

import uuid

import pytest

from app.files import links
from app.files.names import clean_mime_type, clean_name, content_disposition, mime_allowed


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ("report.pdf", "report.pdf"),
        ("C:\\Users\\ann\\report.pdf", "report.pdf"),
        ("../../etc/passwd", "passwd"),
        ("a\x00b\x1fc\u202e\u200bd.txt", "abcd.txt"),
        ("  tabs\tand\nnew lines  .txt ", "tabs and new lines .txt"),
        ("...", "file"),
        ("", "file"),
        (None, "file"),
        ("Ångström.txt", "Ångström.txt"),
    ],
)
def test_clean_name(raw: str | None, clean: str) -> None:
    assert clean_name(raw) == clean


def test_a_long_name_keeps_its_extension() -> None:
    name = clean_name("é" * 300 + ".docx")
    assert len(name) == 255
    assert name.endswith("é.docx")
    assert len(clean_name("x" * 300)) == 255


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ("image/PNG", "image/png"),
        ("text/plain; charset=utf-8", "text/plain"),
        ("application/vnd.openxmlformats-officedocument.wordprocessingml.document", None),
        ("nonsense", "application/octet-stream"),
        ("text/<script>", "application/octet-stream"),
        (None, "application/octet-stream"),
    ],
)
def test_clean_mime_type(raw: str | None, clean: str | None) -> None:
    assert clean_mime_type(raw) == (clean or raw)


def test_mime_patterns() -> None:
    assert mime_allowed("image/png", ["image/*"])
    assert mime_allowed("application/pdf", ["image/*", "application/pdf"])
    assert not mime_allowed("application/pdf", ["image/*"])
    assert not mime_allowed("image/png", ["image/jpeg"])
    assert mime_allowed("text/plain", ["*/*"])
    assert mime_allowed("text/plain", None)
    assert mime_allowed("text/plain", [])


def test_content_disposition_quotes_nothing_it_should_not() -> None:
    assert content_disposition('a "quoted" name\\.txt') == (
        "attachment; filename=\"a _quoted_ name_.txt\"; filename*=UTF-8''a%20%22quoted%22%20name%5C.txt"
    )
    assert (
        content_disposition("отчёт.pdf")
        == "attachment; filename=\".pdf\"; filename*=UTF-8''%D0%BE%D1%82%D1%87%D1%91%D1%82.pdf"
    )


def test_a_signature_is_bound_to_its_file_and_expiry() -> None:
    key, file_id = b"k" * 32, uuid.uuid4()
    signature = links.signature(key, file_id, 2_000)
    assert len(signature) == links.SIGNATURE_LENGTH
    assert links.valid(key, file_id, 2_000, signature, now=1_999)
    assert not links.valid(key, file_id, 2_000, signature, now=2_000)  # expired
    assert not links.valid(key, file_id, 2_001, signature, now=1_000)  # stretched
    assert not links.valid(key, uuid.uuid4(), 2_000, signature, now=1_000)  # another file
    assert not links.valid(b"x" * 32, file_id, 2_000, signature, now=1_000)  # another key
    assert not links.valid(key, file_id, 2_000, "é" * 43, now=1_000)  # any characters at all
