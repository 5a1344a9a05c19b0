import uuid
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

MAX_SLOTS = 50
MAX_DAYS = 31
MAX_SEGMENT_FIELDS = 5
TimezoneSource = Literal["field", "assignee", "default"]


class CallLevelEvidence(BaseModel):
    """One level's calls at the slot's hour-of-week: as recorded, the smoothed rate, and its weight in the estimate."""

    answered: int = Field(description="Answered calls at this hour-of-week (as recorded)")
    total: int = Field(description="Calls at this hour-of-week (as recorded)")
    rate: float | None = Field(description="Answer rate after smoothing with the neighbouring hours; null: no calls")
    weight: float = Field(description="Share of the estimate this level's rate carries (the shrink weight)")


class CallSlotExplanation(BaseModel):
    contact: CallLevelEvidence = Field(description="The element's own calls")
    segment: CallLevelEvidence = Field(description="Calls of the elements sharing the segment fields' values")
    workspace: CallLevelEvidence = Field(description="Calls of every element of the type")
    base_rate: float = Field(description="The type's overall answer rate, the prior of every hour")
    base_weight: float
    text: str = Field(description="The same, in a sentence")


class CallSlot(BaseModel):
    starts_at: datetime = Field(description="UTC")
    ends_at: datetime = Field(description="UTC")
    local_starts_at: datetime = Field(description="In the contact's time zone, with its offset")
    local_ends_at: datetime
    weekday: str = Field(description="mon … sun, in the contact's time zone")
    hour: int = Field(description="The local hour of day, 0-23")
    probability: float = Field(description="Estimated probability that a call then is answered")
    explanation: CallSlotExplanation


class CallHistorySize(BaseModel):
    contact: int
    segment: int
    workspace: int


class BestCallTimeRead(BaseModel):
    element_id: uuid.UUID
    timezone: str = Field(description="The contact's time zone")
    timezone_source: TimezoneSource = Field(
        description="`field`: the element's `timezone` field; `assignee`: the assignee's; `default`: UTC"
    )
    assignee_id: uuid.UUID | None = Field(description="Whose working hours the slots are in (none: Mon-Fri 9-18)")
    segment_fields: list[str]
    segment_values: dict[str, object] = Field(description="The element's values of the segment fields")
    calls: CallHistorySize = Field(description="Completed calls with an outcome that the estimate learned from")
    slots: list[CallSlot] = Field(description="The best slots first")
    computed_at: datetime
