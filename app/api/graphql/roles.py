"""Roles in GraphQL: thin resolvers over app.access.service, as REST's `/roles` uses it."""

from __future__ import annotations

import enum
import uuid
from datetime import datetime
from typing import Annotated, Any, TypeAlias

import strawberry

from app.access import service as access_service
from app.access.permissions import Scope
from app.access.schemas import FieldRule, Grant, RoleCreate, RoleIds, RoleRead, RoleUpdate, StageRule
from app.api.graphql.context import Info
from app.api.graphql.errors import ErrorTypes, mutate, parse, plain
from app.api.graphql.people import UserResult
from app.api.graphql.types import Deleted, DeleteResult, User
from app.auth.models import Role as RoleLevelEnum
from app.users import service as user_service

UNSET: Any = strawberry.UNSET

AccessScope = strawberry.enum(Scope, name="AccessScope", description="Which elements an action covers")
RoleLevel = strawberry.enum(
    RoleLevelEnum,
    name="RoleLevel",
    description="What a role may do outside elements: admin manages keys, users and roles; editor changes "
    "configuration; viewer only reads it",
)


@strawberry.enum(name="FieldAccess")
class FieldAccess(enum.StrEnum):
    hidden = "hidden"
    read_only = "read_only"


@strawberry.type(description="The scope of each action on an entity type, or on one of its pipelines")
class RoleGrant:
    entity_type: str
    entity_type_id: uuid.UUID
    pipeline_id: uuid.UUID | None = strawberry.field(description="Set: the grant overrides the type's on this pipeline")
    read: AccessScope  # type: ignore[valid-type]
    add: AccessScope  # type: ignore[valid-type]
    update: AccessScope  # type: ignore[valid-type]
    delete: AccessScope  # type: ignore[valid-type]
    export: AccessScope  # type: ignore[valid-type]
    import_: AccessScope = strawberry.field(name="import")  # type: ignore[valid-type]

    @classmethod
    def from_read(cls, read: Grant) -> RoleGrant:
        return cls(**read.model_dump())


@strawberry.type
class RoleStageRule:
    entity_type_id: uuid.UUID
    stage_id: uuid.UUID
    move_into: bool = strawberry.field(description="Whether the role may move elements into the stage")

    @classmethod
    def from_read(cls, read: StageRule) -> RoleStageRule:
        return cls(**read.model_dump())


@strawberry.type
class RoleFieldRule:
    entity_type: str
    entity_type_id: uuid.UUID
    field: str
    access: FieldAccess

    @classmethod
    def from_read(cls, read: FieldRule) -> RoleFieldRule:
        return cls(**read.model_dump(exclude={"access"}), access=FieldAccess(read.access))


@strawberry.type(description="A named set of permissions; admin, editor and viewer are built in")
class Role:
    id: uuid.UUID
    name: str
    description: str
    builtin: bool
    level: RoleLevel  # type: ignore[valid-type]
    grants: list[RoleGrant]
    stage_rules: list[RoleStageRule]
    field_rules: list[RoleFieldRule]
    created_at: datetime
    updated_at: datetime

    @classmethod
    def from_read(cls, read: RoleRead) -> Role:
        data = read.model_dump(exclude={"grants", "stage_rules", "field_rules"})
        return cls(
            **data,
            grants=[RoleGrant.from_read(g) for g in read.grants],
            stage_rules=[RoleStageRule.from_read(r) for r in read.stage_rules],
            field_rules=[RoleFieldRule.from_read(r) for r in read.field_rules],
        )


@strawberry.input
class RoleGrantInput:
    entity_type: str = strawberry.field(description="The entity type's code or id")
    pipeline_id: uuid.UUID | None = strawberry.field(default=UNSET, description="Only this pipeline of the type")
    read: AccessScope = Scope.none  # type: ignore[valid-type]
    add: AccessScope = Scope.none  # type: ignore[valid-type]
    update: AccessScope = Scope.none  # type: ignore[valid-type]
    delete: AccessScope = Scope.none  # type: ignore[valid-type]
    export: AccessScope = Scope.none  # type: ignore[valid-type]
    import_: AccessScope = strawberry.field(default=Scope.none, name="import")  # type: ignore[valid-type]


@strawberry.input
class RoleStageRuleInput:
    stage_id: uuid.UUID
    move_into: bool = False


@strawberry.input
class RoleFieldRuleInput:
    entity_type: str
    field: str
    access: FieldAccess


@strawberry.input
class RoleCreateInput:
    name: str
    description: str = ""
    level: RoleLevel = RoleLevelEnum.viewer  # type: ignore[valid-type]
    grants: list[RoleGrantInput] = strawberry.field(default_factory=list)
    stage_rules: list[RoleStageRuleInput] = strawberry.field(default_factory=list)
    field_rules: list[RoleFieldRuleInput] = strawberry.field(default_factory=list)


@strawberry.input(description="What to change; lists given replace the stored ones")
class RoleUpdateInput:
    name: str | None = UNSET
    description: str | None = UNSET
    level: RoleLevel | None = UNSET  # type: ignore[valid-type]
    grants: list[RoleGrantInput] | None = UNSET
    stage_rules: list[RoleStageRuleInput] | None = UNSET
    field_rules: list[RoleFieldRuleInput] | None = UNSET


RoleResult: TypeAlias = Annotated[Role | ErrorTypes, strawberry.union("RoleResult")]


@strawberry.type
class RolesQuery:
    @strawberry.field(description="The workspace's roles, the built-in ones first (admins only)")
    async def roles(self, info: Info) -> list[Role]:
        return [Role.from_read(r) for r in await access_service.list_roles(info.context.session, info.context.who)]

    @strawberry.field
    async def role(self, info: Info, id: uuid.UUID) -> Role:
        return Role.from_read(await access_service.get_role(info.context.session, info.context.who, id))


@strawberry.type
class RolesMutation:
    @strawberry.mutation
    async def create_role(self, info: Info, input: RoleCreateInput) -> RoleResult:
        async def run() -> Role:
            data = parse(RoleCreate, plain(input))
            return Role.from_read(await access_service.create_role(info.context.session, info.context.who, data))

        return await mutate(info, run)

    @strawberry.mutation(description="Built-in roles are refused (Forbidden)")
    async def update_role(self, info: Info, id: uuid.UUID, input: RoleUpdateInput) -> RoleResult:
        async def run() -> Role:
            data = parse(RoleUpdate, plain(input))
            return Role.from_read(await access_service.update_role(info.context.session, info.context.who, id, data))

        return await mutate(info, run)

    @strawberry.mutation(description="Refused (Conflict) while an API key acts with the role; users holding it lose it")
    async def delete_role(self, info: Info, id: uuid.UUID) -> DeleteResult:
        async def run() -> Deleted:
            await access_service.delete_role(info.context.session, info.context.who, id)
            return Deleted(ref=str(id))

        return await mutate(info, run)

    @strawberry.mutation(description="Replace the roles a user holds")
    async def set_user_roles(self, info: Info, user_id: uuid.UUID, role_ids: list[uuid.UUID]) -> UserResult:
        async def run() -> User:
            data = parse(RoleIds, {"role_ids": role_ids})
            session, actor = info.context.session, info.context.who
            await access_service.set_roles_of_user(session, actor, user_id, data.role_ids)
            return User.from_read(await user_service.get_user(session, actor, user_id))

        return await mutate(info, run)
