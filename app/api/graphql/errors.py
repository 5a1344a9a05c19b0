"""Errors as data: a mutation returns its result or one of these types, built from the same DomainErrors REST renders.

Queries raise; `DomainErrorExtension` puts the problem type and field errors into the GraphQL error's extensions.
The database's refusals of client data (`from_database_error`: SQLSTATE 22, 23, 54) count as such DomainErrors.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable, Iterator
from enum import Enum
from typing import Any, TypeVar

import pydantic
import strawberry
from asyncpg import PostgresError
from sqlalchemy.exc import DBAPIError
from strawberry.extensions import SchemaExtension
from strawberry.types.unset import UnsetType

from app.api.graphql.context import Info
from app.db import database_unavailable
from app.errors import (
    Conflict,
    DomainError,
    FieldError,
    Forbidden,
    Invalid,
    NotFound,
    VersionMismatch,
    from_database_error,
)

T = TypeVar("T")
M = TypeVar("M", bound=pydantic.BaseModel)


@strawberry.interface(description="Something the mutation refused; `code` is the problem type slug REST uses.")
class Error:
    message: str
    code: str


@strawberry.type(name="FieldError")
class FieldErrorType:
    field: str
    message: str


@strawberry.type
class ValidationError(Error):
    fields: list[FieldErrorType]


@strawberry.type(name="NotFound")
class NotFoundError(Error):
    pass


@strawberry.type(name="Conflict", description="A conflicting state, a stale `version` included (code version-mismatch)")
class ConflictError(Error):
    pass


@strawberry.type(name="Forbidden")
class ForbiddenError(Error):
    pass


ErrorTypes = ValidationError | NotFoundError | ConflictError | ForbiddenError


def to_error(exc: DomainError, *, rename: Callable[[str], str] | None = None) -> ErrorTypes:
    if isinstance(exc, Invalid):
        fields = [FieldErrorType(field=rename(e.field) if rename else e.field, message=e.message) for e in exc.errors]
        return ValidationError(message=exc.detail, code=exc.slug, fields=fields)
    if isinstance(exc, NotFound):
        return NotFoundError(message=exc.detail, code=exc.slug)
    if isinstance(exc, Conflict | VersionMismatch):
        return ConflictError(message=exc.detail, code=exc.slug)
    if isinstance(exc, Forbidden):
        return ForbiddenError(message=exc.detail, code=exc.slug)
    return ValidationError(message=exc.detail, code=exc.slug, fields=[])


async def mutate(
    info: Info, call: Callable[[], Awaitable[T]], *, rename: Callable[[str], str] | None = None
) -> T | ErrorTypes:
    """Run one write: commit when it succeeds, roll back and return the error as data when it is refused."""
    from app.api.graphql.audit import record_mutation  # here: it needs the GraphQL types, which import this module

    session = info.context.session
    try:
        result = await call()
        await record_mutation(info, result)
        await session.commit()
    except DomainError as exc:
        await session.rollback()
        return to_error(exc, rename=rename)
    except (DBAPIError, PostgresError) as exc:
        refusal = from_database_error(exc)
        if refusal is None:
            raise
        await session.rollback()
        return to_error(refusal, rename=rename)
    info.context.reset_loaders()  # what later fields of this request load must see the committed change
    return result


def plain(value: Any) -> Any:
    """A strawberry input as plain data: snake_case keys, unset fields left out, enums as their values."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {
            f.name: plain(getattr(value, f.name))
            for f in dataclasses.fields(value)
            if not isinstance(getattr(value, f.name), UnsetType)
        }
    if isinstance(value, list):
        return [plain(item) for item in value]
    if isinstance(value, Enum):
        return value.value
    return value


def parse(model: type[M], data: Any, *, prefix: str = "") -> M:
    """Validate input with the service's Pydantic model; problems become field errors (DomainError Invalid)."""
    try:
        return model.model_validate(data)
    except pydantic.ValidationError as exc:
        errors = [
            FieldError(prefix + ".".join(str(part) for part in error["loc"]) or prefix.rstrip("."), error["msg"])
            for error in exc.errors()
        ]
        raise Invalid("The input is not valid", errors=errors) from exc


def refusal_of(original: BaseException | None) -> DomainError | None:
    """The DomainError an exception stands for: itself, a database refusal of client data, or the database being
    unavailable (unreachable, busy, past the statement timeout: code and status say which); None for a bug."""
    if original is None:
        return None
    if isinstance(original, DomainError):
        return original
    if isinstance(original, DBAPIError | PostgresError):
        return from_database_error(original) or database_unavailable(original)
    return database_unavailable(original)


class DomainErrorExtension(SchemaExtension):
    """A query refused by a service or by the database reports its problem type and field errors in `extensions`."""

    def on_operation(self) -> Iterator[None]:
        yield
        result = self.execution_context.result
        for error in (result.errors or []) if result else []:
            refusal = refusal_of(error.original_error)
            if refusal is not None:
                error.message = refusal.detail  # never the driver's text: it quotes SQL and parameters
                error.extensions = {
                    "code": refusal.slug,
                    "status": int(refusal.status),
                    "errors": [{"field": e.field, "message": e.message} for e in refusal.errors],
                }
                if refusal.retry_after is not None:
                    error.extensions["retry_after"] = refusal.retry_after
