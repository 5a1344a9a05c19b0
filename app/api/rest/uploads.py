"""One file out of a multipart/form-data request, parsed from the request stream as it arrives.

Nothing is spooled: python-multipart's streaming parser is fed each network chunk, and the file part's bytes are
handed on as they come (a few slices of the last chunk at a time) to the files service, which writes them to the
storage. The body must hold exactly one file part (any field name); other form fields are ignored, up to a few KiB.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from http import HTTPStatus

from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.requests import ClientDisconnect, Request

from app.errors import DomainError, FieldError, Invalid
from app.files.service import FileTooLarge

FRAMING_BYTES = 64 * 1024  # boundaries, part headers and small form fields around the file
MAX_OTHER_BYTES = 16 * 1024  # form fields other than the file, in all (their values are ignored)


class UnsupportedMediaType(DomainError):
    status = HTTPStatus.UNSUPPORTED_MEDIA_TYPE
    slug = "unsupported-media-type"
    title = "Unsupported media type"


class UploadInterrupted(DomainError):
    status = HTTPStatus.BAD_REQUEST
    slug = "upload-interrupted"
    title = "Upload interrupted"


def _invalid(message: str) -> Invalid:
    return Invalid("The upload is not valid", errors=[FieldError("file", message)])


class MultipartFile:
    """The request's file part: `open()` reads up to the end of its headers, `chunks()` yields its bytes, then reads
    the rest of the body (which may hold no second file)."""

    def __init__(self, request: Request, *, max_file_bytes: int) -> None:
        media, params = parse_options_header(request.headers.get("content-type"))
        if media != b"multipart/form-data":
            raise UnsupportedMediaType("Send the file as multipart/form-data (curl -F 'file=@name')")
        boundary = params.get(b"boundary")
        if not boundary:
            raise _invalid("the multipart/form-data content type has no boundary")
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > max_file_bytes + FRAMING_BYTES:
            raise FileTooLarge(f"The file is larger than the limit of {max_file_bytes} bytes")
        try:
            self.parser = MultipartParser(
                boundary,
                {
                    "on_part_begin": self._part_begin,
                    "on_header_field": self._header_field,
                    "on_header_value": self._header_value,
                    "on_header_end": self._header_end,
                    "on_headers_finished": self._headers_finished,
                    "on_part_data": self._part_data,
                    "on_part_end": self._part_end,
                    "on_end": self._end,
                },
            )
        except FormParserError as exc:
            raise _invalid(str(exc)) from exc
        self.stream = request.stream().__aiter__()
        self.headers: dict[bytes, bytes] = {}
        self.header_name = bytearray()
        self.header_value = bytearray()
        self.in_file = False
        self.file: tuple[str | None, str | None] | None = None
        self.file_done = False
        self.ended = False
        self.pending: list[bytes] = []
        self.other_bytes = 0

    # --- the parser's callbacks (synchronous, within `parser.write`) ---

    def _part_begin(self) -> None:
        self.headers = {}
        self.in_file = False

    def _header_field(self, data: bytes, start: int, end: int) -> None:
        self.header_name += data[start:end]

    def _header_value(self, data: bytes, start: int, end: int) -> None:
        self.header_value += data[start:end]

    def _header_end(self) -> None:
        self.headers[bytes(self.header_name).lower()] = bytes(self.header_value)
        self.header_name.clear()
        self.header_value.clear()

    def _headers_finished(self) -> None:
        _, options = parse_options_header(self.headers.get(b"content-disposition"))
        if b"filename" not in options:
            return
        if self.file is not None:
            raise _invalid("send one file per request")
        content_type = self.headers.get(b"content-type")
        self.file = (
            options[b"filename"].decode("utf-8", "replace"),
            content_type.decode("latin-1") if content_type is not None else None,
        )
        self.in_file = True

    def _part_data(self, data: bytes, start: int, end: int) -> None:
        if self.in_file:
            self.pending.append(data[start:end])
            return
        self.other_bytes += end - start
        if self.other_bytes > MAX_OTHER_BYTES:
            raise _invalid(f"form fields besides the file take at most {MAX_OTHER_BYTES} bytes")

    def _part_end(self) -> None:
        if self.in_file:
            self.file_done = True
            self.in_file = False

    def _end(self) -> None:
        self.ended = True

    # --- reading the stream ---

    async def _feed(self) -> bool:
        """Parse the next chunk of the body; False once it has all come."""
        try:
            chunk = await self.stream.__anext__()
        except StopAsyncIteration:
            return False
        except ClientDisconnect as exc:
            raise UploadInterrupted("The client went away before the upload was complete") from exc
        try:
            self.parser.write(chunk)
        except FormParserError as exc:
            raise _invalid(f"the body is not valid multipart/form-data ({exc})") from exc
        return True

    async def open(self) -> tuple[str | None, str | None]:
        while self.file is None:
            if self.ended or not await self._feed():
                raise _invalid("the body holds no file part (a part with a filename)")
        return self.file

    async def chunks(self) -> AsyncIterator[bytes]:
        while True:
            pending, self.pending = self.pending, []
            for piece in pending:
                yield piece
            if self.file_done:
                break
            if not await self._feed():
                raise _invalid("the body ended inside the file part")
        # The rest: the closing boundary (and small fields). A second file is refused by the parser's callbacks.
        while not self.ended:
            if not await self._feed():
                raise _invalid("the body ended before its closing boundary")
