"""The Bitrix24-compatible REST facade: `/rest/{user_id}/{api_key}/{method}` (app/bitrix).

Not part of Stageflow's own API, so left out of the OpenAPI document (`include_in_schema=False`): its shapes are
Bitrix24's, documented by Bitrix24, and generated SDKs should not grow a second, foreign API. The API key in the
path is a Stageflow key; the user id before it is ignored (Bitrix24 webhooks carry the id of the user who made
them: here the key alone says who acts). Every answer is JSON, and every error Bitrix24's `{error,
error_description}` with a 4xx status.
"""

from __future__ import annotations

import logging
from http import HTTPStatus
from typing import Any

import orjson
from fastapi import APIRouter, Request, Response

from app.api.guards import JsonTooDeep
from app.api.rest.deps import admit, client_address
from app.auth import service as auth_service
from app.auth.actor import Actor
from app.bitrix.dispatcher import Timing, failure, run_method
from app.bitrix.errors import BitrixError, invalid
from app.bitrix.transport import MAX_DEPTH, Params, TransportError, depth, parse_query
from app.settings import Settings

router = APIRouter(include_in_schema=False)
logger = logging.getLogger("stageflow.bitrix")
MAX_BODY_BYTES = 8 * 1024 * 1024
FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")


def _json(body: dict[str, Any], status: int = HTTPStatus.OK) -> Response:
    # `default=str`: an id or a date a method left unconverted is still written, not a failed answer.
    return Response(orjson.dumps(body, default=str), status_code=status, media_type="application/json")


def error_response(error: BitrixError) -> Response:
    return _json(error.body(), error.status)


async def _params(request: Request) -> Params:
    """The query string's parameters, overlaid by the body's (JSON or form)."""
    params = parse_query(request.url.query) if request.url.query else {}
    try:
        raw = await request.body()
    except JsonTooDeep as exc:
        raise invalid(f"the body nests deeper than {exc.limit} levels") from exc
    if len(raw) > MAX_BODY_BYTES:
        raise BitrixError("INVALID_REQUEST", f"the body is larger than {MAX_BODY_BYTES} bytes")
    if not raw.strip():
        return params
    media = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media.startswith(FORM_TYPES[1]):
        raise BitrixError("INVALID_REQUEST", "send parameters as JSON, a form or a query string, not multipart")
    if media == FORM_TYPES[0]:
        body = parse_query(raw)
    else:
        try:
            decoded = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise BitrixError("INVALID_REQUEST", f"the body is not valid JSON: {exc}") from exc
        if not isinstance(decoded, dict):
            raise BitrixError("INVALID_REQUEST", "the JSON body must be an object of parameters")
        if depth(decoded) > MAX_DEPTH:
            raise invalid(f"the body nests deeper than {MAX_DEPTH} levels")
        body = decoded
    return {**params, **body}


async def _actor(request: Request, api_key: str) -> Actor:
    settings: Settings = request.app.state.settings
    async with request.app.state.sessionmaker() as session:
        actor = await auth_service.authenticate(
            session,
            f"Bearer {api_key}",
            touch_seconds=settings.API_KEY_TOUCH_SECONDS,
            tokens=None,  # a key only: a person's token does not go in a URL
            address=client_address(request),
        )
        await session.commit()
    await admit(request.app.state, actor)
    return actor


def _endpoint(request: Request) -> str:
    return f"{request.url.scheme}://{request.url.netloc}/rest/"


@router.api_route("/rest/{user_id}/{api_key}/{method}", methods=["GET", "POST"])
async def bitrix_call(request: Request, user_id: str, api_key: str, method: str) -> Response:
    timing = Timing()
    try:
        actor = await _actor(request, api_key)
        params = await _params(request)
        answer = await run_method(request.app.state.sessionmaker, actor, method, params, _endpoint(request))
        body: dict[str, Any] = {"result": answer.result}
        if answer.total is not None:
            body["total"] = answer.total
        if answer.next is not None:
            body["next"] = answer.next
        body["time"] = timing.stop().body()
        return _json(body)
    except BitrixError as error:
        return error_response(error)
    except (TransportError, UnicodeDecodeError) as exc:
        return error_response(BitrixError("INVALID_REQUEST", f"the parameters cannot be read: {exc}"))
    except Exception as exc:  # authentication, the rate limit, a bug: Bitrix24's shape all the same, never a 5xx
        return error_response(failure(exc, method))


@router.api_route("/rest/{user_id}/{api_key}/", methods=["GET", "POST"])
@router.api_route("/rest/{user_id}/{api_key}", methods=["GET", "POST"])
async def bitrix_no_method(user_id: str, api_key: str) -> Response:
    return error_response(
        BitrixError(
            "ERROR_METHOD_NOT_FOUND",
            "Call /rest/<user id>/<API key>/<method>, e.g. /rest/1/sf_…/crm.item.list",
            HTTPStatus.NOT_FOUND,
        )
    )
