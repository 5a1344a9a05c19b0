"""The typed part of a workspace's schema, generated from its entity types and fields.

A type `dishwasher` with fields `model: string`, `capacity: integer` gives `Dishwasher { id title stage … model
capacity }`, `DishwasherFilter`, `DishwasherInput`, `DishwasherPatch`, `DishwasherConnection`, the queries
`dishwasher(id)` and `dishwashers(filter, sort, first, after)` and the mutations `createDishwasher`,
`updateDishwasher`, `moveDishwasher`.
Every resolver calls the same services as the generic schema.
"""

from __future__ import annotations

import enum
import re
import types
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import strawberry
from strawberry.types.base import StrawberryObjectDefinition
from strawberry.types.unset import UnsetType
from strawberry.utils.str_converters import to_camel_case

from app.api.graphql.context import Info
from app.api.graphql.errors import mutate, parse, plain
from app.api.graphql.files import File
from app.api.graphql.generic import list_page
from app.api.graphql.scalars import BIG_INT, BigInt
from app.api.graphql.types import Element as GenericElement
from app.api.graphql.types import PageInfo, check_first, connection, result
from app.elements import service as element_service
from app.elements.schemas import ElementCreate, ElementMove, ElementRead, ElementUpdate
from app.entity_types.meta import FieldMeta, TypeMeta
from app.errors import NotFound

UNSET: Any = strawberry.UNSET
SCALARS: dict[str, type] = {
    "string": str,
    "text": str,
    "email": str,
    "phone": str,
    "url": str,
    "enum": str,
    "integer": int,
    "decimal": float,
    "money": float,
    "boolean": bool,
    "date": date,
    "datetime": datetime,
    "user": uuid.UUID,
    "reference": uuid.UUID,
    "file": uuid.UUID,
}
INT32 = 2**31 - 1
GRAPHQL_NAME = re.compile(r"^[_A-Za-z][_0-9A-Za-z]*$")


def scalar_of(fm: FieldMeta) -> Any:
    """The GraphQL scalar of a custom field; integers are Int only when their min and max keep them in 32 bits."""
    if fm.row.type == "integer":
        low, high = fm.row.validation.get("min"), fm.row.validation.get("max")
        bounded = low is not None and high is not None and low >= -INT32 and high <= INT32
        return int if bounded else BigInt
    return SCALARS[fm.row.type]


ORDERED = ("eq", "ne", "lt", "lte", "gt", "gte", "in", "nin", "between", "is_null")
OPS: dict[type, tuple[str, ...]] = {
    str: ("eq", "ne", "lt", "lte", "gt", "gte", "in", "nin", "contains", "icontains", "starts_with", "is_null"),
    int: ORDERED,
    float: ORDERED,
    date: ORDERED,
    datetime: ORDERED,
    BigInt: ORDERED,
    bool: ("eq", "ne", "is_null"),
    uuid.UUID: ("eq", "ne", "in", "nin", "is_null"),
}
LIST_OPS = frozenset({"in", "nin", "between"})
# System fields a typed filter offers, with their scalar.
SYSTEM_FILTERS: dict[str, type] = {
    "id": uuid.UUID,
    "title": str,
    "stage_code": str,
    "pipeline_id": uuid.UUID,
    "stage_id": uuid.UUID,
    "assigned_to": uuid.UUID,
    "amount": float,
    "currency": str,
    "source": str,
    "score": int,
    "version": int,
    "begin_date": date,
    "close_date": date,
    "created_at": datetime,
    "updated_at": datetime,
    "moved_at": datetime,
}
CREATE_SYSTEM: dict[str, Any] = {
    "title": str | None,
    "pipeline_id": uuid.UUID | None,
    "stage_id": uuid.UUID | None,
    "stage_code": str | None,
    "assigned_to": uuid.UUID | None,
    "amount": Decimal | None,
    "currency": str | None,
    "source": str | None,
    "begin_date": date | None,
    "close_date": date | None,
}
PATCH_SYSTEM = {k: v for k, v in CREATE_SYSTEM.items() if k not in ("pipeline_id", "stage_id", "stage_code")}
SCALAR_NAMES = {str: "String", int: "Int", float: "Float", bool: "Boolean", date: "Date", datetime: "DateTime"}
SCALAR_NAMES[uuid.UUID] = "UUID"
SCALAR_NAMES[BigInt] = "BigInt"


