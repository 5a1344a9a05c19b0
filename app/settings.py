import hashlib
import uuid
from functools import lru_cache
from pathlib import Path
from typing import Literal, Self

from pydantic import BaseModel, Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


def to_asyncpg_url(url: str) -> str:
    """Accept the usual ``postgresql://`` form and pick the asyncpg driver ourselves."""
    for prefix in ("postgresql+asyncpg://", "postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+asyncpg://" + url[len(prefix) :]
    raise ValueError("DATABASE_URL must start with postgresql://")


class RateLimit(BaseModel):
    """A token bucket: `per_second` tokens added per second (0: no limit), at most `burst` held; a request takes one."""

    per_second: float = Field(ge=0)
    burst: int = Field(ge=1)


class WorkspaceRateLimit(BaseModel):
    """A workspace's own limits: for everyone in it (`per_second` and `burst`, both or neither), and per role."""

    per_second: float | None = Field(default=None, ge=0)
    burst: int | None = Field(default=None, ge=1)
    roles: dict[str, RateLimit] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _both_or_neither(self) -> Self:
        if (self.per_second is None) != (self.burst is None):
            raise ValueError("a workspace's per_second and burst are set together")
        return self

    @property
    def limit(self) -> RateLimit | None:
        if self.per_second is None or self.burst is None:
            return None
        return RateLimit(per_second=self.per_second, burst=self.burst)


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
    # How long an API request waits for a pooled connection before it is answered 503 (with Retry-After).
    DB_POOL_TIMEOUT_SECONDS: float = Field(default=3, gt=0)
    # How long opening a database connection may take (an unreachable host otherwise holds a request for a minute).
    DB_CONNECT_TIMEOUT_SECONDS: float = Field(default=5, gt=0)
    # PostgreSQL cancels an API query running longer than this (the request is answered 503); 0: no limit. The
    # worker, the CLI and migrations run without it.
    API_STATEMENT_TIMEOUT_MS: int = Field(default=15_000, ge=0)
    # Requests per caller (an API key, or a person for their tokens): a token bucket in Redis, 429 with Retry-After
    # when empty. The defaults only stop a runaway client; RATE_LIMITS_BY_ROLE (JSON: a role's name, custom or
    # admin/editor/viewer, to {"per_second", "burst"}) and RATE_LIMITS_BY_WORKSPACE (JSON: a workspace id to
    # {"per_second", "burst", "roles": {…}}) override them. per_second 0: no limit.
    RATE_LIMIT_PER_SECOND: float = Field(default=5_000, ge=0)
    RATE_LIMIT_BURST: int = Field(default=10_000, ge=1)
    RATE_LIMITS_BY_ROLE: dict[str, RateLimit] = Field(default_factory=dict)
    RATE_LIMITS_BY_WORKSPACE: dict[uuid.UUID, WorkspaceRateLimit] = Field(default_factory=dict)
    # /metrics reads the queue depth and the run lag from Redis and PostgreSQL at most once per this many seconds.
    METRICS_BACKLOG_TTL_SECONDS: float = Field(default=5, ge=0)
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
    # Answer plain typed list queries from the page's rows instead of executing them (app/api/graphql/compiled.py);
    # off: every operation is executed (the answers are the same).
    GRAPHQL_COMPILED_LISTS: bool = True
    # Run the outbox dispatcher inside the API process so a lone process delivers events (subscriptions).
    OUTBOX_DISPATCHER_ENABLED: bool = True
    # Serve the static pages under /ui (the analytics page: /ui/analytics). They hold no secret and call the API with
    # the visitor's own token; turn off where only the API should be exposed.
    UI_ENABLED: bool = True
    # Automation engine and webhooks.
    AUTOMATION_MAX_ATTEMPTS: int = 5
    AUTOMATION_MAX_DEPTH: int = 5
    # How long a claimed run or delivery is a worker's. The worker's other times derive from it (see
    # `job_timeout_seconds` and `webhook_deadline_seconds`).
    AUTOMATION_LEASE_SECONDS: float = Field(default=60, gt=0)
    AUTOMATION_SWEEP_AFTER_SECONDS: float = 10
    WORKER_MAX_JOBS: int = 20
    # Batches of events (and their runs) handled at once per worker process: CPU work, so about the cores it has.
    WORKER_ENGINE_CONCURRENCY: int = Field(default=2, gt=0)
    WEBHOOK_ALLOWED_NETWORKS: str = ""
    # How long to wait for a webhook's receiver (capped by the lease: see `webhook_deadline_seconds`).
    WEBHOOK_TIMEOUT_SECONDS: float = Field(default=10, gt=0)
    WEBHOOK_MAX_ATTEMPTS: int = 8
    # The pause before a webhook's next attempt: this, doubled per attempt (±20 % jitter), at most an hour.
    WEBHOOK_BACKOFF_SECONDS: float = Field(default=1, gt=0)
    INCOMING_WEBHOOK_MAX_BYTES: int = 256 * 1024
    # Retention (app.retention): instance-wide defaults in days (fractions allowed), None keeps forever; a workspace may
    # override each (PATCH /workspace/retention). The worker prunes every RETENTION_PRUNE_EVERY_MINUTES (0: never), in
    # batches of RETENTION_BATCH_SIZE rows, each its own short transaction.
    RETENTION_RUNS_DAYS: float | None = Field(default=30, gt=0)
    RETENTION_DELIVERIES_DAYS: float | None = Field(default=30, gt=0)
    RETENTION_OUTBOX_DAYS: float | None = Field(default=7, gt=0)
    RETENTION_TIMELINE_DAYS: float | None = Field(default=None, gt=0)  # an element's history: kept unless asked
    RETENTION_PRUNE_EVERY_MINUTES: int = Field(default=5, ge=0, le=60)
    RETENTION_BATCH_SIZE: int = Field(default=1000, gt=0, le=50_000)
    # People who log in (app.auth.sessions). Access tokens are HS256 JWTs signed with JWT_SECRET: required outside
    # development and test (the server refuses to start without it), at least 32 characters.
    JWT_SECRET: str | None = Field(default=None, repr=False)
    ACCESS_TOKEN_MINUTES: int = Field(default=15, gt=0, le=24 * 60)
    REFRESH_TOKEN_DAYS: int = Field(default=30, gt=0, le=365)
    # Failed logins allowed per account (workspace + email) and per client address within the window; then 429.
    LOGIN_MAX_FAILURES_PER_ACCOUNT: int = Field(default=5, gt=0)
    LOGIN_MAX_FAILURES_PER_ADDRESS: int = Field(default=20, gt=0)
    LOGIN_FAILURE_WINDOW_SECONDS: int = Field(default=15 * 60, gt=0)
    # An external OpenID Connect provider: its tokens (`iss` = OIDC_ISSUER) are verified against its JWKS and map to
    # the active user of OIDC_WORKSPACE_ID with the token's e-mail. All four are set together, or none.
    OIDC_ISSUER: str | None = None
    OIDC_JWKS_URL: str | None = None
    OIDC_AUDIENCE: str | None = None
    OIDC_WORKSPACE_ID: uuid.UUID | None = None
    OIDC_JWKS_TTL_SECONDS: float = Field(default=3600, gt=0)
    # A token with a key id the cached JWKS lacks fetches it again, at most once per this many seconds.
    OIDC_JWKS_REFETCH_SECONDS: float = Field(default=60, ge=0)
    OIDC_TIMEOUT_SECONDS: float = Field(default=5, gt=0)
    # Files (app/files): where uploads are kept (`local`: FILES_DIR, by default `<DATA_DIR>/files`; an S3-compatible
    # backend plugs in here), the largest upload (413 above), how long a signed download URL lives, and how long an
    # upload no element took is kept before the worker prunes it.
    FILES_STORAGE: Literal["local"] = "local"
    FILES_DIR: str | None = None
    FILES_MAX_BYTES: int = Field(default=100 * 1024 * 1024, gt=0)
    FILES_URL_SECONDS: int = Field(default=300, gt=0, le=7 * 24 * 3600)
    FILES_UNBOUND_HOURS: float = Field(default=24, gt=0)
    # Browser origins allowed to call the API (comma-separated, e.g. `https://app.example.com`); empty: no CORS.
    CORS_ORIGINS: str = ""

    @field_validator("DATABASE_URL")
    @classmethod
    def _normalise_database_url(cls, value: str | None) -> str | None:
        return to_asyncpg_url(value) if value else value

    @field_validator(
        "RETENTION_RUNS_DAYS",
        "RETENTION_DELIVERIES_DAYS",
        "RETENTION_OUTBOX_DAYS",
        "RETENTION_TIMELINE_DAYS",
        mode="before",
    )
    @classmethod
    def _forever(cls, value: object) -> object:
        """`RETENTION_TIMELINE_DAYS=forever` (or empty, `none`): an environment variable cannot say None."""
        if isinstance(value, str) and value.strip().lower() in ("", "none", "null", "forever"):
            return None
        return value

    @field_validator("JWT_SECRET")
    @classmethod
    def _long_enough(cls, value: str | None) -> str | None:
        if value is not None and len(value) < 32:
            raise ValueError("JWT_SECRET must be at least 32 characters (e.g. `openssl rand -base64 48`)")
        return value

    @model_validator(mode="after")
    def _oidc_complete(self) -> Self:
        oidc = [self.OIDC_ISSUER, self.OIDC_JWKS_URL, self.OIDC_AUDIENCE, self.OIDC_WORKSPACE_ID]
        if any(oidc) and not all(oidc):
            raise ValueError("OIDC_ISSUER, OIDC_JWKS_URL, OIDC_AUDIENCE and OIDC_WORKSPACE_ID are set together")
        return self

    @property
    def jwt_secret(self) -> str:
        """The access tokens' signing secret. Development and test derive one from the database URL (stable across
        restarts and worker processes); production must configure it."""
        if self.JWT_SECRET:
            return self.JWT_SECRET
        if self.ENVIRONMENT in ("development", "test"):
            return hashlib.sha256(f"stageflow {self.ENVIRONMENT} jwt:{self.DATABASE_URL}".encode()).hexdigest()
        raise RuntimeError("JWT_SECRET is not set: it signs the access tokens of people who log in (32+ characters)")

    @property
    def files_dir(self) -> str:
        return self.FILES_DIR or str(Path(self.DATA_DIR) / "files")

    @property
    def oidc_enabled(self) -> bool:
        return self.OIDC_ISSUER is not None

    @property
    def cors_origins(self) -> list[str]:
        return [origin.strip().rstrip("/") for origin in self.CORS_ORIGINS.split(",") if origin.strip()]

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
