"""What a stored error says (`run.error`, an import's `error`): enough to act on, and never the SQL statement or its
parameters, which SQLAlchemy puts in its exception strings (`[SQL: …]`, `[parameters: …]`) and which can hold any
value of the transaction (other rows, secrets)."""

from sqlalchemy.exc import DBAPIError, StatementError

from app.errors import DomainError

MAX_STORED = 4000


def describe_failure(exc: BaseException) -> str:
    """A domain error's detail and field errors; a database error's SQLSTATE and first line; else `Type: message`."""
    if isinstance(exc, DomainError):
        message = exc.detail
        if exc.errors:
            message += " (" + "; ".join(f"{e.field}: {e.message}" for e in exc.errors) + ")"
    elif isinstance(exc, StatementError) and exc.orig is None:
        message = type(exc).__name__  # its own string is the statement and its parameters
    elif isinstance(exc, StatementError):
        orig = exc.orig
        first_line = (str(orig).strip().splitlines() or [""])[0]
        sqlstate = str(getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None) or "")
        if sqlstate.startswith("22"):
            # Data exceptions end with the value they refused (`invalid input syntax for type integer: "…"`, asyncpg's
            # `invalid input for query argument $1: '…'`): that value is a parameter.
            first_line = first_line.split(": ", 1)[0]
        kind = "database error" if isinstance(exc, DBAPIError) else f"{type(exc).__name__}"
        message = f"{kind} {sqlstate}: {first_line}" if sqlstate else f"{kind}: {first_line}"
    else:
        message = f"{type(exc).__name__}: {exc}"
    return message[:MAX_STORED]
