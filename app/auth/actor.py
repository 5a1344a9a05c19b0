import uuid
from dataclasses import dataclass

from app.auth.models import Role
from app.errors import Forbidden


@dataclass(frozen=True)
class Actor:
    """Who is acting: a workspace and a role. Every service call takes one."""

    workspace_id: uuid.UUID
    role: Role
    api_key_id: uuid.UUID | None = None

    def ensure_can_write(self) -> None:
        if self.role == Role.viewer:
            raise Forbidden("A viewer key cannot change anything")

    def ensure_admin(self) -> None:
        if self.role != Role.admin:
            raise Forbidden("Only an admin key can do this")


def system_actor(workspace_id: uuid.UUID) -> Actor:
    """The actor for work the system does itself (CLI, workers)."""
    return Actor(workspace_id=workspace_id, role=Role.admin)
