import uuid
from http import HTTPStatus
from typing import Annotated

from fastapi import Query, Response

from app.analytics import alerts
from app.analytics.schemas import AlertCheck, AlertCreate, AlertEventList, AlertList, AlertRead, AlertUpdate
from app.api.rest.common import READ_ERRORS, WRITE_ERRORS, make_router
from app.api.rest.deps import ActorDep, SessionDep

router = make_router(tags=["alerts"])


@router.post("/alerts", status_code=HTTPStatus.CREATED, responses=WRITE_ERRORS)
async def create_alert(data: AlertCreate, session: SessionDep, actor: ActorDep) -> AlertRead:
    """A rule on a metric of a type's pipeline: a threshold (`{"kind": "threshold", "op": "lt", "value": 0.2}`) or an
    anomaly (`{"kind": "anomaly", "k": 3, "periods": 14}`: outside median ± k·MAD of the previous windows). The worker
    checks it every `check_every_minutes`; a breach fires once and resolves when the metric is back in band."""
    return await alerts.create_alert(session, actor, data)


@router.get("/alerts", responses=READ_ERRORS)
async def list_alerts(
    session: SessionDep, actor: ActorDep, entity_type: Annotated[str | None, Query(max_length=100)] = None
) -> AlertList:
    """The alerts of the pipelines whose every element the caller reads."""
    return await alerts.list_alerts(session, actor, entity_type=entity_type)


@router.get("/alerts/{alert_id}", responses=READ_ERRORS)
async def get_alert(alert_id: uuid.UUID, session: SessionDep, actor: ActorDep) -> AlertRead:
    return await alerts.get_alert(session, actor, alert_id)


@router.patch("/alerts/{alert_id}", responses=WRITE_ERRORS)
async def update_alert(alert_id: uuid.UUID, data: AlertUpdate, session: SessionDep, actor: ActorDep) -> AlertRead:
    """Change some fields; a new metric, stage, condition or window starts the alert afresh (`ok`, checked now)."""
    return await alerts.update_alert(session, actor, alert_id, data)


@router.delete("/alerts/{alert_id}", status_code=HTTPStatus.NO_CONTENT, responses=WRITE_ERRORS)
async def delete_alert(alert_id: uuid.UUID, session: SessionDep, actor: ActorDep) -> Response:
    await alerts.delete_alert(session, actor, alert_id)
    return Response(status_code=HTTPStatus.NO_CONTENT)


@router.get("/alerts/{alert_id}/events", responses=READ_ERRORS)
async def list_alert_events(
    alert_id: uuid.UUID, session: SessionDep, actor: ActorDep, limit: Annotated[int, Query(ge=1, le=500)] = 50
) -> AlertEventList:
    """The alert's history: each time it fired and resolved, newest first."""
    return await alerts.list_events(session, actor, alert_id, limit=limit)


@router.post("/alerts/{alert_id}/check", responses=WRITE_ERRORS)
async def check_alert(alert_id: uuid.UUID, session: SessionDep, actor: ActorDep) -> AlertCheck:
    """Check the alert now, as the worker would: the value, the band, and the state change it made (if any)."""
    return await alerts.check_alert(session, actor, alert_id)
