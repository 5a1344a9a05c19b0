import errno
import socket
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any

import asyncpg
from sqlalchemy import DateTime, ForeignKey, MetaData, event, func, text
from sqlalchemy.dialects.postgresql import UUID as PgUUID
from sqlalchemy.engine import ExceptionContext
from sqlalchemy.exc import DBAPIError, DisconnectionError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, SessionTransaction, mapped_column

from app.errors import ServiceUnavailable
from app.settings import Settings

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


def uuid_pk() -> Mapped[uuid.UUID]:
    return mapped_column(PgUUID(as_uuid=True), primary_key=True, default=uuid.uuid4)


def workspace_fk() -> Mapped[uuid.UUID]:
    return mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"), nullable=False)


def created_at_column() -> Mapped[datetime]:
    return mapped_column(DateTime(timezone=True), server_default=func.now(), nullable=False)


def make_engine(settings: Settings, *, serving: bool = False) -> AsyncEngine:
    """The ORM's engine. `serving` (the API's): queries are cut at API_STATEMENT_TIMEOUT_MS and a request waits at
    most DB_POOL_TIMEOUT_SECONDS for a connection; the worker's, the CLI's and the benchmark's run without either
    limit (their long jobs are theirs to bound)."""
    engine = create_async_engine(
        settings.database_url,
        pool_size=settings.DB_POOL_SIZE,
        max_overflow=settings.DB_MAX_OVERFLOW,
        pool_timeout=settings.DB_POOL_TIMEOUT_SECONDS if serving else 30,
        pool_pre_ping=False,
        # Exception strings (logs, stored errors) never carry a statement's parameters: they can hold any value.
        hide_parameters=True,
        connect_args={
            "server_settings": server_settings(settings, serving=serving),
            "timeout": settings.DB_CONNECT_TIMEOUT_SECONDS,
        },
    )
    event.listen(engine.sync_engine, "checkout", _refuse_closed)
    event.listen(engine.sync_engine, "handle_error", _mark_disconnect)
    return engine


def _mark_disconnect(context: ExceptionContext) -> None:
    """With no pre-ping, a connection the server dropped (a restart, a terminated backend) must leave the pool when
    its error is seen: SQLAlchemy's asyncpg dialect only knows a connection asyncpg has already marked closed, not a
    server's shutdown message (57P01) or a connection lost mid-query. A disconnect also invalidates the pool's other
    connections opened before it, so the next checkouts connect afresh."""
    if not context.is_disconnect and is_connection_lost(context.original_exception):
        context.is_disconnect = True


def _refuse_closed(dbapi_connection: Any, record: Any, proxy: Any) -> None:
    """A pooled connection asyncpg has closed is dropped at checkout (a flag, no round trip), and the pool hands out
    another. GraphQL's executor cancels a root field's query when a sibling field fails (graphql-core's
    gather_with_cancel); asyncpg then closes the connection, which could come back to the pool unnoticed."""
    raw = getattr(dbapi_connection, "_connection", None)
    if raw is not None and raw.is_closed():
        raise DisconnectionError("the connection was closed")


SERVER_SETTINGS = {
    "application_name": "stageflow",
    "jit": "off",
    # Short OLTP queries at high concurrency: starting parallel workers cost 30-70 ms per query in the
    # benchmark (1M elements, 2 cores) and saved nothing.
    "max_parallel_workers_per_gather": "0",
}


def server_settings(settings: Settings, *, serving: bool) -> dict[str, str]:
    """Session settings sent when a connection opens (no extra round trip). The API's carry its statement timeout,
    so a runaway query is cancelled by PostgreSQL and its connection comes back to the pool."""
    if serving and settings.API_STATEMENT_TIMEOUT_MS > 0:
        return {**SERVER_SETTINGS, "statement_timeout": str(settings.API_STATEMENT_TIMEOUT_MS)}
    return dict(SERVER_SETTINGS)


@asynccontextmanager
async def no_statement_timeout(connection: AsyncConnection) -> AsyncIterator[None]:
    """Lift the API's statement timeout for a long job the API process runs itself (a concurrent index build), then
    put it back (RESET returns to the value the connection opened with) before the connection is pooled again."""
    await connection.execute(text("SET statement_timeout = 0"))
    try:
        yield
    finally:
        await connection.execute(text("RESET statement_timeout"))


# Errors that mean the database is out of reach, not that the statement is wrong: the server shutting down or not
# yet accepting connections (57P01-03), no connection (class 08), too many connections (53300).
UNREACHABLE_SQLSTATES = frozenset({"57P01", "57P02", "57P03", "53300"})
QUERY_CANCELED = "57014"  # statement_timeout (or a cancel request)
# Network errors Python raises as a plain OSError (refused, reset, timed out have their own subclasses).
NETWORK_ERRNOS = frozenset({errno.EHOSTUNREACH, errno.ENETUNREACH, errno.EADDRNOTAVAIL, errno.ENETDOWN})


def _causes(exc: BaseException) -> Iterator[BaseException]:
    """The exception, what SQLAlchemy wrapped (`orig`) and what each was raised from, a few levels deep."""
    seen: set[int] = set()
    todo: list[BaseException | None] = [exc]
    while todo and len(seen) < 8:
        current = todo.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        orig = getattr(current, "orig", None)
        todo += [current.__cause__, orig if isinstance(orig, BaseException) else None]


def _sqlstate(exc: BaseException) -> str:
    return str(getattr(exc, "sqlstate", None) or "")


