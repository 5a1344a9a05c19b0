"""Runs a facade method (or a `batch` of them) for an actor: one transaction per method, every failure a
Bitrix24 error (`BitrixError`), never an exception of another kind."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.audit import service as audit
from app.auth.actor import Actor

# The method modules register their handlers when imported.
from app.bitrix import categories, events, history, items, types, userfields, users  # noqa: F401
from app.bitrix.common import METHODS, Answer, Call, Handler, to_flag
from app.bitrix.errors import BitrixError, from_domain, invalid, method_not_found
from app.bitrix.transport import Params, TransportError, as_map, param, parse_query, php_json, resolve_references
from app.db import database_unavailable, is_connection_lost
from app.errors import DomainError, from_database_error

logger = logging.getLogger("stageflow.bitrix")
READS = (".list", ".get", ".fields", ".getbyentitytypeid", ".search", ".items")
OBJECT_TYPES = {
    "crm.type": "entity_type",
    "crm.category": "pipeline",
    "crm.item": "element",
    "userfieldconfig": "field",
    "event": "webhook",
}
MAX_BATCH = 50
BATCH = "batch"


def method_name(raw: str) -> str:
    """Bitrix24 method names are matched in lower case, with or without `.json`."""
    name = raw.strip().lower()
    return name.removesuffix(".json")


@dataclass
class Timing:
    started: float = field(default_factory=time.time)
    finished: float = 0.0

    def stop(self) -> Timing:
        self.finished = time.time()
        return self

    def body(self) -> dict[str, Any]:
        finished = self.finished or time.time()
        duration = finished - self.started
        return {
            "start": self.started,
            "finish": finished,
            "duration": duration,
            "processing": duration,
            "date_start": datetime.fromtimestamp(self.started, UTC).isoformat(timespec="seconds"),
            "date_finish": datetime.fromtimestamp(finished, UTC).isoformat(timespec="seconds"),
            "operating": duration,
            "operating_reset_at": int(self.started) + 600,
        }


def failure(exc: BaseException, method: str) -> BitrixError:
    """Any failure of a method as a Bitrix24 error (logged when it is ours, not the caller's)."""
    if isinstance(exc, BitrixError):
        return exc
    if isinstance(exc, DomainError):
        return from_domain(exc)
    if isinstance(exc, ValidationError):
        problems = "; ".join(
            f"{'.'.join(str(part) for part in error['loc'])}: {error['msg']}" for error in exc.errors()[:10]
        )
        return invalid(problems or "invalid value")
    if isinstance(exc, TransportError):
        return invalid(str(exc))
    unavailable = database_unavailable(exc)
    if unavailable is not None:
        return from_domain(unavailable)
    if isinstance(exc, DBAPIError):
        refused = from_database_error(exc)
        if refused is not None:
            return from_domain(refused)
    # A bug: logged with its trace, and still a 4xx, since a 5xx makes Bitrix24 clients retry it for many seconds.
    logger.exception("bitrix facade method %s failed", method)
    return BitrixError("ERROR_UNEXPECTED", "The method failed unexpectedly; the failure is logged")


def _handler(raw_method: str) -> Handler:
    handler = METHODS.get(method_name(raw_method))
    if handler is None:
        raise method_not_found(raw_method)
    return handler


async def _handle(session: AsyncSession, actor: Actor, name: str, params: Params, endpoint: str) -> Answer:
    """Run a handler; a write adds its audit row to the same transaction, as every REST write does."""
    answer = await _handler(name)(Call(session=session, actor=actor, params=params, endpoint=endpoint))
    name = method_name(name)
    if not name.endswith(READS):
        family = name.rsplit(".", 1)[0]
        identifier = param(params, "id")
        change = audit.Change(
            action=f"bitrix {name}",
            object_type=OBJECT_TYPES.get(family, family),
            object_id=str(identifier)[:200] if isinstance(identifier, str | int) else None,
            details={"entityTypeId": str(param(params, "entityTypeId"))[:20]} if param(params, "entityTypeId") else {},
        )
        await audit.record(session, actor, None, change)
    return answer


async def run_method(
    sessionmaker: async_sessionmaker[AsyncSession], actor: Actor, raw_method: str, params: Params, endpoint: str = ""
) -> Answer:
    """One method in its own transaction, committed when it succeeds."""
    if method_name(raw_method) == BATCH:
        return await run_batch(sessionmaker, actor, params, endpoint)
    _handler(raw_method)
    try:
        async with sessionmaker() as session:
            try:
                answer = await _handle(session, actor, raw_method, params, endpoint)
                await session.commit()
            except BaseException:
                await session.rollback()
                raise
    except Exception as exc:
        raise failure(exc, method_name(raw_method)) from exc
    return answer


async def run_batch(
    sessionmaker: async_sessionmaker[AsyncSession], actor: Actor, params: Params, endpoint: str = ""
) -> Answer:
    """Up to 50 `method?query` commands in order; `$result[label][…]` refers to an earlier command's answer; `halt`
    stops at the first error. Over 50 runs none.

    The commands share one transaction, each in a savepoint: a failing command leaves nothing of itself and the others
    stand, as in Bitrix24, and the batch costs one commit rather than fifty.
    """
    commands = as_map(param(params, "cmd"))
    if not commands:
        raise BitrixError("ERROR_ARGUMENT", "cmd must be a non-empty map of label -> 'method?query'")
    if len(commands) > MAX_BATCH:
        raise BitrixError("ERROR_BATCH_LENGTH_EXCEEDED", f"Max batch length exceeded: at most {MAX_BATCH} commands")
    halt = to_flag(param(params, "halt") or 0, "halt")
    outputs: dict[str, dict[str, Any]] = {
        "result": {},
        "result_error": {},
        "result_total": {},
        "result_next": {},
        "result_time": {},
    }
    try:
        async with sessionmaker() as session:
            try:
                for label, command in commands.items():
                    timing = Timing()
                    try:
                        answer = await _run_command(session, actor, command, outputs, endpoint)
                    except BitrixError as error:
                        outputs["result_error"][label] = error.body()
                        outputs["result_time"][label] = timing.stop().body()
                        if halt:
                            break
                        continue
                    outputs["result"][label] = answer.result
                    if answer.total is not None:
                        outputs["result_total"][label] = answer.total
                    if answer.next is not None:
                        outputs["result_next"][label] = answer.next
                    outputs["result_time"][label] = timing.stop().body()
                await session.commit()
            except BaseException:
                await session.rollback()
                raise
    except Exception as exc:
        raise failure(exc, BATCH) from exc
    return Answer({key: php_json(value) for key, value in outputs.items()})


async def _run_command(
    session: AsyncSession, actor: Actor, command: Any, outputs: dict[str, dict[str, Any]], endpoint: str
) -> Answer:
    """One command of a batch in a savepoint of the batch's transaction; any failure is a BitrixError."""
    if not isinstance(command, str) or not command.strip():
        raise invalid("a batch command must be 'method?query'")
    raw_method, _, query = command.strip().partition("?")
    if method_name(raw_method) == BATCH:
        raise invalid("a batch cannot hold another batch")
    _handler(raw_method)
    try:
        params = resolve_references(parse_query(query), outputs)
    except (TransportError, UnicodeDecodeError) as exc:
        raise invalid(f"the command's query cannot be read: {exc}") from exc
    try:
        async with session.begin_nested():
            return await _handle(session, actor, raw_method, params, endpoint)
    except Exception as exc:
        if is_connection_lost(exc):
            raise  # the transaction is gone: the whole batch fails
        raise failure(exc, method_name(raw_method)) from exc
