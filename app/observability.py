"""Structured JSON logs with a request id, and Prometheus metrics per route."""

import json
import logging
import re
import sys
import time
import uuid
from contextvars import ContextVar
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

request_id_var: ContextVar[str | None] = ContextVar("request_id", default=None)
access_logger = logging.getLogger("stageflow.access")
# Path parameters that are secrets (an incoming hook's token runs its rule's actions): never logged.
SECRET_PATH_PARAMS = frozenset({"token"})
# Paths whose rest is a secret even when no route matched (a mistyped or extra segment still carries the token).
SECRET_PATH_PREFIXES = ("/api/v1/hooks/",)
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
        request_id = _client_request_id(headers.get(b"x-request-id", b"")) or uuid.uuid4().hex
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
