import uuid
from http import HTTPStatus
from typing import Annotated, Any

import orjson
from fastapi import Request, Response

from app.api.rest.common import READ_ERRORS, WRITE_ERRORS, make_router
from app.api.rest.deps import ActorDep, SessionDep
from app.api.rest.problems import problem_responses
from app.automation import service as automation_service
from app.automation.schemas import HookAccepted
from app.errors import DomainError, FieldError, Invalid
from app.kit.jsonlimits import check_depth
from app.settings import Settings
from app.webhooks import service
from app.webhooks.schemas import (
    DeliveryList,
    DeliveryRead,
    SubscriptionCreate,
    SubscriptionCreated,
    SubscriptionList,
    SubscriptionRead,
    SubscriptionUpdate,
)

router = make_router(tags=["webhooks"])


class PayloadTooLarge(DomainError):
    status = HTTPStatus.REQUEST_ENTITY_TOO_LARGE
    slug = "payload-too-large"
    title = "Payload too large"


@router.post("/webhooks", status_code=HTTPStatus.CREATED, responses=WRITE_ERRORS)
async def create_webhook(data: SubscriptionCreate, session: SessionDep, actor: ActorDep) -> SubscriptionCreated:
    return await service.create_subscription(session, actor, data)


@router.get("/webhooks", responses=READ_ERRORS)
async def list_webhooks(session: SessionDep, actor: ActorDep) -> SubscriptionList:
    return await service.list_subscriptions(session, actor)


@router.get("/webhooks/{webhook_id}", responses=READ_ERRORS)
async def get_webhook(webhook_id: uuid.UUID, session: SessionDep, actor: ActorDep) -> SubscriptionRead:
    return await service.get_subscription(session, actor, webhook_id)


@router.patch("/webhooks/{webhook_id}", responses=WRITE_ERRORS)
async def update_webhook(
    webhook_id: uuid.UUID, data: SubscriptionUpdate, session: SessionDep, actor: ActorDep
) -> SubscriptionRead:
    return await service.update_subscription(session, actor, webhook_id, data)


@router.delete("/webhooks/{webhook_id}", status_code=HTTPStatus.NO_CONTENT, responses=WRITE_ERRORS)
async def delete_webhook(webhook_id: uuid.UUID, session: SessionDep, actor: ActorDep) -> Response:
    await service.delete_subscription(session, actor, webhook_id)
    return Response(status_code=HTTPStatus.NO_CONTENT)


@router.get("/webhooks/{webhook_id}/deliveries", responses=READ_ERRORS)
async def list_webhook_deliveries(webhook_id: uuid.UUID, session: SessionDep, actor: ActorDep) -> DeliveryList:
    return await service.list_deliveries(session, actor, webhook_id)


@router.post("/webhooks/{webhook_id}/deliveries/{delivery_id}/replay", responses=WRITE_ERRORS)
async def replay_webhook_delivery(
    webhook_id: uuid.UUID, delivery_id: uuid.UUID, session: SessionDep, actor: ActorDep
) -> DeliveryRead:
    return await service.replay_delivery(session, actor, webhook_id, delivery_id)


async def _limited_json(request: Request, limit: int) -> dict[str, Any]:
    """The body as a JSON object, refused with 413 past `limit` bytes (checked while reading, not only the header)."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"The body is over {limit} bytes")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"The body is over {limit} bytes")
        chunks.append(chunk)
    raw = b"".join(chunks)
    if not raw:
        return {}
    check_depth(raw, location="body")  # whatever its content type: it becomes trigger data that templates walk
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise Invalid("The body is not JSON", errors=[FieldError("body", str(exc))]) from exc
    if not isinstance(body, dict):
        raise Invalid("The body must be a JSON object", errors=[FieldError("body", "not an object")])
    return body


@router.post(
    "/hooks/{token}",
    status_code=HTTPStatus.ACCEPTED,
    responses=problem_responses(404, 413, 422),
    openapi_extra={"requestBody": {"content": {"application/json": {"schema": {"type": "object"}}}}},
)
async def receive_hook(
    token: Annotated[str, "The secret token of the rule's incoming URL"], request: Request, session: SessionDep
) -> HookAccepted:
    """An incoming webhook: fires the `webhook.received` rule with this token; the JSON body is the trigger data."""
    settings: Settings = request.app.state.settings
    body = await _limited_json(request, settings.INCOMING_WEBHOOK_MAX_BYTES)
    return HookAccepted(event_id=await automation_service.receive_hook(session, token, body))
