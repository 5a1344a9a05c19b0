"""The department tree: `department` scope covers a department and everything below it (app.access.permissions)."""

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from app.access.models import Department
from app.access.snapshot import access_changed
from app.auth.actor import Actor
from app.departments.schemas import DepartmentCreate, DepartmentRead, DepartmentUpdate
from app.errors import Conflict, FieldError, Invalid, NotFound
from app.kit.trees import subtree
from app.users.models import User

# Writes to one workspace's tree take turns: two concurrent moves could otherwise close a cycle between them.
TREE_LOCK_SQL = text("SELECT pg_advisory_xact_lock(hashtextextended('departments:' || CAST(:workspace AS text), 0))")


@dataclass
class Tree:
    rows: dict[uuid.UUID, Department]
    children: dict[uuid.UUID | None, list[Department]]
    users: dict[uuid.UUID, int]

    def below(self, department_id: uuid.UUID) -> set[uuid.UUID]:
        """The department and every one under it."""
        return subtree(department_id, lambda node: (child.id for child in self.children.get(node, ())))

    def walk(self) -> Iterator[tuple[Department, list[str]]]:
        """Tree order with each department's path of names; a row no root reaches (never written so) comes last."""
        seen: set[uuid.UUID] = set()
        stack: list[tuple[Department, list[str]]] = [(d, [d.name]) for d in reversed(self.children.get(None, []))]
        while stack:
            department, path = stack.pop()
            if department.id in seen:
                continue
            seen.add(department.id)
            yield department, path
            stack.extend((c, [*path, c.name]) for c in reversed(self.children.get(department.id, [])))
        for department in self.rows.values():
            if department.id not in seen:
                yield department, [department.name]

    def read(self, department: Department, path: list[str]) -> DepartmentRead:
        return DepartmentRead(
            id=department.id,
            name=department.name,
            parent_id=department.parent_id,
            depth=len(path) - 1,
            path=path,
            user_count=self.users.get(department.id, 0),
            created_at=department.created_at,
            updated_at=department.updated_at,
        )

    def read_one(self, department_id: uuid.UUID) -> DepartmentRead:
        path: list[str] = []
        node: uuid.UUID | None = department_id
        while node is not None and node in self.rows and len(path) <= len(self.rows):
            path.insert(0, self.rows[node].name)
            node = self.rows[node].parent_id
        return self.read(self.rows[department_id], path)


async def _tree(session: AsyncSession, workspace_id: uuid.UUID) -> Tree:
    """The workspace's whole tree and member counts: two queries, whatever its size."""
    rows = list(
        await session.scalars(
            select(Department).where(Department.workspace_id == workspace_id).order_by(Department.name, Department.id)
        )
    )
    children: dict[uuid.UUID | None, list[Department]] = {}
    for row in rows:
        children.setdefault(row.parent_id, []).append(row)
    counts = await session.execute(
        select(User.department_id, func.count())
        .where(User.workspace_id == workspace_id, User.department_id.is_not(None))
        .group_by(User.department_id)
    )
    users = {department_id: int(count) for department_id, count in counts if department_id is not None}
    return Tree({row.id: row for row in rows}, children, users)


async def _lock(session: AsyncSession, workspace_id: uuid.UUID) -> None:
    await session.execute(TREE_LOCK_SQL, {"workspace": str(workspace_id)})


def _found(tree: Tree, department_id: uuid.UUID) -> Department:
    department = tree.rows.get(department_id)
    if department is None:
        raise NotFound(f"Department {department_id} not found")
    return department


def _check_parent(tree: Tree, parent_id: uuid.UUID | None, moving: uuid.UUID | None = None) -> None:
    if parent_id is None:
        return
    if parent_id not in tree.rows:  # another workspace's department is not found either
        raise Invalid("Unknown parent", errors=[FieldError("parent_id", f"department {parent_id} not found")])
    if moving is not None and parent_id in tree.below(moving):
        raise Invalid(
            "A department cannot move under itself or one of its sub-departments",
            errors=[FieldError("parent_id", "is this department or one below it")],
        )


async def list_departments(session: AsyncSession, actor: Actor) -> list[DepartmentRead]:
    tree = await _tree(session, actor.workspace_id)
    return [tree.read(department, path) for department, path in tree.walk()]


async def get_department(session: AsyncSession, actor: Actor, department_id: uuid.UUID) -> DepartmentRead:
    tree = await _tree(session, actor.workspace_id)
    _found(tree, department_id)
    return tree.read_one(department_id)


async def create_department(session: AsyncSession, actor: Actor, data: DepartmentCreate) -> DepartmentRead:
    actor.ensure_admin()
    await _lock(session, actor.workspace_id)
    tree = await _tree(session, actor.workspace_id)
    _check_parent(tree, data.parent_id)
    now = datetime.now(UTC)
    department = Department(
        workspace_id=actor.workspace_id, name=data.name, parent_id=data.parent_id, created_at=now, updated_at=now
    )
    session.add(department)
    await session.flush()
    await access_changed(session, actor.workspace_id)
    tree.rows[department.id] = department
    return tree.read_one(department.id)


async def update_department(
    session: AsyncSession, actor: Actor, department_id: uuid.UUID, data: DepartmentUpdate
) -> DepartmentRead:
    actor.ensure_admin()
    await _lock(session, actor.workspace_id)
    tree = await _tree(session, actor.workspace_id)
    department = _found(tree, department_id)
    if data.name is not None:
        department.name = data.name
    if "parent_id" in data.model_fields_set and data.parent_id != department.parent_id:
        _check_parent(tree, data.parent_id, moving=department.id)
        department.parent_id = data.parent_id
    department.updated_at = datetime.now(UTC)
    await session.flush()
    await access_changed(session, actor.workspace_id)
    return tree.read_one(department.id)


async def delete_department(session: AsyncSession, actor: Actor, department_id: uuid.UUID) -> None:
    """Refused while sub-departments or users are in it: the tree never loses a branch by accident."""
    actor.ensure_admin()
    await _lock(session, actor.workspace_id)
    tree = await _tree(session, actor.workspace_id)
    department = _found(tree, department_id)
    children = len(tree.children.get(department.id, []))
    users = tree.users.get(department.id, 0)
    if children or users:
        held = [f"{children} sub-departments" if children else "", f"{users} users" if users else ""]
        raise Conflict(
            f"The department still has {' and '.join(h for h in held if h)}: "
            "move or delete the sub-departments and move the users to another department first"
        )
    await session.delete(department)
    await session.flush()
    await access_changed(session, actor.workspace_id)
