"""DataLoaders, created once per request: every relation a query walks costs one batched call, not one per row."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Hashable, Sequence
from typing import Any, TypeVar

from sqlalchemy.ext.asyncio import AsyncSession
from strawberry.dataloader import DataLoader

from app.auth.actor import Actor
from app.elements import service as element_service
from app.elements.schemas import ElementRead
from app.entity_types import service as entity_type_service
from app.entity_types.meta import get_type_meta
from app.entity_types.schemas import FieldRead
from app.files import service as file_service
from app.files.schemas import FileRead
from app.layouts import service as layout_service
from app.layouts.service import CardSource
from app.pipelines import service as pipeline_service
from app.pipelines.schemas import PipelineRead, StageRead
from app.relations import service as relation_service
from app.relations.schemas import LinkDirection
from app.timeline import service as timeline_service
from app.timeline.models import TimelineEntry
from app.timeline.schemas import TimelinePage
from app.users import service as user_service
from app.users.schemas import UserRead

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")
LinkKey = tuple[uuid.UUID, LinkDirection, str | None, int]
ElementKey = tuple[str, uuid.UUID]  # (entity type code, element id)
HistoryKey = tuple[uuid.UUID, int]
FeedKey = tuple[uuid.UUID, tuple[str, ...] | None, int, str | None]  # (element id, kinds, first, after)
FileKey = tuple[uuid.UUID, uuid.UUID]  # (element id, file id)


def _by_key(load: Callable[[list[K]], Awaitable[dict[K, V]]]) -> Callable[[list[K]], Awaitable[list[V | None]]]:
    async def batch(keys: list[K]) -> list[V | None]:
        found = await load(keys)
        return [found.get(key) for key in keys]

    return batch


def _grouped(keys: Sequence[tuple[Any, ...]]) -> dict[tuple[Any, ...], list[uuid.UUID]]:
    """Group (id, *options) keys by their options so each group is one service call."""
    groups: dict[tuple[Any, ...], list[uuid.UUID]] = {}
    for key in keys:
        groups.setdefault(key[1:], []).append(key[0])
    return groups


class Loaders:
    def __init__(self, session: AsyncSession, actor: Actor) -> None:
        self.session = session
        self.actor = actor
        self.stage: DataLoader[uuid.UUID, StageRead | None] = DataLoader(_by_key(self._stages))
        self.pipeline: DataLoader[uuid.UUID, PipelineRead | None] = DataLoader(_by_key(self._pipelines))
        self.links: DataLoader[LinkKey, list[ElementRead] | None] = DataLoader(_by_key(self._links))
        self.history: DataLoader[HistoryKey, list[TimelineEntry] | None] = DataLoader(_by_key(self._history))
        self.feed: DataLoader[FeedKey, TimelinePage | None] = DataLoader(_by_key(self._feeds))
        self.user: DataLoader[uuid.UUID, UserRead | None] = DataLoader(_by_key(self._users))
        self.element: DataLoader[ElementKey, ElementRead | None] = DataLoader(_by_key(self._elements))
        self.fields_of_type: DataLoader[uuid.UUID, list[FieldRead] | None] = DataLoader(_by_key(self._fields))
        self.pipelines_of_type: DataLoader[uuid.UUID, list[PipelineRead] | None] = DataLoader(
            _by_key(self._type_pipelines)
        )
        # By type code: the type's metadata and card layouts, for every card of the request.
        self.card_source: DataLoader[str, CardSource | None] = DataLoader(_by_key(self._card_sources))
        self.file: DataLoader[FileKey, FileRead | None] = DataLoader(_by_key(self._files))

    async def _stages(self, ids: list[uuid.UUID]) -> dict[uuid.UUID, StageRead]:
        return {s.id: s for s in await pipeline_service.get_stages(self.session, self.actor, ids)}

    async def _pipelines(self, ids: list[uuid.UUID]) -> dict[uuid.UUID, PipelineRead]:
        return {p.id: p for p in await pipeline_service.get_pipelines(self.session, self.actor, ids)}

    async def _users(self, ids: list[uuid.UUID]) -> dict[uuid.UUID, UserRead]:
        return {u.id: u for u in await user_service.get_users(self.session, self.actor, ids)}

    async def _elements(self, keys: list[ElementKey]) -> dict[ElementKey, ElementRead]:
        out: dict[ElementKey, ElementRead] = {}
        for (type_code,), ids in _grouped([(element_id, code) for code, element_id in keys]).items():
            meta = await get_type_meta(self.session, self.actor.workspace_id, type_code)
            found = await element_service.get_elements(self.session, self.actor, meta, ids)
            out.update({(type_code, e.id): e for e in found})
        return out

    async def _fields(self, type_ids: list[uuid.UUID]) -> dict[uuid.UUID, list[FieldRead]]:
        return await entity_type_service.fields_by_type(self.session, self.actor, type_ids)

    async def _type_pipelines(self, type_ids: list[uuid.UUID]) -> dict[uuid.UUID, list[PipelineRead]]:
        return await pipeline_service.pipelines_by_type(self.session, self.actor, type_ids)

    async def _card_sources(self, type_codes: list[str]) -> dict[str, CardSource]:
        return await layout_service.card_sources(self.session, self.actor, type_codes)

    async def _files(self, keys: list[FileKey]) -> dict[FileKey, FileRead]:
        """Files of elements already read (typed file fields): each only with the element that holds it."""
        found = await file_service.get_files(self.session, self.actor, [file_id for _, file_id in keys])
        return {key: found[key[1]] for key in keys if key[1] in found and found[key[1]].element_id == key[0]}

    async def _links(self, keys: list[LinkKey]) -> dict[LinkKey, list[ElementRead]]:
        out: dict[LinkKey, list[ElementRead]] = {}
        for (direction, type_ref, limit), ids in _grouped(keys).items():
            found = await relation_service.linked_elements_many(
                self.session, self.actor, ids, direction=direction, type_ref=type_ref, limit=limit
            )
            out.update({(i, direction, type_ref, limit): items for i, items in found.items()})
        return out

    async def _feeds(self, keys: list[FeedKey]) -> dict[FeedKey, TimelinePage]:
        out: dict[FeedKey, TimelinePage] = {}
        for (kinds, limit, after), ids in _grouped(keys).items():
            found = await timeline_service.element_feeds(
                self.session, self.actor, ids, kinds=kinds, limit=limit, cursor=after
            )
            out.update({(i, kinds, limit, after): page for i, page in found.items()})
        return out

    async def _history(self, keys: list[HistoryKey]) -> dict[HistoryKey, list[TimelineEntry]]:
        out: dict[HistoryKey, list[TimelineEntry]] = {}
        for (limit,), ids in _grouped(keys).items():
            found = await timeline_service.element_timelines(self.session, self.actor, ids, limit=limit)
            out.update({(i, limit): entries for i, entries in found.items()})
        return out
