"""Bitrix24's error answers: `{error, error_description}`, always a 4xx.

A 5xx would make clients such as fast-bitrix24 retry for a quarter of a minute before failing, so even what Stageflow
itself would answer with a 5xx (an unexpected failure, a database too busy) is a 4xx here, and logged.
"""

from http import HTTPStatus

from app.errors import (
    Conflict,
    DomainError,
    Forbidden,
    Invalid,
    NotFound,
    ServiceUnavailable,
    TooManyRequests,
    Unauthorized,
    VersionMismatch,
)


class BitrixError(Exception):
    def __init__(self, code: str, description: str, status: HTTPStatus = HTTPStatus.BAD_REQUEST) -> None:
        super().__init__(description)
        self.code = code
        self.description = description
        self.status = status

    def body(self) -> dict[str, str]:
        return {"error": self.code, "error_description": self.description}


def method_not_found(method: str) -> BitrixError:
    return BitrixError("ERROR_METHOD_NOT_FOUND", f"Method not found: {method[:100]!r}", HTTPStatus.NOT_FOUND)


def invalid(description: str) -> BitrixError:
    return BitrixError("INVALID_ARG_VALUE", description)


def not_found(description: str) -> BitrixError:
    return BitrixError("NOT_FOUND", description)


def _described(exc: DomainError) -> str:
    details = "; ".join(f"{e.field}: {e.message}" for e in exc.errors[:10])
    return f"{exc.detail}: {details}" if details else exc.detail


def from_domain(exc: DomainError) -> BitrixError:
    """A service's refusal in Bitrix24's terms."""
    description = _described(exc)
    if isinstance(exc, Unauthorized):
        return BitrixError("INVALID_CREDENTIALS", description, HTTPStatus.UNAUTHORIZED)
    if isinstance(exc, Forbidden):
        return BitrixError("ACCESS_DENIED", description, HTTPStatus.FORBIDDEN)
    if isinstance(exc, NotFound):
        return not_found(description)
    if isinstance(exc, TooManyRequests | ServiceUnavailable):
        return BitrixError("QUERY_LIMIT_EXCEEDED", description, HTTPStatus.TOO_MANY_REQUESTS)
    if isinstance(exc, Conflict | VersionMismatch):
        return BitrixError("ERROR_CONFLICT", description)
    if isinstance(exc, Invalid):
        return invalid(description)
    return BitrixError("ERROR_CORE", description)
