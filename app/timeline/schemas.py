import uuid
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from app.activities.schemas import ActivityRead


class TimelineEntryRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    kind: str
    actor_id: uuid.UUID | None
    data: dict[str, Any]
    created_at: datetime


class TimelineList(BaseModel):
    items: list[TimelineEntryRead]


FeedItemType = Literal["entry", "activity"]
MAX_FEED_KINDS = 20


class TimelineItem(BaseModel):
    """One item of an element's timeline feed: a timeline entry (stage moves, changes, comments, runs…) or an
    activity (a call, meeting, e-mail or message bound to the element)."""

    type: FeedItemType
    kind: str = Field(description="The entry's kind (`moved`, `comment`, …) or the activity's (`call`, …)")
    at: datetime = Field(description="When: the entry's time, or the activity's start")
    entry: TimelineEntryRead | None = None
    activity: ActivityRead | None = None


class TimelinePage(BaseModel):
    items: list[TimelineItem]
    next_cursor: str | None = None
