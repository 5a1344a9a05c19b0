import uuid
from dataclasses import dataclass
from functools import cache

from app.access.permissions import Access, TypeAccess, builtin_access
from app.auth.models import Role
from app.entity_types.meta import TypeMeta
from app.errors import Forbidden


@cache
def _builtin(level: Role) -> Access:
    return builtin_access(level)


@dataclass(frozen=True)
class Actor:
    """Who is acting: a workspace, a level (`role`: admin / editor / viewer, for configuration) and, for elements,
    the permissions of their roles (`access`). A person acting through a token carries `user_id`; `address` is the
    client's IP address."""

    workspace_id: uuid.UUID
    role: Role
    api_key_id: uuid.UUID | None = None
    user_id: uuid.UUID | None = None
    access: Access | None = None
    address: str | None = None
    # When the person's token lapses (seconds since the epoch): a WebSocket it opened is closed then.
    token_expires_at: int | None = None

    @property
    def grants(self) -> Access:
        return self.access if self.access is not None else _builtin(self.role)

    @property
    def principal_id(self) -> uuid.UUID | None:
        """Who is recorded as the author of a change: the person, or the API key."""
        return self.user_id or self.api_key_id

    def on(self, meta: TypeMeta) -> TypeAccess:
        return self.grants.on(meta.id, meta.code)

    def ensure_can_write(self) -> None:
        if self.role == Role.viewer:
            raise Forbidden("A viewer key cannot change anything")

    def ensure_admin(self) -> None:
        if self.role != Role.admin:
            raise Forbidden("Only an admin key can do this")


def system_actor(workspace_id: uuid.UUID) -> Actor:
    """The actor for work the system does itself (CLI, workers)."""
    return Actor(workspace_id=workspace_id, role=Role.admin)