def _new_class(name: str, namespace: dict[str, Any], bases: tuple[type, ...] = ()) -> type:
    return types.new_class(name, bases, {}, lambda ns: ns.update(namespace))


def _input(name: str, fields: dict[str, tuple[Any, str | None]], description: str | None = None) -> type:
    """An input type: python name -> (annotation, GraphQL name or None for the automatic one); all optional."""
    namespace: dict[str, Any] = {"__annotations__": {k: v for k, (v, _) in fields.items()}}
    for python_name, (_, graphql_name) in fields.items():
        namespace[python_name] = strawberry.field(default=UNSET, name=graphql_name)
    return strawberry.input(_new_class(name, namespace), name=name, description=description)


def _scalar_filter(scalar: type) -> type:
    fields: dict[str, tuple[Any, str | None]] = {}
    for op in OPS[scalar]:
        annotation: Any = bool | None if op == "is_null" else scalar | None
        if op in LIST_OPS:
            annotation = list[scalar] | None  # type: ignore[valid-type]
        fields[f"{op}_"] = (annotation, to_camel_case(op))
    return _input(
        f"{SCALAR_NAMES[scalar]}Filter", fields, f"Conditions on a {SCALAR_NAMES[scalar]} field (all must hold)"
    )


SCALAR_FILTERS: dict[type, type] = {scalar: _scalar_filter(scalar) for scalar in OPS}
# A file field is only tested for presence.
FILE_FILTER = _input("FileFilter", {"is_null_": (bool | None, "isNull")}, "Whether a file field holds a file")


def _json(value: Any) -> Any:
    if isinstance(value, list):
        return [_json(v) for v in value]
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, date | datetime):
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, Decimal):
        return float(value)
    return value


def _set(value: Any) -> bool:
    return value is not None and not isinstance(value, UnsetType)


@dataclass
class Names:
    """The GraphQL names generated for one entity type."""

    type: str
    single: str
    plural: str


def pascal(code: str) -> str:
    return "".join(part[:1].upper() + part[1:] for part in code.split("_") if part)


def plural(word: str) -> str:
    if word.endswith(("s", "x", "z", "ch", "sh")):
        return word + "es"
    if word.endswith("y") and word[-2:-1] not in ("a", "e", "i", "o", "u"):
        return word[:-1] + "ies"
    return word + "s"


@dataclass(frozen=True)
class CustomValue:
    """A custom field a typed node resolves from the element's `values` alone (no reference, no file)."""

    code: str
    convert: Callable[[Any], Any]  # the stored value as the node's resolver returns it (`_convert`)
    multiple: bool


@dataclass(frozen=True)
class TypedList:
    """One typed list query (`leads`): what app.api.graphql.compiled needs to answer it without executing it."""

    type_code: str
    node_type: str  # the GraphQL name of its node (`Lead`)
    values: dict[str, CustomValue]  # GraphQL field name -> the custom field behind it
    to_filter: Callable[[Any], dict[str, Any] | None]


@dataclass
class TypedPart:
    """What one entity type adds to the Query and the Mutation."""

    query: dict[str, Any] = field(default_factory=dict)
    mutation: dict[str, Any] = field(default_factory=dict)
    lists: dict[str, TypedList] = field(default_factory=dict)  # by the list query's GraphQL name


