import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict


class TimelineEntryRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    kind: str
    actor_id: uuid.UUID | None
    data: dict[str, Any]
    created_at: datetime


class TimelineList(BaseModel):
    items: list[TimelineEntryRead]
