"""Domain errors: each carries its HTTP status and a problem ``type`` slug; renderers live at the edges."""

from dataclasses import dataclass, field
from http import HTTPStatus


@dataclass(frozen=True)
class FieldError:
    field: str
    message: str


class DomainError(Exception):
    status: HTTPStatus = HTTPStatus.BAD_REQUEST
    slug: str = "bad-request"
    title: str = "Bad request"
    # Seconds after which the same request may pass (the `Retry-After` header); None: it will not by itself.
    retry_after: int | None = None

    def __init__(self, detail: str, *, errors: list[FieldError] | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.errors = errors or []


class NotFound(DomainError):
    status = HTTPStatus.NOT_FOUND
    slug = "not-found"
    title = "Not found"


class Conflict(DomainError):
    status = HTTPStatus.CONFLICT
    slug = "conflict"
    title = "Conflict"


class VersionMismatch(DomainError):
    status = HTTPStatus.PRECONDITION_FAILED
    slug = "version-mismatch"
    title = "Version mismatch"


class Invalid(DomainError):
    status = HTTPStatus.UNPROCESSABLE_ENTITY
    slug = "validation-error"
    title = "Validation error"

    def __init__(self, detail: str = "The request is not valid", *, errors: list[FieldError] | None = None) -> None:
        super().__init__(detail, errors=errors)


class Unauthorized(DomainError):
    status = HTTPStatus.UNAUTHORIZED
    slug = "unauthorized"
    title = "Unauthorized"


class Forbidden(DomainError):
    status = HTTPStatus.FORBIDDEN
    slug = "forbidden"
    title = "Forbidden"


class TooManyRequests(DomainError):
    """Refused for now; `retry_after` seconds later it may pass (the `Retry-After` header)."""

    status = HTTPStatus.TOO_MANY_REQUESTS
    slug = "too-many-requests"
    title = "Too many requests"

    def __init__(self, detail: str, *, retry_after: int) -> None:
        super().__init__(detail)
        self.retry_after = max(1, retry_after)


class ServiceUnavailable(DomainError):
    """Not the request's fault: the database is unreachable, busy or too slow for now (`slug` says which); the same
    request may pass `retry_after` seconds later."""

    status = HTTPStatus.SERVICE_UNAVAILABLE
    slug = "service-unavailable"
    title = "Service unavailable"

    def __init__(self, detail: str, *, slug: str | None = None, retry_after: int = 1) -> None:
        super().__init__(detail)
        self.slug = slug or self.slug
        self.retry_after = max(1, retry_after)


@dataclass
class ErrorCollector:
    """Gathers every validation problem so a request reports them all at once."""

    errors: list[FieldError] = field(default_factory=list)

    def add(self, field_name: str, message: str) -> None:
        self.errors.append(FieldError(field_name, message))

    def raise_if_any(self, detail: str = "The request is not valid") -> None:
        if self.errors:
            raise Invalid(detail, errors=list(self.errors))


def from_database_error(exc: BaseException) -> DomainError | None:
    """The database's own refusal of client data (by SQLSTATE), as the DomainError a service would have raised.

    A last line behind the services' validation, shared by REST and GraphQL; None for errors that are ours. Takes the
    driver's error (asyncpg's, with `sqlstate`) as well as SQLAlchemy's wrapper of it (`orig`).
    """
    sqlstate = str(getattr(exc, "sqlstate", None) or getattr(getattr(exc, "orig", None), "sqlstate", None) or "")
    if sqlstate.startswith("22"):  # data exception: NUL in text, a number out of range, …
        return Invalid("A value cannot be stored")
    if sqlstate == "54000":  # program_limit_exceeded: e.g. a value too large for an index entry
        return Invalid("A value is too large to be stored")
    if sqlstate.startswith("54"):  # statement too complex, too many arguments…
        return Invalid("The request is too large or too complex to be carried out")
    if sqlstate.startswith("23"):  # integrity: a concurrent request created the same thing first
        return Conflict("The change conflicts with the current data; retry it")
    return None
