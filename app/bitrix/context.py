"""One smart process as Bitrix24 numbers it: its pipelines (categories), stages (`DT{etid}_{cat}:CODE`), fields
(`UF_CRM_{etid}_NAME`, on items `ufCrm{etid}_Name`) and enum options, read once per call."""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, field

from app.bitrix import numbers
from app.bitrix.common import Call
from app.bitrix.errors import invalid
from app.bitrix.types import type_by_number
from app.elements.meta_cache import cached_type_meta
from app.entity_types.meta import FieldMeta, TypeMeta
from app.entity_types.models import FieldOption
from app.pipelines.models import Pipeline, Stage

STATUS_ID = re.compile(r"^DT(\d+)_(\d+):(.+)$")
SEMANTICS = {"process": None, "success": "S", "failure": "F"}
SEMANTIC_IDS = {"process": "P", "success": "S", "failure": "F"}


def uf_name(type_number: int, code: str) -> str:
    return f"UF_CRM_{type_number}_{code.upper()}"


def item_key(type_number: int, code: str) -> str:
    return f"ufCrm{type_number}_" + "".join(part.capitalize() for part in code.split("_") if part)


def loose(key: str) -> str:
    """A field name compared without case or underscores: `ufCrm128_MyField` = `UF_CRM_128_MY_FIELD`."""
    return key.replace("_", "").lower()


def code_of_uf(type_number: int, name: str) -> str:
    """A Stageflow field code from a Bitrix24 field name (`UF_CRM_128_COLOR` -> `color`)."""
    upper = name.strip().upper()
    for prefix in (f"UF_CRM_{type_number}_", "UF_CRM_", "UF_"):
        if upper.startswith(prefix):
            upper = upper[len(prefix) :]
            break
    code = upper.lower()
    return code if re.fullmatch(r"[a-z][a-z0-9_]{1,62}", code) else f"uf_{code}"[:63]


@dataclass
class FieldView:
    meta: FieldMeta
    uf_name: str
    item_key: str

    @property
    def code(self) -> str:
        return self.meta.row.code


@dataclass
class TypeContext:
    number: int
    meta: TypeMeta
    categories: dict[uuid.UUID, int]
    pipelines_by_number: dict[int, uuid.UUID]
    options: dict[uuid.UUID, int]
    options_by_number: dict[int, FieldOption]
    fields: dict[str, FieldView] = field(default_factory=dict)
    fields_by_loose_name: dict[str, FieldView] = field(default_factory=dict)

    def category_of(self, pipeline_id: uuid.UUID | None) -> int | None:
        return self.categories.get(pipeline_id) if pipeline_id else None

    def status_id(self, stage: Stage) -> str:
        return f"DT{self.number}_{self.categories[stage.pipeline_id]}:{stage.code}"

    def entity_id(self, pipeline_id: uuid.UUID) -> str:
        return f"DYNAMIC_{self.number}_STAGE_{self.categories[pipeline_id]}"

    def status_of(self, stage_id: uuid.UUID | str | None) -> str | None:
        if stage_id is None:
            return None
        stage = self.meta.stages.get(uuid.UUID(str(stage_id)))
        return self.status_id(stage) if stage else None

    def pipeline(self, category: int) -> Pipeline:
        pipeline_id = self.pipelines_by_number.get(category)
        if pipeline_id is None or pipeline_id not in self.meta.pipelines:
            raise invalid(f"category {category} is not a category of smart process {self.number}")
        return self.meta.pipelines[pipeline_id]

    def default_pipeline(self) -> Pipeline | None:
        return self.meta.default_pipeline()

    def stage(self, status_id: str, pipeline_id: uuid.UUID | None = None) -> Stage:
        """A stage from its STATUS_ID (`DT128_5:NEW`), or from its bare code within `pipeline_id` (or the
        default pipeline)."""
        text = str(status_id).strip()
        match = STATUS_ID.match(text)
        if match:
            if int(match.group(1)) != self.number:
                raise invalid(f"stage {text!r} is not a stage of smart process {self.number}")
            pipeline = self.pipeline(int(match.group(2)))
            code = match.group(3)
        else:
            found = self.meta.pipelines.get(pipeline_id) if pipeline_id else self.default_pipeline()
            if found is None:
                raise invalid(f"smart process {self.number} has no stages")
            pipeline, code = found, text
        stage = next((s for s in self.meta.stages_of(pipeline.id) if s.code == code), None)
        if stage is None:
            raise invalid(f"unknown stage {text!r}")
        return stage

    def field(self, key: str) -> FieldView | None:
        return self.fields_by_loose_name.get(loose(key))


async def type_context(call: Call, number: int) -> TypeContext:
    entity_type = await type_by_number(call, number)
    meta = await cached_type_meta(call.session, call.workspace_id, str(entity_type.id))
    categories = await numbers.numbers_of(call.session, call.workspace_id, numbers.CATEGORY, list(meta.pipelines))
    option_rows = [option for f in meta.fields.values() for option in f.options]
    options = await numbers.numbers_of(call.session, call.workspace_id, numbers.OPTION, [o.id for o in option_rows])
    context = TypeContext(
        number=number,
        meta=meta,
        categories=categories,
        pipelines_by_number={n: p for p, n in categories.items()},
        options=options,
        options_by_number={options[o.id]: o for o in option_rows},
    )
    for code, field_meta in meta.fields.items():
        view = FieldView(field_meta, uf_name(number, code), item_key(number, code))
        context.fields[code] = view
        context.fields_by_loose_name[loose(view.uf_name)] = view
        context.fields_by_loose_name[loose(view.item_key)] = view
    return context
