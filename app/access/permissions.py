"""What a person may do with elements: the permissions of their roles, merged into one `Access`.

A role grants, per entity type and optionally per pipeline within it, the actions read, add, update, delete, export
and import, each with a scope: none, own (assigned to me or created by me), department (assigned to or created by
someone of my department or the ones below it) or all. It may also forbid moving into a stage, and hide a field or
make it read-only. Several roles add up: the widest scope wins; a field stays hidden only if every role that can read
the type hides it. The built-in roles need no stored grants: admin and editor may do everything with elements,
viewer may read and export.

Reads compile the read scope into the SQL of the query (`read_groups`); writes check one element
(`TypeAccess.check`).
"""

from __future__ import annotations

import enum
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from app.auth.models import Role
from app.errors import FieldError, Forbidden, NotFound

ACTIONS: tuple[str, ...] = ("read", "add", "update", "delete", "export", "import")


class Scope(enum.StrEnum):
    none = "none"
    own = "own"
    department = "department"
    all = "all"


RANK = {Scope.none: 0, Scope.own: 1, Scope.department: 2, Scope.all: 3}
Actions = Mapping[str, Scope]
NOTHING: Actions = dict.fromkeys(ACTIONS, Scope.none)
EVERYTHING: Actions = dict.fromkeys(ACTIONS, Scope.all)
READ_ONLY: Actions = {**NOTHING, "read": Scope.all, "export": Scope.all}
BUILTIN_ACTIONS: dict[Role, Actions] = {Role.admin: EVERYTHING, Role.editor: EVERYTHING, Role.viewer: READ_ONLY}


def widest(scopes: Iterable[Scope]) -> Scope:
    return max(scopes, key=RANK.__getitem__, default=Scope.none)


class PermissionDenied(Forbidden):
    """An action the person may not take on something they can see: the answer names the missing permission."""

    slug = "permission-denied"

    def __init__(self, permission: str, detail: str) -> None:
        super().__init__(detail, errors=[FieldError("permission", permission)])
        self.permission = permission


@dataclass(frozen=True)
class TypeGrants:
    """One role's grants on one entity type."""

    actions: Actions
    pipelines: Mapping[uuid.UUID, Actions] = field(default_factory=dict)
    hidden: frozenset[str] = frozenset()
    read_only: frozenset[str] = frozenset()
    no_move_into: frozenset[uuid.UUID] = frozenset()

    def scope(self, action: str, pipeline_id: uuid.UUID | None) -> Scope:
        if pipeline_id is not None and pipeline_id in self.pipelines:
            return self.pipelines[pipeline_id][action]
        return self.actions[action]

    def any_scope(self, action: str) -> Scope:
        return widest([self.actions[action], *(p[action] for p in self.pipelines.values())])


@dataclass(frozen=True)
class RoleGrants:
    """A role as the permission check sees it: its level and its grants per type (the rest get `other_types`)."""

    id: uuid.UUID
    level: Role
    other_types: Actions
    types: Mapping[uuid.UUID, TypeGrants]
    # The role's name (rate limits may be set per role name: app.auth.ratelimit).
    name: str = ""

    def on(self, type_id: uuid.UUID) -> TypeGrants:
        return self.types.get(type_id) or TypeGrants(self.other_types)

    @classmethod
    def from_row(
        cls, role_id: uuid.UUID, level: Role, builtin: bool, permissions: Mapping[str, Any], name: str = ""
    ) -> RoleGrants:
        if builtin:
            return cls(role_id, level, BUILTIN_ACTIONS[level], {}, name or level.value)
        actions: dict[uuid.UUID, dict[str, Scope]] = {}
        pipelines: dict[uuid.UUID, dict[uuid.UUID, Actions]] = {}
        for grant in permissions.get("grants", []):
            type_id = uuid.UUID(grant["entity_type_id"])
            scopes = {action: Scope(grant.get(action, "none")) for action in ACTIONS}
            if grant.get("pipeline_id"):
                pipelines.setdefault(type_id, {})[uuid.UUID(grant["pipeline_id"])] = scopes
            else:
                actions[type_id] = scopes
        hidden: dict[uuid.UUID, set[str]] = {}
        read_only: dict[uuid.UUID, set[str]] = {}
        for rule in permissions.get("fields", []):
            target = hidden if rule["access"] == "hidden" else read_only
            target.setdefault(uuid.UUID(rule["entity_type_id"]), set()).add(rule["field"])
        no_move: dict[uuid.UUID, set[uuid.UUID]] = {}
        for rule in permissions.get("stages", []):
            if not rule.get("move_into", True):
                no_move.setdefault(uuid.UUID(rule["entity_type_id"]), set()).add(uuid.UUID(rule["stage_id"]))
        type_ids = set(actions) | set(pipelines) | set(hidden) | set(read_only) | set(no_move)
        types = {
            type_id: TypeGrants(
                actions.get(type_id, NOTHING),
                pipelines.get(type_id, {}),
                frozenset(hidden.get(type_id, ())),
                frozenset(read_only.get(type_id, ())),
                frozenset(no_move.get(type_id, ())),
            )
            for type_id in type_ids
        }
        return cls(role_id, level, NOTHING, types, name)


