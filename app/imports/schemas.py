import uuid
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

ImportStatus = Literal["pending", "running", "done", "failed"]


class RejectedRow(BaseModel):
    line: int = Field(description="Line in the CSV file (the header is line 1)")
    reasons: list[str]


class ImportRead(BaseModel):
    id: uuid.UUID
    entity_type: str
    filename: str
    status: ImportStatus
    total_rows: int
    processed_rows: int = Field(description="Rows done (imported or rejected); a resumed import starts here")
    imported: int
    rejected: int
    progress: float = Field(description="processed_rows / total_rows")
    columns: dict[str, Any] = Field(description="How each CSV column was used")
    rejections: list[RejectedRow] = Field(description="The first rejected rows with their reasons")
    error: str | None
    created_at: datetime
    finished_at: datetime | None
