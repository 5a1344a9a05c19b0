import uuid
from http import HTTPStatus
from typing import Annotated

from fastapi import Query, Response

from app.api.rest.common import READ_ERRORS, WRITE_ERRORS, make_router
from app.api.rest.deps import ActorDep, SessionDep
from app.automation import experiments, service
from app.automation.models import RunStatus
from app.automation.schemas import (
    ExperimentReport,
    RuleCreate,
    RuleList,
    RuleOrder,
    RuleRead,
    RuleUpdate,
    RunPage,
    RunRead,
    VariantPromote,
)
from app.webhooks import service as webhook_service
from app.webhooks.schemas import DeliveryList

router = make_router(tags=["automation"])


@router.post("/automation/rules", status_code=HTTPStatus.CREATED, responses=WRITE_ERRORS)
async def create_rule(data: RuleCreate, session: SessionDep, actor: ActorDep) -> RuleRead:
    return await service.create_rule(session, actor, data)


@router.get("/automation/rules", responses=READ_ERRORS)
async def list_rules(
    session: SessionDep,
    actor: ActorDep,
    entity_type: Annotated[str | None, Query(description="Only this type's rules (code or id)")] = None,
) -> RuleList:
    return await service.list_rules(session, actor, entity_type=entity_type)


@router.put("/automation/rules/order", responses=WRITE_ERRORS)
async def order_rules(data: RuleOrder, session: SessionDep, actor: ActorDep) -> RuleList:
    return await service.reorder_rules(session, actor, data)


@router.get("/automation/rules/{rule_id}", responses=READ_ERRORS)
async def get_rule(rule_id: uuid.UUID, session: SessionDep, actor: ActorDep) -> RuleRead:
    return await service.get_rule(session, actor, rule_id)


@router.patch("/automation/rules/{rule_id}", responses=WRITE_ERRORS)
async def update_rule(rule_id: uuid.UUID, data: RuleUpdate, session: SessionDep, actor: ActorDep) -> RuleRead:
    return await service.update_rule(session, actor, rule_id, data)


@router.post("/automation/rules/{rule_id}/enable", responses=WRITE_ERRORS)
async def enable_rule(rule_id: uuid.UUID, session: SessionDep, actor: ActorDep) -> RuleRead:
    return await service.set_enabled(session, actor, rule_id, enabled=True)


@router.post("/automation/rules/{rule_id}/disable", responses=WRITE_ERRORS)
async def disable_rule(rule_id: uuid.UUID, session: SessionDep, actor: ActorDep) -> RuleRead:
    return await service.set_enabled(session, actor, rule_id, enabled=False)


@router.post("/automation/rules/{rule_id}/rotate-hook", responses=WRITE_ERRORS)
async def rotate_rule_hook(rule_id: uuid.UUID, session: SessionDep, actor: ActorDep) -> RuleRead:
    """A new incoming URL for a `webhook.received` rule, in this answer only; the old URL stops working."""
    return await service.rotate_hook(session, actor, rule_id)


@router.get("/automation/rules/{rule_id}/experiment", responses=READ_ERRORS)
async def get_rule_experiment(rule_id: uuid.UUID, session: SessionDep, actor: ActorDep) -> ExperimentReport:
    """An A/B rule's variants compared: assigned elements, outcomes, rates with 95 % credible intervals, P(best).

    With `auto_promote` on, reading it also promotes a winner that is due (the worker checks every 5 minutes too)."""
    return await experiments.get_report(session, actor, rule_id)


@router.post("/automation/rules/{rule_id}/experiment/promote", responses=WRITE_ERRORS)
async def promote_rule_variant(
    rule_id: uuid.UUID, data: VariantPromote, session: SessionDep, actor: ActorDep
) -> ExperimentReport:
    """Make a variant's actions the rule's own and stop assigning variants (the report and assignments stay)."""
    return await experiments.promote(session, actor, rule_id, data)


@router.delete("/automation/rules/{rule_id}", status_code=HTTPStatus.NO_CONTENT, responses=WRITE_ERRORS)
async def delete_rule(rule_id: uuid.UUID, session: SessionDep, actor: ActorDep) -> Response:
    await service.delete_rule(session, actor, rule_id)
    return Response(status_code=HTTPStatus.NO_CONTENT)


@router.get("/automation/runs", responses=READ_ERRORS)
async def list_runs(
    session: SessionDep,
    actor: ActorDep,
    rule_id: uuid.UUID | None = None,
    element_id: uuid.UUID | None = None,
    status: RunStatus | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: str | None = None,
) -> RunPage:
    return await service.list_runs(
        session, actor, rule_id=rule_id, element_id=element_id, status=status, limit=limit, cursor=cursor
    )


@router.get("/automation/runs/{run_id}", responses=READ_ERRORS)
async def get_run(run_id: uuid.UUID, session: SessionDep, actor: ActorDep) -> RunRead:
    return await service.get_run(session, actor, run_id)


@router.get("/automation/runs/{run_id}/deliveries", responses=READ_ERRORS)
async def list_run_deliveries(run_id: uuid.UUID, session: SessionDep, actor: ActorDep) -> DeliveryList:
    await service.get_run(session, actor, run_id)
    return await webhook_service.list_run_deliveries(session, actor, run_id)


@router.post("/automation/runs/{run_id}/retry", responses=WRITE_ERRORS)
async def retry_run(run_id: uuid.UUID, session: SessionDep, actor: ActorDep) -> RunRead:
    return await service.retry_run(session, actor, run_id)