class TypedBuilder:
    def __init__(self, taken_types: set[str], taken_queries: set[str], taken_mutations: set[str]) -> None:
        # The shared filter inputs and scalars are not in the generic schema but are in every typed one.
        shared = {f"{name}Filter" for name in SCALAR_NAMES.values()} | set(SCALAR_NAMES.values()) | {"FileFilter"}
        self.taken_types = set(taken_types) | shared
        self.taken_queries = set(taken_queries)
        self.taken_mutations = set(taken_mutations)
        # Python and GraphQL names of the system fields (`assigned_to` is `assignedToId`, its user `assignedTo`).
        element = _definition(GenericElement).fields
        self.element_fields = {f.name for f in element} | {f.graphql_name or to_camel_case(f.name) for f in element}
        # Each type's names and its (not yet decorated) class, so reference fields can point at types built later.
        self.prepared: dict[str, tuple[Names, type]] = {}
        self.scalars: dict[str, Any] = {}  # the current type's field code -> GraphQL scalar or enum
        self.enum_filters: dict[Any, type] = {}

    def names(self, code: str) -> Names | None:
        """Free names for a type, or None when even the fallback ones are taken (the type is then left out)."""
        for suffix in ("", "Record"):
            base = pascal(code) + suffix
            single = to_camel_case(code) + suffix
            many = to_camel_case(code) + suffix + "s" if suffix else to_camel_case(plural(code))
            type_names = {base, *(base + s for s in ("Filter", "Input", "Patch", "Edge", "Connection", "Result"))}
            mutations = {f"{verb}{base}" for verb in ("create", "update", "move")}
            if (
                not type_names & self.taken_types
                and not {single, many} & self.taken_queries
                and not mutations & self.taken_mutations
            ):
                self.taken_types |= type_names
                self.taken_queries |= {single, many}
                self.taken_mutations |= mutations
                return Names(base, single, many)
        return None

    def field_names(self, codes: list[str]) -> dict[str, str]:
        """GraphQL names for custom fields: camelCase, clear of the system fields, and/or/not and each other."""
        taken = self.element_fields | {"and", "or", "not"}
        names: dict[str, str] = {}
        for code in codes:
            name = to_camel_case(code)
            if name in taken:
                name += "Field"
            base, n = name, 2
            while name in taken:
                name, n = f"{base}{n}", n + 1
            taken.add(name)
            names[code] = name
        return names

    def prepare(self, meta: TypeMeta) -> bool:
        """Reserve the type's names and create its class; False when its names are taken (it is left out)."""
        names = self.names(meta.code)
        if names is None:
            return False
        self.prepared[meta.code] = (names, _new_class(names.type, {"__annotations__": {}}, (GenericElement,)))
        return True

    def build(self, meta: TypeMeta) -> TypedPart | None:
        if meta.code not in self.prepared:
            return None
        names, _ = self.prepared[meta.code]
        graphql_names = self.field_names(list(meta.fields))
        custom = {code: (graphql_names[code], fm) for code, fm in meta.fields.items()}
        self.scalars = {code: self._scalar(names, code, fm) for code, fm in meta.fields.items()}
        node = self._node(names, meta, custom)
        edge = strawberry.type(
            _new_class(
                f"{names.type}Edge",
                {"__annotations__": {"node": node, "cursor": str}},
            ),
            name=f"{names.type}Edge",
        )
        conn = strawberry.type(
            _new_class(
                f"{names.type}Connection",
                {
                    "__annotations__": {"edges": list[edge], "page_info": PageInfo, "total_count": int | None},  # type: ignore[valid-type]
                    "total_count": None,
                },
            ),
            name=f"{names.type}Connection",
        )
        filter_input, to_filter = self._filter(names, custom)
        create_input = self._values_input(f"{names.type}Input", CREATE_SYSTEM, custom)
        patch_input = self._values_input(f"{names.type}Patch", PATCH_SYSTEM, custom)
        payload = result(f"{names.type}Result", node)
        part = TypedPart()
        part.query[f"t_{meta.code}_one"] = _one(meta.code, node, names.single)
        part.query[f"t_{meta.code}_many"] = _many(meta.code, names.plural, filter_input, to_filter, node, edge, conn)
        values = {
            name: CustomValue(code, _convert(self.scalars[code]), fm.row.multiple)
            for code, (name, fm) in custom.items()
            if fm.row.type not in ("reference", "file")
        }
        part.lists[names.plural] = TypedList(meta.code, names.type, values, to_filter)
        rename = _renamer({code: name for code, (name, _) in custom.items()})
        part.mutation[f"t_{meta.code}_create"] = _create(meta.code, names, create_input, node, payload, rename)
        part.mutation[f"t_{meta.code}_update"] = _update(meta.code, names, patch_input, node, payload, rename)
        part.mutation[f"t_{meta.code}_move"] = _move(meta.code, names, node, payload)
        return part

    def _scalar(self, names: Names, code: str, fm: FieldMeta) -> Any:
        """The field's scalar; an enum field whose options are all valid GraphQL names gets its own enum."""
        values = [o.value for o in fm.options]
        if fm.row.type != "enum" or not values or not all(_enum_value(v) for v in values):
            return scalar_of(fm)
        name = f"{names.type}{pascal(code)}"
        if {name, f"{name}Filter"} & self.taken_types:
            return scalar_of(fm)
        self.taken_types |= {name, f"{name}Filter"}
        enum_class = enum.Enum(name, {value: value for value in values})  # type: ignore[misc]
        labels = ", ".join(f"{o.value} ({o.label})" for o in fm.options if o.label and o.label != o.value)
        decorated: Any = strawberry.enum(
            enum_class, name=name, description=f"Options of {fm.row.label or code}. {labels}"
        )
        filter_fields: dict[str, tuple[Any, str | None]] = {
            "eq_": (decorated | None, "eq"),
            "ne_": (decorated | None, "ne"),
            "in_": (list[decorated] | None, "in"),
            "nin_": (list[decorated] | None, "nin"),
            "is_null_": (bool | None, "isNull"),
        }
        self.enum_filters[decorated] = _input(f"{name}Filter", filter_fields, f"Conditions on {name} (all must hold)")
        return decorated

    def _reference_field(self, code: str, graphql_name: str, fm: FieldMeta) -> Any:
        # The target's class exists already (prepare), decorated or not: by the time the schema is built, it is.
        target = self.prepared[fm.target_type_code][1] if fm.target_type_code in self.prepared else GenericElement
        graphql_type = list[target] | None if fm.row.multiple else target | None  # type: ignore[valid-type]
        description = f"{fm.row.label or code} (the `{fm.target_type_code}` element it refers to)"
        return strawberry.field(
            resolver=_reference_resolver(code, fm, target),
            name=graphql_name,
            description=description,
            graphql_type=graphql_type,
        )

    def _node(self, names: Names, meta: TypeMeta, custom: dict[str, tuple[str, FieldMeta]]) -> type:
        cls = self.prepared[meta.code][1]
        for code, (graphql_name, fm) in custom.items():
            python_name = f"f_{code}"
            if fm.row.type == "reference" and fm.target_type_code:
                setattr(cls, python_name, self._reference_field(code, graphql_name, fm))
                continue
            if fm.row.type == "file":
                setattr(cls, python_name, _file_field(code, graphql_name, fm))
                continue
            resolver = _value_resolver(code, fm, self.scalars[code])
            setattr(
                cls,
                python_name,
                strawberry.field(resolver=resolver, name=graphql_name, description=fm.row.label or None),
            )
            cls.__annotations__[python_name] = resolver.__annotations__["return"]
        description = f"An element of entity type `{meta.code}` ({meta.entity_type.title}) with its fields typed"
        return strawberry.type(cls, name=names.type, description=description)

    def _filter(
        self, names: Names, custom: dict[str, tuple[str, FieldMeta]]
    ) -> tuple[type, Callable[[Any], dict[str, Any] | None]]:
        filter_name = f"{names.type}Filter"
        fields: dict[str, tuple[Any, str | None]] = {}
        codes: dict[str, str] = {}
        for code, scalar in SYSTEM_FILTERS.items():
            fields[code] = (SCALAR_FILTERS[scalar] | None, None)
            codes[code] = code
        for code, (graphql_name, fm) in custom.items():
            scalar = self.scalars[code]
            filter_type = (
                FILE_FILTER if fm.row.type == "file" else self.enum_filters.get(scalar) or SCALAR_FILTERS[scalar]
            )
            fields[f"f_{code}"] = (filter_type | None, graphql_name)
            codes[f"f_{code}"] = code
        cls = _new_class(filter_name, {"__annotations__": {}})
        # The and/or/not members refer to the filter itself: annotate with the class before decorating it.
        fields["and_"] = (list[cls] | None, "and")  # type: ignore[valid-type]
        fields["or_"] = (list[cls] | None, "or")  # type: ignore[valid-type]
        fields["not_"] = (cls | None, "not")
        cls.__annotations__ = {k: v for k, (v, _) in fields.items()}
        for attribute, (_, alias) in fields.items():
            setattr(cls, attribute, strawberry.field(default=UNSET, name=alias))
        filter_type = strawberry.input(cls, name=filter_name, description="Every condition given must hold")

        return filter_type, FilterConverter(codes).convert

    def _values_input(self, name: str, system: dict[str, Any], custom: dict[str, tuple[str, FieldMeta]]) -> type:
        fields: dict[str, tuple[Any, str | None]] = {k: (v, None) for k, v in system.items()}
        for code, (graphql_name, fm) in custom.items():
            scalar: Any = self.scalars[code]
            fields[f"f_{code}"] = (list[scalar] | None if fm.row.multiple else scalar | None, graphql_name)
        return _input(name, fields)


