import uuid
from collections.abc import AsyncIterator
from http import HTTPStatus
from typing import Annotated

from fastapi import Query, Request, Response
from fastapi.responses import StreamingResponse

from app.api.rest.common import READ_ERRORS, SEARCH_ERRORS, WRITE_ERRORS, make_router
from app.api.rest.deps import (
    ActorDep,
    IfMatchDep,
    LeanActorDep,
    ReadConnectionDep,
    SessionDep,
    SessionmakerDep,
    json_body,
)
from app.api.rest.problems import problem_responses
from app.api.rest.routing import lean_read
from app.elements import export, reads, service
from app.elements.export import ExportFormat
from app.elements.schemas import (
    MAX_PAGE,
    ElementBatch,
    ElementBatchResult,
    ElementCreate,
    ElementMove,
    ElementPage,
    ElementRead,
    ElementSearch,
    ElementUpdate,
)
from app.entity_types.meta import TypeMeta
from app.kit.filters import decode_filter_json
from app.readmodel.reader import RawPage
from app.relations import service as relation_service
from app.relations.schemas import LinkCreate, LinkDirection, LinkedElements, LinkRead
from app.timeline import service as timeline_service
from app.timeline.schemas import MAX_FEED_KINDS, TimelineEntryRead, TimelineList, TimelinePage

router = make_router(tags=["elements"])
VERSIONED_WRITE_ERRORS = {**WRITE_ERRORS, **problem_responses(412)}
EXPORT_PAGE = 1000


@router.post("/entity-types/{type}/elements", status_code=HTTPStatus.CREATED, responses=WRITE_ERRORS)
async def create_element(type: str, data: ElementCreate, session: SessionDep, actor: ActorDep) -> ElementRead:
    return await service.create_element(session, actor, type, data)


@router.get("/entity-types/{type}/elements", response_model=ElementPage, responses=READ_ERRORS)
@lean_read
async def list_elements(
    type: str,
    connection: ReadConnectionDep,
    sessionmaker: SessionmakerDep,
    actor: LeanActorDep,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 50,
    cursor: str | None = None,
    sort: Annotated[str | None, Query(description="e.g. -budget,created_at", max_length=300)] = None,
    filter: Annotated[str | None, Query(description="A JSON filter (see the filter language)")] = None,
    with_total: bool = False,
    deleted: Annotated[bool, Query(description="List the recycle bin instead")] = False,
) -> Response:
    search = ElementSearch.model_construct(
        filter=decode_filter_json(filter), sort=sort, limit=limit, cursor=cursor, with_total=with_total, deleted=deleted
    )
    return json_body((await reads.list_page(connection, sessionmaker, actor, type, search)).body())


@router.get(
    "/entity-types/{type}/elements/export",
    responses={
        **READ_ERRORS,
        200: {"content": {"application/x-ndjson": {}, "text/csv": {}}, "description": "The elements, streamed"},
    },
    response_class=StreamingResponse,
)
@lean_read
async def export_elements(
    type: str,
    request: Request,
    sessionmaker: SessionmakerDep,
    actor: LeanActorDep,
    format: Annotated[ExportFormat, Query(description="ndjson: one element JSON per line; csv: a column per field")] = (
        "ndjson"
    ),
    sort: Annotated[str | None, Query(description="e.g. -budget,created_at", max_length=300)] = None,
    filter: Annotated[str | None, Query(description="A JSON filter (see the filter language)")] = None,
    deleted: Annotated[bool, Query(description="Export the recycle bin instead")] = False,
) -> StreamingResponse:
    """Every element you may export (your role's `export` scope) that matches, streamed; hidden fields left out."""
    search = ElementSearch.model_construct(
        filter=decode_filter_json(filter), sort=sort, limit=EXPORT_PAGE, cursor=None, with_total=False, deleted=deleted
    )
    pages = reads.export_pages(request.app.state.read_pool, sessionmaker, actor, type, search)
    first = await anext(pages)  # a bad filter or a missing permission is answered before the stream starts

    async def from_first() -> AsyncIterator[tuple[TypeMeta, RawPage]]:
        yield first
        async for page in pages:
            yield page

    return StreamingResponse(
        export.encode(from_first(), format),
        media_type=export.MEDIA_TYPES[format],
        headers={"Content-Disposition": f'attachment; filename="{first[0].code}.{format}"'},
    )


