import uuid
from http import HTTPStatus
from typing import Annotated

from fastapi import Query, Response

from app.api.rest.common import READ_ERRORS, WRITE_ERRORS, make_router
from app.api.rest.deps import ActorDep, SessionDep
from app.layouts import service
from app.layouts.schemas import CardRead, ElementCardRead, LayoutCreate, LayoutList, LayoutRead, LayoutUpdate

router = make_router(tags=["card layouts"])


@router.get("/entity-types/{type}/layouts", responses=READ_ERRORS)
async def list_layouts(type: str, session: SessionDep, actor: ActorDep) -> LayoutList:
    """The type's card layouts, oldest first."""
    return LayoutList(items=await service.list_layouts(session, actor, type))


@router.post("/entity-types/{type}/layouts", status_code=HTTPStatus.CREATED, responses=WRITE_ERRORS)
async def create_layout(type: str, data: LayoutCreate, session: SessionDep, actor: ActorDep) -> LayoutRead:
    """A layout for the type, optionally only for one pipeline and/or one role (one layout per such scope)."""
    return await service.create_layout(session, actor, type, data)


# Before `/layouts/{layout_id}`, which would take `effective` for an id.
@router.get("/entity-types/{type}/layouts/effective", responses=READ_ERRORS)
async def get_effective_layout(
    type: str,
    session: SessionDep,
    actor: ActorDep,
    pipeline_id: Annotated[uuid.UUID | None, Query(description="Resolve for elements of this pipeline")] = None,
) -> CardRead:
    """The card the caller gets for the type (and pipeline): the most specific layout, or a generated one."""
    return await service.effective_card(session, actor, type, pipeline_id)


@router.get("/entity-types/{type}/layouts/{layout_id}", responses=READ_ERRORS)
async def get_layout(type: str, layout_id: uuid.UUID, session: SessionDep, actor: ActorDep) -> LayoutRead:
    return await service.get_layout(session, actor, type, layout_id)


@router.patch("/entity-types/{type}/layouts/{layout_id}", responses=WRITE_ERRORS)
async def update_layout(
    type: str, layout_id: uuid.UUID, data: LayoutUpdate, session: SessionDep, actor: ActorDep
) -> LayoutRead:
    return await service.update_layout(session, actor, type, layout_id, data)


@router.delete("/entity-types/{type}/layouts/{layout_id}", status_code=HTTPStatus.NO_CONTENT, responses=WRITE_ERRORS)
async def delete_layout(type: str, layout_id: uuid.UUID, session: SessionDep, actor: ActorDep) -> Response:
    await service.delete_layout(session, actor, type, layout_id)
    return Response(status_code=HTTPStatus.NO_CONTENT)


@router.get("/elements/{element_id}/card", responses=READ_ERRORS)
async def get_element_card(element_id: uuid.UUID, session: SessionDep, actor: ActorDep) -> ElementCardRead:
    """The element's card with its values: its type's layout for its pipeline and the caller's roles."""
    return await service.get_element_card(session, actor, element_id)
