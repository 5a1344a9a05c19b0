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


@dataclass
class ErrorCollector:
    """Gathers every validation problem so a request reports them all at once."""

    errors: list[FieldError] = field(default_factory=list)

    def add(self, field_name: str, message: str) -> None:
        self.errors.append(FieldError(field_name, message))

    def raise_if_any(self, detail: str = "The request is not valid") -> None:
        if self.errors:
            raise Invalid(detail, errors=list(self.errors))