OPS_FIELDS = sorted({f"{op}_" for ops in OPS.values() for op in ops})


class FilterConverter:
    """A typed filter input as the JSON filter language the services take."""

    def __init__(self, codes: dict[str, str]) -> None:
        self.codes = codes  # python attribute -> field code

    def _conditions(self, value: Any) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        for python_name, code in self.codes.items():
            conditions = getattr(value, python_name)
            if not _set(conditions):
                continue
            for op_field in OPS_FIELDS:
                operand = getattr(conditions, op_field, UNSET)
                if _set(operand):
                    items.append({"field": code, "op": op_field.rstrip("_"), "value": _json(operand)})
        return items

    def convert(self, value: Any) -> dict[str, Any] | None:
        if not _set(value):
            return None
        items = self._conditions(value)
        for key, python_name in (("and", "and_"), ("or", "or_")):
            nested = getattr(value, python_name)
            subs = [f for f in (self.convert(n) for n in nested) if f] if _set(nested) else []
            if subs:
                items.append({key: subs})
        inner = self.convert(value.not_)
        if inner:
            items.append({"not": inner})
        if not items:
            return None
        return items[0] if len(items) == 1 else {"and": items}


def _definition(cls: type) -> StrawberryObjectDefinition:
    definition: StrawberryObjectDefinition = cls.__strawberry_definition__  # type: ignore[attr-defined]
    return definition


