"""Departments, workplaces and the audit log in GraphQL: thin resolvers over the services REST uses."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, TypeAlias

import strawberry
from strawberry.scalars import JSON

from app.api.graphql.context import Info
from app.api.graphql.errors import ErrorTypes, mutate, parse, plain
from app.api.graphql.types import Deleted, DeleteResult, PageInfo, check_first
from app.audit import service as audit_service
from app.audit.schemas import AuditEntryRead, AuditPage
from app.departments import service as department_service
from app.departments.schemas import DepartmentCreate, DepartmentRead, DepartmentUpdate
from app.workplaces import service as workplace_service
from app.workplaces.schemas import WorkplaceCreate, WorkplaceRead, WorkplaceUpdate

UNSET: Any = strawberry.UNSET
MAX_AUDIT_PAGE = 500


# --- departments ------------------------------------------------------------------------------------------------


@strawberry.type(description="A department of the tree; `department` scope covers it and everything below it")
class Department:
    id: uuid.UUID
    name: str
    parent_id: uuid.UUID | None
    depth: int = strawberry.field(description="0 for a root")
    path: list[str] = strawberry.field(description="The names from the root down to this department")
    user_count: int = strawberry.field(description="Users directly in this department")
    created_at: datetime
    updated_at: datetime

    @classmethod
    def from_read(cls, read: DepartmentRead) -> Department:
        return cls(**read.model_dump())


@strawberry.input
class DepartmentCreateInput:
    name: str
    parent_id: uuid.UUID | None = UNSET


@strawberry.input
class DepartmentUpdateInput:
    name: str | None = UNSET
    parent_id: uuid.UUID | None = strawberry.field(
        default=UNSET, description="Move under this department; null makes it a root"
    )


DepartmentResult: TypeAlias = Annotated[Department | ErrorTypes, strawberry.union("DepartmentResult")]


# --- workplaces -------------------------------------------------------------------------------------------------


@strawberry.type
class WorkplaceEntityType:
    id: uuid.UUID
    code: str
    title: str


@strawberry.type(description="A section of entity types for the roles that may see it: a frontend's menu")
class Workplace:
    id: uuid.UUID
    name: str
    description: str
    sort: int
    entity_types: list[WorkplaceEntityType] = strawberry.field(
        description="In menu order; for a reader, only the types their roles may read"
    )
    role_ids: list[uuid.UUID] = strawberry.field(description="Roles that see the workplace; empty: every role")
    created_at: datetime
    updated_at: datetime

    @classmethod
    def from_read(cls, read: WorkplaceRead) -> Workplace:
        data = read.model_dump(exclude={"entity_types"})
        return cls(**data, entity_types=[WorkplaceEntityType(**t.model_dump()) for t in read.entity_types])


@strawberry.input
class WorkplaceCreateInput:
    name: str
    description: str = ""
    sort: int = 0
    entity_types: list[str] = strawberry.field(default_factory=list, description="Type codes or ids, in menu order")
    role_ids: list[uuid.UUID] = strawberry.field(default_factory=list, description="Empty: every role")


@strawberry.input
class WorkplaceUpdateInput:
    name: str | None = UNSET
    description: str | None = UNSET
    sort: int | None = UNSET
    entity_types: list[str] | None = UNSET
    role_ids: list[uuid.UUID] | None = UNSET


WorkplaceResult: TypeAlias = Annotated[Workplace | ErrorTypes, strawberry.union("WorkplaceResult")]


# --- audit ------------------------------------------------------------------------------------------------------


@strawberry.type(description="One write that committed: who (person or key), from where, what and when")
class AuditEntry:
    id: uuid.UUID
    at: datetime
    user_id: uuid.UUID | None
    api_key_id: uuid.UUID | None
    address: str | None
    action: str = strawberry.field(description="`POST /api/v1/…` for REST, the mutation's name for GraphQL")
    object_type: str
    object_id: str | None
    element_id: uuid.UUID | None
    status: int
    details: JSON = strawberry.field(description="Path parameters and the names of the fields sent, never values")

    @classmethod
    def from_read(cls, read: AuditEntryRead) -> AuditEntry:
        return cls(**read.model_dump())


@strawberry.type(description="A page of the audit log, newest first; pass `pageInfo.endCursor` as `after`")
class AuditEntryConnection:
    nodes: list[AuditEntry]
    page_info: PageInfo

    @classmethod
    def from_page(cls, page: AuditPage, after: str | None) -> AuditEntryConnection:
        info = PageInfo(
            has_next_page=page.next_cursor is not None,
            has_previous_page=after is not None,
            start_cursor=None,
            end_cursor=page.next_cursor,
        )
        return cls(nodes=[AuditEntry.from_read(e) for e in page.items], page_info=info)


# --- the root fields ----------------------------------------------------------------------------------------------


@strawberry.type
class OrgQuery:
    @strawberry.field(description="Every department, in tree order (each parent before its sub-departments)")
    async def departments(self, info: Info) -> list[Department]:
        rows = await department_service.list_departments(info.context.session, info.context.who)
        return [Department.from_read(d) for d in rows]

    @strawberry.field
    async def department(self, info: Info, id: uuid.UUID) -> Department:
        return Department.from_read(await department_service.get_department(info.context.session, info.context.who, id))

    @strawberry.field(description="The workplaces your roles may see, each with the types you may read")
    async def workplaces(self, info: Info) -> list[Workplace]:
        rows = await workplace_service.list_workplaces(info.context.session, info.context.who)
        return [Workplace.from_read(w) for w in rows]

    @strawberry.field
    async def workplace(self, info: Info, id: uuid.UUID) -> Workplace:
        return Workplace.from_read(await workplace_service.get_workplace(info.context.session, info.context.who, id))

    @strawberry.field(description="Who changed what, when and from where, newest first (admins only)")
    async def audit_log(
        self,
        info: Info,
        element_id: uuid.UUID | None = None,
        user_id: uuid.UUID | None = None,
        api_key_id: uuid.UUID | None = None,
        action: str | None = None,
        object_type: str | None = None,
        since: Annotated[datetime | None, strawberry.argument(name="from", description="Inclusive")] = None,
        until: Annotated[datetime | None, strawberry.argument(name="to", description="Exclusive")] = None,
        first: int = 50,
        after: str | None = None,
    ) -> AuditEntryConnection:
        page = await audit_service.list_entries(
            info.context.session,
            info.context.who,
            element_id=element_id,
            user_id=user_id,
            api_key_id=api_key_id,
            action=action,
            object_type=object_type,
            since=since,
            until=until,
            limit=check_first(first, maximum=MAX_AUDIT_PAGE),
            cursor=after,
        )
        return AuditEntryConnection.from_page(page, after)


@strawberry.type
class OrgMutation:
    # --- departments ---

    @strawberry.mutation
    async def create_department(self, info: Info, input: DepartmentCreateInput) -> DepartmentResult:
        async def run() -> Department:
            data = parse(DepartmentCreate, plain(input))
            return Department.from_read(
                await department_service.create_department(info.context.session, info.context.who, data)
            )

        return await mutate(info, run)

    @strawberry.mutation(description="Rename or move; a move under itself or one of its sub-departments is refused")
    async def update_department(self, info: Info, id: uuid.UUID, input: DepartmentUpdateInput) -> DepartmentResult:
        async def run() -> Department:
            data = parse(DepartmentUpdate, plain(input))
            return Department.from_read(
                await department_service.update_department(info.context.session, info.context.who, id, data)
            )

        return await mutate(info, run)

    @strawberry.mutation(description="Refused (Conflict) while it has sub-departments or users")
    async def delete_department(self, info: Info, id: uuid.UUID) -> DeleteResult:
        async def run() -> Deleted:
            await department_service.delete_department(info.context.session, info.context.who, id)
            return Deleted(ref=str(id))

        return await mutate(info, run)

    # --- workplaces ---

    @strawberry.mutation
    async def create_workplace(self, info: Info, input: WorkplaceCreateInput) -> WorkplaceResult:
        async def run() -> Workplace:
            data = parse(WorkplaceCreate, plain(input))
            return Workplace.from_read(
                await workplace_service.create_workplace(info.context.session, info.context.who, data)
            )

        return await mutate(info, run)

    @strawberry.mutation
    async def update_workplace(self, info: Info, id: uuid.UUID, input: WorkplaceUpdateInput) -> WorkplaceResult:
        async def run() -> Workplace:
            data = parse(WorkplaceUpdate, plain(input))
            return Workplace.from_read(
                await workplace_service.update_workplace(info.context.session, info.context.who, id, data)
            )

        return await mutate(info, run)

    @strawberry.mutation
    async def delete_workplace(self, info: Info, id: uuid.UUID) -> DeleteResult:
        async def run() -> Deleted:
            await workplace_service.delete_workplace(info.context.session, info.context.who, id)
            return Deleted(ref=str(id))

        return await mutate(info, run)
