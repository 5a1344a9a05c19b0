"""The per-request GraphQL context: the session, the actor, the DataLoaders and the workspace's schema."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import strawberry
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from strawberry.fastapi import BaseContext

from app.api.graphql.loaders import Loaders
from app.auth.actor import Actor
from app.errors import DomainError, Unauthorized
from app.settings import Settings

if TYPE_CHECKING:
    from app.api.graphql.schema import SchemaCache
    from app.auth.service import BearerTokens
    from app.auth.sessions import Authority


class NoSession(DomainError):
    title = "No session"
    slug = "no-session"


@dataclass
class Context(BaseContext):
    settings: Settings
    sessionmaker: async_sessionmaker[AsyncSession]
    redis: Redis | None
    schemas: SchemaCache
    actor: Actor | None = None
    db: AsyncSession | None = None
    # Logging in and verifying tokens (None where the app's lifespan did not run); the client's IP address.
    authority: Authority | None = None
    bearer_tokens: BearerTokens | None = None
    address: str | None = None
    connection_params: dict[str, Any] = field(default_factory=dict)
    ws_authorization: str | None = None
    _loaders: Loaders | None = None
    # Stages of the types whose pages this request read (GraphQL Stage objects by id): an element's stage is then
    # resolved without a DataLoader round (an awaitable per element).
    known_stages: dict[uuid.UUID, Any] = field(default_factory=dict)

    @property
    def session(self) -> AsyncSession:
        """The request's session (HTTP only: over WebSocket, only subscriptions run)."""
        if self.db is None:
            raise NoSession("Queries and mutations go over HTTP; the WebSocket carries subscriptions")
        return self.db

    @property
    def who(self) -> Actor:
        if self.actor is None:
            raise Unauthorized("Send an API key or an access token as `Authorization: Bearer <token>`")
        return self.actor

    @property
    def workspace_id(self) -> uuid.UUID:
        return self.who.workspace_id

    def reset_loaders(self) -> None:
        self._loaders = None

    @property
    def loaders(self) -> Loaders:
        if self._loaders is None:
            self._loaders = Loaders(self.session, self.who)
        return self._loaders


Info = strawberry.Info[Context, None]