def _enum_value(value: str) -> bool:
    """GraphQL enum values are names, and never true, false or null."""
    return bool(GRAPHQL_NAME.match(value)) and value not in ("true", "false", "null")


def _convert(scalar: Any) -> Callable[[Any], Any]:
    if isinstance(scalar, type) and issubclass(scalar, enum.Enum):
        members = {m.value: m for m in scalar}
        return lambda v: members.get(v)
    if scalar is date:
        return lambda v: date.fromisoformat(v) if isinstance(v, str) else v
    if scalar is datetime:
        return lambda v: datetime.fromisoformat(v) if isinstance(v, str) else v
    if scalar is uuid.UUID:
        return lambda v: uuid.UUID(str(v))
    if scalar is int or scalar is BigInt:
        return lambda v: int(v)
    if scalar is float:
        return lambda v: float(v)
    return lambda v: v


def _value_resolver(code: str, fm: FieldMeta, scalar: Any) -> Callable[..., Any]:
    convert = _convert(scalar)
    multiple = fm.row.multiple

    def resolve(root: Any) -> Any:
        raw = root.values.get(code)
        if raw is None:
            return None
        return [convert(v) for v in raw] if multiple else convert(raw)

    resolve.__annotations__ = {"return": list[scalar] | None if multiple else scalar | None}
    return resolve


def _reference_resolver(code: str, fm: FieldMeta, target: Any) -> Callable[..., Any]:
    target_code = fm.target_type_code or ""
    multiple = fm.row.multiple

    async def resolve(root: Any, info: Info) -> Any:
        raw = root.values.get(code)
        if raw is None:
            return None
        keys = [(target_code, uuid.UUID(str(item))) for item in (raw if multiple else [raw])]
        found = [target.from_read(e) for e in await info.context.loaders.element.load_many(keys) if e is not None]
        return found if multiple else (found[0] if found else None)

    resolve.__annotations__ = {"info": Info}
    return resolve


def _file_field(code: str, graphql_name: str, fm: FieldMeta) -> Any:
    """A file field's files with their metadata (inputs and filters take the ids)."""
    multiple = fm.row.multiple

    async def resolve(root: Any, info: Info) -> Any:
        raw = root.values.get(code)
        if raw is None:
            return None
        keys = [(root.id, uuid.UUID(str(item))) for item in (raw if multiple else [raw])]
        found = [File.from_read(f) for f in await info.context.loaders.file.load_many(keys) if f is not None]
        return found if multiple else (found[0] if found else None)

    resolve.__annotations__ = {"info": Info}
    return strawberry.field(
        resolver=resolve,
        name=graphql_name,
        description=f"{fm.row.label or code} (files: their ids in inputs)",
        graphql_type=list[File] | None if multiple else File | None,
    )


def _renamer(names: dict[str, str]) -> Callable[[str], str]:
    """Service paths (`values.capacity`) as the typed input names them (`capacity`)."""

    def rename(path: str) -> str:
        if path.startswith("values."):
            code = path.removeprefix("values.")
            return names.get(code, code)
        return to_camel_case(path)

    return rename


