import uuid
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field


class FileRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    name: str = Field(description="The uploaded file's name, cleaned (no path, no control characters, ≤ 255)")
    size: int = Field(description="Bytes")
    mime_type: str = Field(description="As the upload declared it (`application/octet-stream` when it did not)")
    sha256: str = Field(description="Hex SHA-256 of the bytes, computed while they streamed in")
    created_at: datetime
    element_id: uuid.UUID | None = Field(default=None, description="The element whose file field holds it, if any")


class FileDownloadUrl(BaseModel):
    url: str = Field(description="GET it with no API key until `expires_at`: the signature in it is the credential")
    expires_at: datetime
