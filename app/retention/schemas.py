from pydantic import BaseModel, ConfigDict, Field

MAX_DAYS = 36_500
Days = int | None


class RetentionDays(BaseModel):
    """How long each kind of record is kept, in days; null keeps it forever."""

    runs_days: float | None = Field(description="Finished automation runs (succeeded, failed, skipped)")
    deliveries_days: float | None = Field(
        description="Finished webhook deliveries (delivered or dead-lettered) and their attempt log"
    )
    outbox_days: float | None = Field(description="Dispatched events the automation engine has handled")
    timeline_days: float | None = Field(description="Timeline entries (an element's history)")


class RetentionRead(RetentionDays):
    """What this workspace keeps (its own settings over the instance's defaults)."""

    defaults: RetentionDays = Field(description="The instance's defaults, used where the workspace sets nothing")
    overridden: list[str] = Field(description="The settings this workspace sets itself")


class RetentionUpdate(BaseModel):
    """Only the fields sent change: a number of days, or null to keep forever. DELETE returns to the defaults."""

    model_config = ConfigDict(extra="forbid")

    runs_days: Days = Field(default=None, ge=1, le=MAX_DAYS)
    deliveries_days: Days = Field(default=None, ge=1, le=MAX_DAYS)
    outbox_days: Days = Field(default=None, ge=1, le=MAX_DAYS)
    timeline_days: Days = Field(default=None, ge=1, le=MAX_DAYS)
