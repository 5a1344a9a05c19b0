import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field


class AuditEntryRead(BaseModel):
    id: uuid.UUID
    at: datetime
    user_id: uuid.UUID | None = Field(description="The person who made the change (null: an API key did)")
    api_key_id: uuid.UUID | None = Field(description="The API key it was made with")
    address: str | None = Field(description="The client's IP address")
    action: str = Field(description="`POST /api/v1/entity-types/{type}/elements`, or a GraphQL mutation's name")
    object_type: str = Field(description="What was changed: `element`, `user`, `department`…")
    object_id: str | None = Field(description="Its id (or code)")
    element_id: uuid.UUID | None = Field(description="The element the change was made to, if any")
    status: int = Field(description="The HTTP status answered (200 for a GraphQL mutation)")
    details: dict[str, Any] = Field(
        description="`params` (path parameters), `fields` (the fields sent), `values` (custom field codes sent); "
        "never a value"
    )


class AuditPage(BaseModel):
    """Newest first; pass `next_cursor` as `cursor` for the next page."""

    items: list[AuditEntryRead]
    next_cursor: str | None = None
