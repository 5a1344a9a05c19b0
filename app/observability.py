"""Structured JSON logs with a request id, Prometheus metrics per route, and the automation backlog (queue depth,
run lag) read on scrape."""

import asyncio
import json
import logging
import math
import os
import re
import sys
import time
from contextvars import ContextVar
from typing import Any

from arq.constants import default_queue_name
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

request_id_var: ContextVar[str | None] = ContextVar("request_id", default=None)
access_logger = logging.getLogger("stageflow.access")
# Path parameters that are secrets (an incoming hook's token runs its rule's actions, a calendar feed's token reads
# a user's calendar, the Bitrix24 facade's path carries an API key): never logged.
SECRET_PATH_PARAMS = frozenset({"token", "api_key"})
# Paths whose rest is a secret even when no route matched (a mistyped or extra segment still carries the token).
SECRET_PATH_PREFIXES = ("/api/v1/hooks/", "/api/v1/calendar/feeds/")
# Paths whose n-th segment is a secret, matched or not: the Bitrix24 facade's `/rest/{user_id}/{api_key}/…`.
SECRET_PATH_SEGMENTS = (("/rest/", 3),)
REDACTED = "[redacted]"


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": self.formatTime(record, "%Y-%m-%dT%H:%M:%S") + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        request_id = request_id_var.get()
        if request_id:
            entry["request_id"] = request_id
        entry.update(getattr(record, "fields", {}))
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def configure_logging(level: str) -> None:
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers = [handler]
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logging.getLogger(name).handlers = []
        logging.getLogger(name).propagate = name != "uvicorn.access"


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "stageflow_http_requests_total", "HTTP requests", ["method", "route", "status"], registry=self.registry
        )
        self.latency = Histogram(
            "stageflow_http_request_duration_seconds",
            "HTTP request latency",
            ["method", "route"],
            buckets=(0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
            registry=self.registry,
        )
        self.pool_in_use = Gauge("stageflow_db_pool_in_use", "Database connections checked out", registry=self.registry)
        self.pool_size = Gauge("stageflow_db_pool_size", "Database connections open", registry=self.registry)
        self.read_pool_in_use = Gauge(
            "stageflow_db_read_pool_in_use", "Read-path database connections in use", registry=self.registry
        )
        self.read_pool_size = Gauge(
            "stageflow_db_read_pool_size", "Read-path database connections open", registry=self.registry
        )
        self.backlog = Backlog(self.registry)


# One statement, each part on a partial index of unfinished rows (ix_automation_runs_open, ix_webhook_deliveries_due,
# ix_outbox_events_pending): its cost follows the backlog, not the tables' history.
BACKLOG_SQL = """
SELECT
  (SELECT extract(epoch FROM now() - min(resume_at)) FROM automation_runs
    WHERE status = 'queued' AND resume_at <= now()) AS run_lag,
  (SELECT extract(epoch FROM now() - min(next_attempt_at)) FROM webhook_deliveries
    WHERE status = 'pending' AND next_attempt_at <= now()) AS delivery_lag,
  (SELECT extract(epoch FROM now() - created_at) FROM outbox_events
    WHERE dispatched_at IS NULL ORDER BY id LIMIT 1) AS outbox_lag,
  (SELECT count(*) FROM automation_runs WHERE status = 'queued') AS queued,
  (SELECT count(*) FROM automation_runs WHERE status = 'queued' AND resume_at <= now()) AS due,
  (SELECT count(*) FROM automation_runs WHERE status = 'running') AS running,
  (SELECT count(*) FROM automation_runs WHERE status = 'running' AND lease_until < now()) AS lease_expired,
  (SELECT count(*) FROM webhook_deliveries WHERE status = 'pending') AS pending_deliveries,
  (SELECT count(*) FROM outbox_events WHERE dispatched_at IS NULL) AS pending_events
"""
RUN_STATES = ("queued", "due", "running", "lease_expired")
backlog_logger = logging.getLogger("stageflow.metrics")


class Backlog:
    """How far behind the asynchronous work is: arq's queue in Redis, and the oldest due run, delivery and
    undispatched event in PostgreSQL (what Redis does not hold is still in the database). Read on scrape, at most
    once per `ttl` seconds (concurrent scrapes share one read); a source that cannot be read reports NaN and
    `stageflow_backlog_up{source}` 0."""

    def __init__(self, registry: CollectorRegistry) -> None:
        def gauge(name: str, doc: str, labels: tuple[str, ...] = ()) -> Gauge:
            return Gauge(name, doc, labels, registry=registry)

        self.up = gauge("stageflow_backlog_up", "Whether the backlog could be read from the source", ("source",))
        self.queue_jobs = gauge("stageflow_queue_jobs", "Jobs in the arq queue, deferred ones included")
        self.queue_due_jobs = gauge("stageflow_queue_due_jobs", "Jobs in the arq queue due now (waiting for a worker)")
        self.run_lag = gauge(
            "stageflow_automation_run_lag_seconds", "Age of the oldest due automation run no worker has claimed"
        )
        self.delivery_lag = gauge("stageflow_webhook_delivery_lag_seconds", "Age of the oldest due webhook delivery")
        self.outbox_lag = gauge("stageflow_outbox_lag_seconds", "Age of the oldest outbox event not yet dispatched")
        self.runs = gauge(
            "stageflow_automation_open_runs",
            "Unfinished automation runs: queued (due among them), running (lease_expired among them)",
            ("state",),
        )
        self.pending_deliveries = gauge("stageflow_webhook_pending_deliveries", "Webhook deliveries not yet sent")
        self.pending_events = gauge("stageflow_outbox_pending_events", "Outbox events not yet dispatched")
        self._read_at = -math.inf
        self._lock = asyncio.Lock()

    async def refresh(self, read_pool: Any, redis: Any, ttl: float) -> None:
        if time.monotonic() - self._read_at < ttl:
            return
        async with self._lock:
            if time.monotonic() - self._read_at < ttl:
                return  # another scrape read it while this one waited
            await asyncio.gather(self._read_database(read_pool), self._read_queue(redis))
            self._read_at = time.monotonic()

    async def _read_database(self, read_pool: Any) -> None:
        try:
            async with read_pool.acquire(timeout=2) as connection:
                row = await connection.fetchrow(BACKLOG_SQL, timeout=5)
        except Exception as exc:  # a scrape still answers, with what it could read
            backlog_logger.warning("backlog not read from the database: %s", type(exc).__name__)
            self.up.labels("database").set(0)
            for gauge in (self.run_lag, self.delivery_lag, self.outbox_lag, self.pending_deliveries):
                gauge.set(math.nan)
            self.pending_events.set(math.nan)
            for state in RUN_STATES:
                self.runs.labels(state).set(math.nan)
            return
        self.up.labels("database").set(1)
        self.run_lag.set(float(row["run_lag"] or 0))
        self.delivery_lag.set(float(row["delivery_lag"] or 0))
        self.outbox_lag.set(float(row["outbox_lag"] or 0))
        for state in RUN_STATES:
            self.runs.labels(state).set(row[state])
        self.pending_deliveries.set(row["pending_deliveries"])
        self.pending_events.set(row["pending_events"])

    async def _read_queue(self, redis: Any) -> None:
        queue = getattr(redis, "default_queue_name", default_queue_name)
        try:
            if redis is None:
                raise RuntimeError("REDIS_URL is not set")
            async with redis.pipeline(transaction=False) as pipe:
                pipe.zcard(queue)
                pipe.zcount(queue, "-inf", time.time() * 1000)  # arq scores a job by when it is due, in ms
                total, due = await pipe.execute()
        except Exception as exc:
            backlog_logger.warning("queue depth not read from Redis: %s", type(exc).__name__)
            self.up.labels("redis").set(0)
            self.queue_jobs.set(math.nan)
            self.queue_due_jobs.set(math.nan)
            return
        self.up.labels("redis").set(1)
        self.queue_jobs.set(total)
        self.queue_due_jobs.set(due)


def route_template(scope: Scope) -> str:
    """The matched route as a template (`/api/v1/elements/{element_id}`), so metrics keep a bounded label set."""
    if scope.get("route") is None:
        return "unmatched"
    by_value = {str(value): f"{{{name}}}" for name, value in (scope.get("path_params") or {}).items()}
    return "/".join(by_value.get(segment, segment) for segment in scope["path"].split("/"))


def loggable_path(scope: Scope) -> str:
    """The request path with its secret parts (hook tokens) replaced, for the access log."""
    path: str = scope["path"]
    for prefix in SECRET_PATH_PREFIXES:
        if path.startswith(prefix) and len(path) > len(prefix):
            return prefix + REDACTED
    for prefix, position in SECRET_PATH_SEGMENTS:
        segments = path.split("/")
        if path.startswith(prefix) and len(segments) > position:
            segments[position] = REDACTED
            path = "/".join(segments)
    params = scope.get("path_params") or {}
    secrets = {str(value) for name, value in params.items() if name in SECRET_PATH_PARAMS and str(value)}
    if not secrets:
        return path
    return "/".join(REDACTED if segment in secrets else segment for segment in path.split("/"))


class ObservabilityMiddleware:
    """Plain ASGI (no BaseHTTPMiddleware): request id, access log, counters and latency per route template."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        request_id = _client_request_id(headers.get(b"x-request-id", b"")) or os.urandom(16).hex()  # uuid4's bits
        token = request_id_var.set(request_id)
        status = 500
        started = time.perf_counter()

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", []), (b"x-request-id", request_id.encode())]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            elapsed = time.perf_counter() - started
            template = route_template(scope)
            self.metrics.requests.labels(scope["method"], template, str(status)).inc()
            self.metrics.latency.labels(scope["method"], template).observe(elapsed)
            if access_logger.isEnabledFor(logging.INFO):  # the path is redacted only for a line that is written
                access_logger.info(
                    "request",
                    extra={
                        "fields": {
                            "method": scope["method"],
                            "path": loggable_path(scope),
                            "route": template,
                            "status": status,
                            "duration_ms": round(elapsed * 1000, 2),
                        }
                    },
                )
            request_id_var.reset(token)


_REQUEST_ID = re.compile(rb"[A-Za-z0-9._:/+=-]{1,100}")


def _client_request_id(raw: bytes) -> str | None:
    """The caller's X-Request-Id when it is plain printable ASCII; anything else (latin-1 bytes…) is replaced."""
    return raw.decode("ascii") if _REQUEST_ID.fullmatch(raw) else None
