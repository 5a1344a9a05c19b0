"""Every error leaves as application/problem+json (RFC 9457)."""

import logging
from http import HTTPStatus
from typing import Any

from asyncpg import InterfaceError, PostgresError
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.exceptions import HTTPException as StarletteHTTPException

from app.db import PoolExhausted, database_unavailable
from app.errors import DomainError, FieldError, from_database_error

logger = logging.getLogger("stageflow.errors")
PROBLEM_MEDIA_TYPE = "application/problem+json"


class ProblemFieldError(BaseModel):
    field: str
    message: str


class Problem(BaseModel):
    type: str
    title: str
    status: int
    detail: str | None = None
    errors: list[ProblemFieldError] | None = None


def _content(model: type[BaseModel]) -> dict[str, Any]:
    return {PROBLEM_MEDIA_TYPE: {"schema": {"$ref": f"#/components/schemas/{model.__name__}"}}}


def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The `responses=` of a route: each error status it can answer, with the Problem schema. Every route may answer
    503 (the database unreachable, busy or too slow), and every route a caller authenticates for (401) may answer
    429 (its rate limit): both with `Retry-After`."""
    documented = list(statuses)
    if HTTPStatus.UNAUTHORIZED in documented:
        documented.append(HTTPStatus.TOO_MANY_REQUESTS)
    documented.append(HTTPStatus.SERVICE_UNAVAILABLE)
    return {
        int(status): {"model": Problem, "description": HTTPStatus(status).phrase, "content": _content(Problem)}
        for status in documented
    }


def problem(
    status: int, title: str, detail: str | None, slug: str, errors: list[FieldError] | None = None
) -> JSONResponse:
    body: dict[str, Any] = {"type": f"https://stageflow.dev/problems/{slug}", "title": title, "status": status}
    if detail:
        body["detail"] = detail
    if errors:
        body["errors"] = [{"field": e.field, "message": e.message} for e in errors]
    headers = {"WWW-Authenticate": "Bearer"} if status == HTTPStatus.UNAUTHORIZED else None
    return JSONResponse(body, status_code=status, media_type=PROBLEM_MEDIA_TYPE, headers=headers)


def _location(error: dict[str, Any]) -> str:
    parts = [str(p) for p in error.get("loc", ())]
    if error.get("type") == "json_invalid":
        return "body"  # pydantic points at a character offset, which means nothing to a client
    if parts and parts[0] in ("body", "query", "path", "header"):
        parts = parts[1:] or parts
    return ".".join(parts)


async def _domain_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, DomainError)  # noqa: S101
    response = problem(exc.status, exc.title, exc.detail, exc.slug, exc.errors)
    if exc.retry_after is not None:
        response.headers["Retry-After"] = str(exc.retry_after)
    return response


async def _request_validation_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)  # noqa: S101
    errors = [FieldError(_location(e), str(e.get("msg", "invalid"))) for e in exc.errors()]
    return problem(422, "Validation error", "The request is not valid", "validation-error", errors)


async def _http_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)  # noqa: S101
    slug = HTTPStatus(exc.status_code).phrase.lower().replace(" ", "-")
    return problem(exc.status_code, HTTPStatus(exc.status_code).phrase, str(exc.detail), slug)


async def _database_error(request: Request, exc: Exception) -> JSONResponse:
    """The database's own refusals of client data (SQLSTATE classes 22, 23 and 54) are 4xx, not 500; the database
    out of reach, out of free connections or past the statement timeout is a 503 with Retry-After."""
    refusal = from_database_error(exc) or database_unavailable(exc)
    if refusal is not None:
        if refusal.status >= 500:
            logger.warning("database unavailable: %s (%s)", refusal.slug, type(exc).__name__)
        return await _domain_error(request, refusal)
    return await _unexpected_error(request, exc)


async def _unexpected_error(_: Request, exc: Exception) -> JSONResponse:
    logger.exception("unhandled error", exc_info=exc)
    return problem(500, "Internal server error", "Something went wrong on our side", "internal-error")


def install_problem_handlers(app: FastAPI) -> None:
    app.add_exception_handler(DomainError, _domain_error)
    app.add_exception_handler(RequestValidationError, _request_validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(DBAPIError, _database_error)
    app.add_exception_handler(PostgresError, _database_error)  # reads that go to asyncpg directly
    # No connection to be had: the server is down (refused, reset: OSError; a closed asyncpg connection) or the
    # pool is full. Anything else of these types is still a 500.
    app.add_exception_handler(OSError, _database_error)
    app.add_exception_handler(InterfaceError, _database_error)
    app.add_exception_handler(PoolTimeout, _database_error)
    app.add_exception_handler(PoolExhausted, _database_error)
    app.add_exception_handler(Exception, _unexpected_error)
