"""Exports: every element a person may export, as NDJSON (the API's element JSON, one per line) or CSV (one column
per system field and per visible custom field). Hidden fields are never written: the rows come from the person's
view of the type."""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator
from typing import Any, Literal

import orjson

from app.entity_types.meta import TypeMeta
from app.readmodel.reader import RawPage

ExportFormat = Literal["ndjson", "csv"]
SYSTEM_COLUMNS = (
    "id",
    "title",
    "pipeline_id",
    "stage_code",
    "assigned_to",
    "amount",
    "currency",
    "source",
    "score",
    "version",
    "created_at",
    "updated_at",
    "moved_at",
)
MEDIA_TYPES: dict[str, str] = {"ndjson": "application/x-ndjson", "csv": "text/csv; charset=utf-8"}


def _cell(value: Any) -> Any:
    if isinstance(value, list):
        return "; ".join(str(item) for item in value)
    return "" if value is None else value


async def encode(pages: AsyncIterator[tuple[TypeMeta, RawPage]], export_format: ExportFormat) -> AsyncIterator[bytes]:
    header_written = False
    async for view, page in pages:
        if export_format == "ndjson":
            yield b"".join(row[0].encode() + b"\n" for row in page.rows)
            continue
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        codes = list(view.fields)
        if not header_written:
            writer.writerow([*SYSTEM_COLUMNS, *codes])
            header_written = True
        for row in page.rows:
            element = orjson.loads(row[0])
            values = element["values"]
            writer.writerow([_cell(element[c]) for c in SYSTEM_COLUMNS] + [_cell(values.get(code)) for code in codes])
        yield buffer.getvalue().encode()