def _split_values(data: dict[str, Any]) -> dict[str, Any]:
    """A typed input as a service body: system fields as they are, custom ones into `values`."""
    body = {k: v for k, v in data.items() if not k.startswith("f_")}
    values = {k.removeprefix("f_"): _json(v) for k, v in data.items() if k.startswith("f_")}
    if values:
        body["values"] = values
    return body


async def _of_type(info: Info, type_code: str, element_id: uuid.UUID) -> ElementRead:
    element = await element_service.get_element(info.context.session, info.context.who, element_id)
    if element.entity_type != type_code:
        raise NotFound(f"Element {element_id} is not a {type_code}")
    return element


def _one(type_code: str, node: type, name: str) -> Any:
    async def resolve(info: Info, id: uuid.UUID) -> Any:
        return node.from_read(await _of_type(info, type_code, id))  # type: ignore[attr-defined]

    resolve.__annotations__ = {"info": Info, "id": uuid.UUID, "return": node}
    return strawberry.field(resolver=resolve, name=name, description=f"One `{type_code}` element")


def _many(
    type_code: str,
    name: str,
    filter_input: type,
    to_filter: Callable[[Any], Any],
    node: type,
    edge: type,
    conn: type,
) -> Any:
    async def resolve(
        info: Info, filter: Any = None, sort: str | None = None, first: int = 50, after: str | None = None
    ) -> Any:
        check_first(first)
        page = await list_page(info, type_code, filter=to_filter(filter), sort=sort, first=first, after=after)
        return connection(page, after, node=node, edge=edge, cls=conn)

    resolve.__annotations__ = {
        "info": Info,
        "filter": filter_input | None,
        "sort": str | None,
        "first": int,
        "after": str | None,
        "return": conn,
    }
    return strawberry.field(
        resolver=resolve, name=name, description=f"`{type_code}` elements, a page at a time (sort: `-code,created_at`)"
    )


def _create(
    type_code: str, names: Names, input_type: type, node: type, payload: Any, rename: Callable[[str], str]
) -> Any:
    async def resolve(info: Info, input: Any) -> Any:
        async def run() -> Any:
            data = parse(ElementCreate, _split_values(plain(input)))
            created = await element_service.create_element(info.context.session, info.context.who, type_code, data)
            return node.from_read(created)  # type: ignore[attr-defined]

        return await mutate(info, run, rename=rename)

    resolve.__annotations__ = {"info": Info, "input": input_type, "return": payload}
    return strawberry.mutation(resolver=resolve, name=f"create{names.type}")


def _update(
    type_code: str, names: Names, patch_type: type, node: type, payload: Any, rename: Callable[[str], str]
) -> Any:
    async def resolve(info: Info, id: uuid.UUID, input: Any, version: int | None = None) -> Any:
        async def run() -> Any:
            await _of_type(info, type_code, id)
            data = parse(ElementUpdate, {**_split_values(plain(input)), "version": version})
            updated = await element_service.update_element(info.context.session, info.context.who, id, data)
            return node.from_read(updated)  # type: ignore[attr-defined]

        return await mutate(info, run, rename=rename)

    resolve.__annotations__ = {
        "info": Info,
        "id": uuid.UUID,
        "input": patch_type,
        "version": int | None,
        "return": payload,
    }
    return strawberry.mutation(resolver=resolve, name=f"update{names.type}")


def _move(type_code: str, names: Names, node: type, payload: Any) -> Any:
    async def resolve(
        info: Info,
        id: uuid.UUID,
        stage_code: str | None = None,
        stage_id: uuid.UUID | None = None,
        pipeline_id: uuid.UUID | None = None,
        version: int | None = None,
    ) -> Any:
        async def run() -> Any:
            await _of_type(info, type_code, id)
            data = parse(
                ElementMove,
                {"stage_id": stage_id, "stage_code": stage_code, "pipeline_id": pipeline_id, "version": version},
            )
            moved = await element_service.move_element(info.context.session, info.context.who, id, data)
            return node.from_read(moved)  # type: ignore[attr-defined]

        return await mutate(info, run)

    resolve.__annotations__ = {
        "info": Info,
        "id": uuid.UUID,
        "stage_code": str | None,
        "stage_id": uuid.UUID | None,
        "pipeline_id": uuid.UUID | None,
        "version": int | None,
        "return": payload,
    }
    return strawberry.mutation(resolver=resolve, name=f"move{names.type}")


__all__ = ["BIG_INT", "BigInt", "TypedBuilder", "TypedPart"]