@dataclass(frozen=True)
class ReadGroup:
    """Elements readable with one scope: those in `pipeline_ids` (and, if `no_pipeline`, those in none)."""

    scope: Scope
    pipeline_ids: tuple[uuid.UUID, ...]
    no_pipeline: bool
    every_pipeline: bool


@dataclass(frozen=True)
class TypeAccess:
    """The merged grants of a person's roles on one type, and the checks that use them."""

    type_id: uuid.UUID
    type_code: str
    grants: TypeGrants
    owners: tuple[uuid.UUID, ...]
    department: tuple[uuid.UUID, ...]
    full: bool = False

    @property
    def hidden(self) -> frozenset[str]:
        return self.grants.hidden

    def scope(self, action: str, pipeline_id: uuid.UUID | None) -> Scope:
        return self.grants.scope(action, pipeline_id)

    def owner_ids(self, scope: Scope) -> tuple[uuid.UUID, ...] | None:
        """Whose elements a scope covers (assigned to or created by one of them); None for every element."""
        if scope is Scope.all:
            return None
        if scope is Scope.department:
            return self.department
        if scope is Scope.own:
            return self.owners
        return ()

    def covers(self, scope: Scope, assigned_to: uuid.UUID | None, created_by: uuid.UUID | None) -> bool:
        owners = self.owner_ids(scope)
        return owners is None or assigned_to in owners or created_by in owners

    def may(
        self, action: str, pipeline_id: uuid.UUID | None, assigned_to: uuid.UUID | None, created_by: uuid.UUID | None
    ) -> bool:
        return self.full or self.covers(self.scope(action, pipeline_id), assigned_to, created_by)

    def read_groups(self, pipeline_ids: Iterable[uuid.UUID], action: str = "read") -> list[ReadGroup] | None:
        """The scope of `action` (read, or export) as groups of pipelines, for the SQL of a list; None when it
        covers every element."""
        if self.full:
            return None
        by_scope: dict[Scope, list[uuid.UUID]] = {}
        for pipeline_id in pipeline_ids:
            by_scope.setdefault(self.scope(action, pipeline_id), []).append(pipeline_id)
        default = self.grants.actions[action]
        scopes = set(by_scope) | {default}
        if scopes == {Scope.all}:
            return None
        return [
            ReadGroup(
                scope,
                tuple(by_scope.get(scope, ())),
                no_pipeline=scope is default,
                every_pipeline=len(scopes) == 1,
            )
            for scope in sorted(scopes, key=RANK.__getitem__, reverse=True)
            if scope is not Scope.none
        ]

    def can_read_any(self, action: str = "read") -> bool:
        return self.full or RANK[self.grants.any_scope(action)] > 0

    def check(
        self,
        action: str,
        pipeline_id: uuid.UUID | None,
        assigned_to: uuid.UUID | None,
        created_by: uuid.UUID | None,
        *,
        element_id: uuid.UUID | None = None,
    ) -> None:
        """Refuse an action on one element: NotFound when it may not even be read, else PermissionDenied."""
        if self.full:
            return
        if element_id is not None and not self.may("read", pipeline_id, assigned_to, created_by):
            raise NotFound(f"Element {element_id} not found")
        if not self.may(action, pipeline_id, assigned_to, created_by):
            raise PermissionDenied(
                f"{self.type_code}.{action}",
                f"Your role does not allow `{action}` on this {self.type_code} element",
            )

    def check_add(self, pipeline_id: uuid.UUID | None, action: str = "add") -> None:
        """Adding (or importing) needs a scope other than none: the new element is created by the actor, so any scope
        covers it."""
        if not self.full and self.scope(action, pipeline_id) is Scope.none:
            raise PermissionDenied(
                f"{self.type_code}.{action}", f"Your role may not {action} {self.type_code} elements here"
            )

    def check_move_into(self, stage_id: uuid.UUID, stage_code: str) -> None:
        if not self.full and stage_id in self.grants.no_move_into:
            raise PermissionDenied(
                f"{self.type_code}.move_into.{stage_code}",
                f"Your role may not move elements into stage {stage_code!r}",
            )

    def check_fields(self, codes: Iterable[str]) -> None:
        """Refuse writing a hidden or read-only field."""
        if self.full:
            return
        refused = sorted(code for code in codes if code in self.grants.hidden or code in self.grants.read_only)
        if refused:
            raise PermissionDenied(
                f"{self.type_code}.fields.{refused[0]}.write",
                f"Your role may not change the field(s) {', '.join(refused)}",
            )


