import uuid
from http import HTTPStatus

from fastapi import Body, Response

from app.api.rest.common import READ_ERRORS, WRITE_ERRORS, make_router
from app.api.rest.deps import ActorDep, SessionDep
from app.routing import service
from app.routing.schemas import (
    RouteDecision,
    RouteRequest,
    RoutingPolicyCreate,
    RoutingPolicyList,
    RoutingPolicyRead,
    RoutingPolicyUpdate,
)

router = make_router(tags=["routing"])


@router.post("/routing/policies", status_code=HTTPStatus.CREATED, responses=WRITE_ERRORS)
async def create_routing_policy(data: RoutingPolicyCreate, session: SessionDep, actor: ActorDep) -> RoutingPolicyRead:
    return await service.create_policy(session, actor, data)


@router.get("/routing/policies", responses=READ_ERRORS)
async def list_routing_policies(
    session: SessionDep, actor: ActorDep, entity_type: str | None = None
) -> RoutingPolicyList:
    return RoutingPolicyList(items=await service.list_policies(session, actor, entity_type=entity_type))


@router.get("/routing/policies/{policy_id}", responses=READ_ERRORS)
async def get_routing_policy(policy_id: uuid.UUID, session: SessionDep, actor: ActorDep) -> RoutingPolicyRead:
    return await service.get_policy(session, actor, policy_id)


@router.patch("/routing/policies/{policy_id}", responses=WRITE_ERRORS)
async def update_routing_policy(
    policy_id: uuid.UUID, data: RoutingPolicyUpdate, session: SessionDep, actor: ActorDep
) -> RoutingPolicyRead:
    return await service.update_policy(session, actor, policy_id, data)


@router.delete("/routing/policies/{policy_id}", status_code=HTTPStatus.NO_CONTENT, responses=WRITE_ERRORS)
async def delete_routing_policy(policy_id: uuid.UUID, session: SessionDep, actor: ActorDep) -> Response:
    await service.delete_policy(session, actor, policy_id)
    return Response(status_code=HTTPStatus.NO_CONTENT)


@router.post("/elements/{element_id}/route", responses=WRITE_ERRORS)
async def route_element(
    element_id: uuid.UUID, session: SessionDep, actor: ActorDep, data: RouteRequest | None = Body(default=None)
) -> RouteDecision:
    """Route one element by its score: tier, assignee by free capacity, priority, stage, script; see the timeline."""
    return await service.route_element(session, actor, element_id, policy_id=data.policy_id if data else None)