@router.post("/entity-types/{type}/elements/search", response_model=ElementPage, responses=SEARCH_ERRORS)
@lean_read
async def search_elements(
    type: str, search: ElementSearch, connection: ReadConnectionDep, sessionmaker: SessionmakerDep, actor: LeanActorDep
) -> Response:
    return json_body((await reads.list_page(connection, sessionmaker, actor, type, search)).body())


@router.post("/entity-types/{type}/elements/batch", responses=WRITE_ERRORS)
async def batch_elements(type: str, data: ElementBatch, session: SessionDep, actor: ActorDep) -> ElementBatchResult:
    return ElementBatchResult(items=await service.batch(session, actor, type, data))


@router.get("/elements/{element_id}", response_model=ElementRead, responses=READ_ERRORS)
@lean_read
async def get_element(element_id: uuid.UUID, connection: ReadConnectionDep, actor: LeanActorDep) -> Response:
    return json_body(await reads.get_json(connection, actor, element_id))


@router.patch("/elements/{element_id}", responses=VERSIONED_WRITE_ERRORS)
async def update_element(
    element_id: uuid.UUID, data: ElementUpdate, session: SessionDep, actor: ActorDep, if_match: IfMatchDep
) -> ElementRead:
    return await service.update_element(session, actor, element_id, data, if_match=if_match)


@router.delete("/elements/{element_id}", status_code=HTTPStatus.NO_CONTENT, responses=WRITE_ERRORS)
async def delete_element(element_id: uuid.UUID, session: SessionDep, actor: ActorDep) -> Response:
    await service.delete_element(session, actor, element_id)
    return Response(status_code=HTTPStatus.NO_CONTENT)


@router.post("/elements/{element_id}/restore", responses=WRITE_ERRORS)
async def restore_element(element_id: uuid.UUID, session: SessionDep, actor: ActorDep) -> ElementRead:
    return await service.restore_element(session, actor, element_id)


@router.post("/elements/{element_id}/move", responses=VERSIONED_WRITE_ERRORS)
async def move_element(
    element_id: uuid.UUID, data: ElementMove, session: SessionDep, actor: ActorDep, if_match: IfMatchDep
) -> ElementRead:
    return await service.move_element(session, actor, element_id, data, if_match=if_match)


@router.get("/elements/{element_id}/history", responses=READ_ERRORS)
async def get_element_history(
    element_id: uuid.UUID, session: SessionDep, actor: ActorDep, limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 100
) -> TimelineList:
    entries = await timeline_service.element_timeline(session, actor, element_id, limit=limit)
    return TimelineList(items=[TimelineEntryRead.model_validate(e) for e in entries])


@router.get("/elements/{element_id}/timeline", responses=READ_ERRORS)
async def get_element_timeline(
    element_id: uuid.UUID,
    session: SessionDep,
    actor: ActorDep,
    kind: Annotated[
        list[Annotated[str, Query(min_length=1, max_length=50)]] | None,
        Query(max_length=MAX_FEED_KINDS, description="Only these kinds (repeatable): `call`, `moved`, `comment`…"),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 50,
    cursor: Annotated[str | None, Query(max_length=500)] = None,
) -> TimelinePage:
    """The element's feed, newest first: its timeline entries (created, updated, moved, comments, automation runs…)
    and its activities (calls, meetings, e-mails, messages), paged by cursor."""
    return await timeline_service.element_feed(session, actor, element_id, kinds=kind, limit=limit, cursor=cursor)


@router.post("/elements/{element_id}/links", status_code=HTTPStatus.CREATED, responses=WRITE_ERRORS)
async def link_element(element_id: uuid.UUID, data: LinkCreate, session: SessionDep, actor: ActorDep) -> LinkRead:
    return await relation_service.link(session, actor, element_id, data.child_id)


@router.delete("/elements/{element_id}/links/{child_id}", status_code=HTTPStatus.NO_CONTENT, responses=WRITE_ERRORS)
async def unlink_element(element_id: uuid.UUID, child_id: uuid.UUID, session: SessionDep, actor: ActorDep) -> Response:
    await relation_service.unlink(session, actor, element_id, child_id)
    return Response(status_code=HTTPStatus.NO_CONTENT)


@router.get("/elements/{element_id}/links", responses=READ_ERRORS)
async def list_element_links(
    element_id: uuid.UUID,
    session: SessionDep,
    actor: ActorDep,
    direction: LinkDirection = "children",
    type: str | None = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 100,
) -> LinkedElements:
    items = await relation_service.linked_elements(
        session, actor, element_id, direction=direction, type_ref=type, limit=limit
    )
    return LinkedElements(items=items)