def merge(type_id: uuid.UUID, roles: Iterable[RoleGrants]) -> TypeGrants:
    """The grants of several roles on one type, added up."""
    parts = [role.on(type_id) for role in roles]
    if not parts:
        return TypeGrants(NOTHING)
    pipeline_ids = {p for part in parts for p in part.pipelines}
    actions = {a: widest(part.actions[a] for part in parts) for a in ACTIONS}
    pipelines = {p: {a: widest(part.scope(a, p) for part in parts) for a in ACTIONS} for p in pipeline_ids}
    readers = [part for part in parts if RANK[part.any_scope("read")] > 0] or parts
    writers = [part for part in parts if RANK[part.any_scope("update")] > 0] or parts
    hidden = frozenset.intersection(*(part.hidden for part in readers))
    read_only = frozenset.intersection(*(part.hidden | part.read_only for part in writers)) - hidden
    no_move = frozenset.intersection(*(part.no_move_into for part in writers))
    return TypeGrants(actions, pipelines, hidden, read_only, no_move)


@dataclass(frozen=True)
class Access:
    """Everything a person (or an API key) may do with elements, from all their roles."""

    roles: tuple[RoleGrants, ...]
    owners: tuple[uuid.UUID, ...] = ()
    department: tuple[uuid.UUID, ...] = ()
    _types: dict[uuid.UUID, TypeAccess] = field(default_factory=dict, compare=False, repr=False)

    @property
    def full(self) -> bool:
        return any(role.level is Role.admin for role in self.roles)

    @property
    def level(self) -> Role:
        levels = {role.level for role in self.roles}
        return next((level for level in (Role.admin, Role.editor) if level in levels), Role.viewer)

    def on(self, type_id: uuid.UUID, type_code: str) -> TypeAccess:
        known = self._types.get(type_id)
        if known is None:
            known = TypeAccess(
                type_id, type_code, merge(type_id, self.roles), self.owners, self.department, full=self.full
            )
            self._types[type_id] = known
        return known


def builtin_access(level: Role) -> Access:
    """Access for a built-in role with no stored row at hand (the system itself, tests of the pure logic)."""
    return Access((RoleGrants(uuid.UUID(int=0), level, BUILTIN_ACTIONS[level], {}),))
