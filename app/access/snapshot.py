"""The roles, role holders and department tree of a workspace, loaded in three queries and kept in process.

Every request needs its actor's `Access`; building it costs nothing once the workspace's snapshot is here. A change to
roles, users or departments NOTIFYs `access:<workspace>` in its transaction (`access_changed`), which drops the
snapshot in every process when it commits (app.kit.invalidation).
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import orjson
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from app.access.permissions import Access, RoleGrants
from app.auth.models import Role
from app.kit.invalidation import TimedCache, listener
from app.kit.trees import subtree

ROLES_SQL = "SELECT id, level, builtin, permissions, name FROM roles WHERE workspace_id = $1"
USERS_SQL = (
    "SELECT u.id, u.department_id, coalesce(array_agg(ur.role_id) FILTER (WHERE ur.role_id IS NOT NULL), '{}') "
    "FROM users u LEFT JOIN user_roles ur ON ur.user_id = u.id WHERE u.workspace_id = $1 AND u.active GROUP BY u.id"
)
DEPARTMENTS_SQL = "SELECT id, parent_id FROM departments WHERE workspace_id = $1"


@dataclass
class AccessSnapshot:
    workspace_id: uuid.UUID
    roles: dict[uuid.UUID, RoleGrants]
    user_roles: dict[uuid.UUID, tuple[uuid.UUID, ...]]
    user_department: dict[uuid.UUID, uuid.UUID | None]
    children: dict[uuid.UUID, list[uuid.UUID]]
    _accesses: dict[Any, Access] = field(default_factory=dict, repr=False)

    def department_users(self, user_id: uuid.UUID) -> tuple[uuid.UUID, ...]:
        """The user and everyone in the user's department or the departments below it."""
        department_id = self.user_department.get(user_id)
        if department_id is None:
            return (user_id,)
        departments = subtree(department_id, lambda node: self.children.get(node, ()))
        members = {u for u, d in self.user_department.items() if d in departments}
        return tuple(sorted(members | {user_id}))

    def for_user(self, user_id: uuid.UUID) -> Access | None:
        """The access of an active user (None for an unknown or inactive one)."""
        if user_id not in self.user_roles:
            return None
        key = ("user", user_id)
        access = self._accesses.get(key)
        if access is None:
            roles = tuple(self.roles[r] for r in self.user_roles[user_id] if r in self.roles)
            access = Access(roles, owners=(user_id,), department=self.department_users(user_id))
            self._accesses[key] = access
        return access

    def for_key(self, key_id: uuid.UUID, role_id: uuid.UUID) -> Access:
        key = ("key", key_id, role_id)
        access = self._accesses.get(key)
        if access is None:
            roles = (self.roles[role_id],) if role_id in self.roles else ()
            access = Access(roles, owners=(key_id,), department=(key_id,))
            self._accesses[key] = access
        return access


_snapshots: TimedCache[uuid.UUID, AccessSnapshot] = TimedCache("access", 1_000, uuid.UUID)


async def load_snapshot(connection: Any, workspace_id: uuid.UUID) -> AccessSnapshot:
    """The workspace's snapshot, from the cache or from three queries on an asyncpg-like connection."""
    cached = _snapshots.get(workspace_id)
    if cached is not None:
        return cached
    loaded_at = time.monotonic()
    roles = await connection.fetch(ROLES_SQL, workspace_id)
    users = await connection.fetch(USERS_SQL, workspace_id)
    departments = await connection.fetch(DEPARTMENTS_SQL, workspace_id)
    children: dict[uuid.UUID, list[uuid.UUID]] = {}
    for department_id, parent_id in departments:
        if parent_id is not None:
            children.setdefault(parent_id, []).append(department_id)
    snapshot = AccessSnapshot(
        workspace_id=workspace_id,
        roles={row[0]: RoleGrants.from_row(row[0], Role(row[1]), row[2], _json(row[3]), row[4]) for row in roles},
        user_roles={row[0]: tuple(row[2]) for row in users},
        user_department={row[0]: row[1] for row in users},
        children=children,
    )
    _snapshots.put(workspace_id, snapshot, loaded_at=loaded_at)
    return snapshot


def _json(value: Any) -> Any:
    return orjson.loads(value) if isinstance(value, str | bytes) else value


async def access_changed(session: AsyncSession, workspace_id: uuid.UUID) -> None:
    """Roles, role holders or departments changed. Triggers NOTIFY every process (migration 20261130_people); this
    one forgets the snapshot the moment the transaction commits, so its next request sees the change."""
    pending: set[uuid.UUID] = session.info.setdefault("forget_access", set())
    if not pending:
        event.listen(session.sync_session, "after_commit", _forget_after_commit, once=True)
    pending.add(workspace_id)


def _forget_after_commit(sync_session: Session) -> None:
    for workspace_id in sync_session.info.pop("forget_access", set()):
        listener.forget("access", str(workspace_id))
