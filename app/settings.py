from functools import lru_cache

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


def to_asyncpg_url(url: str) -> str:
    """Accept the usual ``postgresql://`` form and pick the asyncpg driver ourselves."""
    for prefix in ("postgresql+asyncpg://", "postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+asyncpg://" + url[len(prefix) :]
    raise ValueError("DATABASE_URL must start with postgresql://")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore")

    DATABASE_URL: str | None = None
    REDIS_URL: str | None = None
    ENVIRONMENT: str = "production"
    LOG_LEVEL: str = "INFO"
    DB_POOL_SIZE: int = 20
    DB_MAX_OVERFLOW: int = 10
    # Plain asyncpg connections of the lean read path (lists, gets, boards), per process.
    DB_READ_POOL_SIZE: int = 10
    # Where `stageflow dev` keeps the embedded PostgreSQL and Redis data.
    DATA_DIR: str = ".stageflow"
    API_KEY_TOUCH_SECONDS: int = 60
    IDEMPOTENCY_TTL_HOURS: int = 24
    # GraphQL limits: a query deeper, costlier (fields × page sizes), longer or with more aliases is refused.
    GRAPHQL_MAX_DEPTH: int = 12
    GRAPHQL_MAX_COST: int = 50_000
    GRAPHQL_MAX_TOKENS: int = 5_000
    GRAPHQL_MAX_ALIASES: int = 30
    GRAPHQL_INTROSPECTION: bool = True
    # Typed GraphQL schemas kept in memory, one per workspace, LRU (about 2.5 MB for 5 types of 10 fields).
    GRAPHQL_SCHEMA_CACHE_SIZE: int = 256
    # Run the outbox dispatcher inside the API process so a lone process delivers events (subscriptions).
    OUTBOX_DISPATCHER_ENABLED: bool = True
    # Automation engine and webhooks.
    AUTOMATION_MAX_ATTEMPTS: int = 5
    AUTOMATION_MAX_DEPTH: int = 5
    # How long a claimed run or delivery is a worker's. The worker's other times derive from it (see
    # `job_timeout_seconds` and `webhook_deadline_seconds`).
    AUTOMATION_LEASE_SECONDS: float = Field(default=60, gt=0)
    AUTOMATION_SWEEP_AFTER_SECONDS: float = 10
    WORKER_MAX_JOBS: int = 20
    WEBHOOK_ALLOWED_NETWORKS: str = ""
    # How long to wait for a webhook's receiver (capped by the lease: see `webhook_deadline_seconds`).
    WEBHOOK_TIMEOUT_SECONDS: float = Field(default=10, gt=0)
    WEBHOOK_MAX_ATTEMPTS: int = 8
    INCOMING_WEBHOOK_MAX_BYTES: int = 256 * 1024

    @field_validator("DATABASE_URL")
    @classmethod
    def _normalise_database_url(cls, value: str | None) -> str | None:
        return to_asyncpg_url(value) if value else value

    @property
    def database_url(self) -> str:
        if not self.DATABASE_URL:
            raise RuntimeError("DATABASE_URL is not set (use `stageflow dev` for an embedded database)")
        return self.DATABASE_URL

    # lease > job timeout > webhook deadline: arq cancels a job before the lease it took expires, and a webhook request
    # is cut before its job is, so an expired lease never lets a second worker send a delivery (or run a run) that
    # the first one is still on.
    @property
    def job_timeout_seconds(self) -> float:
        """arq's timeout for the jobs that take leases (runs, events, timers, deliveries)."""
        return self.AUTOMATION_LEASE_SECONDS * 0.75

    @property
    def webhook_deadline_seconds(self) -> float:
        """A webhook request's whole time (resolving, connecting, sending, reading the answer), within its job's."""
        return min(self.WEBHOOK_TIMEOUT_SECONDS, self.job_timeout_seconds * 0.5)

    @property
    def is_development(self) -> bool:
        return self.ENVIRONMENT == "development"


@lru_cache
def get_settings() -> Settings:
    return Settings()
