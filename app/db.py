import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any

import asyncpg
from sqlalchemy import DateTime, ForeignKey, MetaData, event, func
from sqlalchemy.dialects.postgresql import UUID as PgUUID
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

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


def make_engine(settings: Settings) -> AsyncEngine:
    engine = create_async_engine(
        settings.database_url,
        pool_size=settings.DB_POOL_SIZE,
        max_overflow=settings.DB_MAX_OVERFLOW,
        pool_pre_ping=False,
        # Exception strings (logs, stored errors) never carry a statement's parameters: they can hold any value.
        hide_parameters=True,
        connect_args={"server_settings": SERVER_SETTINGS},
    )
    event.listen(engine.sync_engine, "checkout", _refuse_closed)
    return engine


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


def plain_dsn(database_url: str) -> str:
    return database_url.replace("postgresql+asyncpg://", "postgresql://", 1)


async def _keep_session(connection: asyncpg.Connection) -> None:
    """The lean reads set no session state (no SET, LISTEN or locks): skip the reset round trip on release."""


async def open_read_pool(settings: Settings) -> asyncpg.Pool:
    """Plain asyncpg connections for the lean read path: no ORM, no transaction, prepared statements cached."""
    pool = await asyncpg.create_pool(
        plain_dsn(settings.database_url),
        min_size=1,
        max_size=settings.DB_READ_POOL_SIZE,
        reset=_keep_session,
        statement_cache_size=1024,
        server_settings=SERVER_SETTINGS,
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

    async def fetch(self, sql: str, *args: Any) -> Any:
        async with self._adapted._execute_mutex:
            return await self._connection.fetch(sql, *args)

    async def fetchrow(self, sql: str, *args: Any) -> Any:
        async with self._adapted._execute_mutex:
            return await self._connection.fetchrow(sql, *args)

    async def fetchval(self, sql: str, *args: Any) -> Any:
        async with self._adapted._execute_mutex:
            return await self._connection.fetchval(sql, *args)


async def session_connection(session: AsyncSession) -> SessionConnection:
    connection = await session.connection()
    raw = await connection.get_raw_connection()
    return SessionConnection(raw.dbapi_connection)