def is_connection_lost(exc: BaseException) -> bool:
    """The connection is gone or could not be made: PostgreSQL stopped, restarted, is starting, or is unreachable."""
    for cause in _causes(exc):
        state = _sqlstate(cause)
        if state.startswith("08") or state in UNREACHABLE_SQLSTATES:
            return True
        if isinstance(cause, DBAPIError) and cause.connection_invalidated:
            return True
        if isinstance(cause, asyncpg.ConnectionDoesNotExistError | asyncpg.CannotConnectNowError):
            return True
        if isinstance(cause, asyncpg.InterfaceError) and "connection is closed" in str(cause):
            return True
        if isinstance(cause, ConnectionError | TimeoutError | socket.gaierror):
            return True
        # asyncio joins the errors of several addresses (localhost: ::1 and 127.0.0.1) into one OSError without errno.
        if type(cause) is OSError and (cause.errno is None or cause.errno in NETWORK_ERRNOS):
            return True
    return False


def database_unavailable(exc: BaseException) -> ServiceUnavailable | None:
    """The 503 an error of the database stands for (unreachable, no free connection, a query past the API's
    statement timeout), or None when it is something else (a refusal of the data, a bug)."""
    if isinstance(exc, PoolTimeout | PoolExhausted):
        return ServiceUnavailable(
            "Every database connection is in use: retry shortly", slug="database-busy", retry_after=1
        )
    if any(_sqlstate(cause) == QUERY_CANCELED for cause in _causes(exc)):
        return ServiceUnavailable(
            "The request took longer than the API allows its database queries (API_STATEMENT_TIMEOUT_MS)",
            slug="query-timeout",
            retry_after=5,
        )
    if is_connection_lost(exc):
        return ServiceUnavailable(
            "The database is unreachable: retry shortly", slug="database-unavailable", retry_after=5
        )
    return None


class PoolExhausted(Exception):
    """The read pool had no connection to give within DB_POOL_TIMEOUT_SECONDS."""


def plain_dsn(database_url: str) -> str:
    return database_url.replace("postgresql+asyncpg://", "postgresql://", 1)


async def _keep_session(connection: asyncpg.Connection) -> None:
    """The lean reads set no session state (no SET, LISTEN or locks): skip the reset round trip on release."""


async def open_read_pool(settings: Settings) -> asyncpg.Pool:
    """Plain asyncpg connections for the lean read path (the API's): no ORM, no transaction, prepared statements
    cached. A connection the server dropped is replaced by asyncpg at the next acquire."""
    pool = await asyncpg.create_pool(
        plain_dsn(settings.database_url),
        min_size=1,
        max_size=settings.DB_READ_POOL_SIZE,
        reset=_keep_session,
        statement_cache_size=1024,
        server_settings=server_settings(settings, serving=True),
        timeout=settings.DB_CONNECT_TIMEOUT_SECONDS,
    )
    assert pool is not None  # noqa: S101 (create_pool returns None only when not awaited)
    return pool


def make_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False, autoflush=False)


@asynccontextmanager
async def unit_of_work(sessionmaker: async_sessionmaker[AsyncSession]) -> AsyncIterator[AsyncSession]:
    """Commit when the block succeeds, roll back when it raises: the edge owns the transaction."""
    async with sessionmaker() as session:
        try:
            yield session
            await session.commit()
        except BaseException:
            await session.rollback()
            raise


class SessionConnection:
    """The asyncpg connection under a session (in its transaction, if one has begun), used under SQLAlchemy's own
    lock for it: GraphQL resolves fields concurrently on one session."""

    def __init__(self, adapted: Any) -> None:
        self._adapted = adapted
        self._connection = adapted.driver_connection

    @asynccontextmanager
    async def _in_transaction(self) -> AsyncIterator[asyncpg.Connection]:
        """The connection, in the session's transaction: SQLAlchemy's adapter sends BEGIN only before its first
        statement, so a plain statement that came first would otherwise run (and commit) on its own."""
        async with self._adapted._execute_mutex:
            if self._adapted._transaction is None:
                await self._adapted._start_transaction()
            yield self._connection

    async def fetch(self, sql: str, *args: Any) -> Any:
        async with self._in_transaction() as connection:
            return await connection.fetch(sql, *args)

    async def fetchrow(self, sql: str, *args: Any) -> Any:
        async with self._in_transaction() as connection:
            return await connection.fetchrow(sql, *args)

    async def fetchval(self, sql: str, *args: Any) -> Any:
        async with self._in_transaction() as connection:
            return await connection.fetchval(sql, *args)

    async def execute(self, sql: str, *args: Any) -> str:
        """A statement whose rows are not wanted; its status (`INSERT 0 1`)."""
        async with self._in_transaction() as connection:
            status: str = await connection.execute(sql, *args)
            return status


CONNECTION_KEY = "session_connection"  # session.info: the SessionConnection of the transaction under way


async def session_connection(session: AsyncSession) -> SessionConnection:
    """The session's connection, its transaction begun. Kept for the rest of the transaction: asking SQLAlchemy for
    it costs two greenlet switches, and a write asks several times."""
    kept: SessionConnection | None = session.info.get(CONNECTION_KEY)
    if kept is not None:
        return kept
    connection = await session.connection()
    raw = await connection.get_raw_connection()
    kept = session.info[CONNECTION_KEY] = SessionConnection(raw.dbapi_connection)
    return kept


@event.listens_for(Session, "after_transaction_end")
def _forget_connection(session: Session, transaction: SessionTransaction) -> None:
    """The next transaction may run on another connection of the pool."""
    if transaction.parent is None:
        session.info.pop(CONNECTION_KEY, None)
