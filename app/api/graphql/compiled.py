"""The common typed list query answered without executing it: the same page, the same JSON, a fraction of the CPU.

`{ leads(filter: …, sort: …, first: …, after: …) { edges { cursor node { id title budget stage { code } } }
pageInfo { … } totalCount } }` costs graphql-core ~400 field resolutions and as many Strawberry objects. Such an
operation is compiled once per (workspace schema, document, operation name) into a plan: for each requested value,
where it is in the page's rows and how its GraphQL type serialises it. A request then reads the page the resolver
would (`element_service.list_element_rows`, the same statement, access scope and cursors) and writes `{"data": …}`.

Only what the plan knows is answered so: one query field, a typed list, with aliases, variables and `__typename`,
and of its nodes the system scalars, the custom fields that are not references or files, and `stage`'s scalars.
Anything else (fragments, directives, other fields, several root fields, mutations) is not compiled, and anything
that would be an error (bad variables, a refused filter, a value its type cannot serialise, a stage not among the
type's) falls back to normal execution, which gives the answer and the errors it always gave.
"""

from __future__ import annotations

import logging
import uuid
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from typing import TYPE_CHECKING, Any

import orjson
from graphql import (
    DocumentNode,
    FieldNode,
    GraphQLEnumType,
    GraphQLError,
    GraphQLField,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLOutputType,
    GraphQLScalarType,
    OperationDefinitionNode,
    OperationType,
    SelectionSetNode,
    get_named_type,
    parse,
    specified_rules,
)
from graphql.execution.values import get_argument_values, get_variable_values
from strawberry.schema.schema import validate_document
from strawberry.types.arguments import convert_arguments
from strawberry.types.base import StrawberryObjectDefinition
from strawberry.types.field import StrawberryField

from app.api.graphql.context import Context
from app.api.graphql.errors import parse as parse_input
from app.api.graphql.limits import Coster, validation_rules
from app.api.graphql.typed import CustomValue, TypedList
from app.api.graphql.types import Stage, check_first
from app.elements import service as element_service
from app.elements.schemas import ElementRead, ElementSearch
from app.errors import DomainError
from app.readmodel.reader import RawPage

if TYPE_CHECKING:
    from app.api.graphql.schema import StageflowSchema

logger = logging.getLogger("stageflow.graphql")
MAX_PLANS = 256  # documents per workspace schema; a client repeats a few
TYPENAME = "__typename"
# How ElementRead reads a system field from the row's JSON (what the normal path's pydantic parse gives).
READ_AS: dict[Any, Callable[[Any], Any]] = {
    uuid.UUID: uuid.UUID,
    float: float,
    date: date.fromisoformat,
    datetime: datetime.fromisoformat,
}

Row = dict[str, Any]
Serialize = Callable[[Any], Any]


class Fallback(Exception):
    """This request's answer needs normal execution (an error to report, or a value the plan cannot produce)."""


class NotCompiled(Exception):
    """The document is not one the fast path answers."""


@dataclass
class Page:
    """What one request's plan writes from: the page's rows (parsed), their cursors and the type's stages."""

    rows: list[Row]
    source: RawPage  # the page as read; its cursors are built only when the document asks for them
    after: str | None
    stages: dict[uuid.UUID, Any]
    stage_json: dict[str, dict[str, Any]]  # a stage's selected fields, by its id as the rows give it

    @property
    def cursors(self) -> list[str]:
        return self.source.cursors

    @property
    def next_cursor(self) -> str | None:
        return self.source.next_cursor

    @property
    def total(self) -> int | None:
        return self.source.total


Writer = Callable[[Page, int], Any]  # (page, index of the row) -> a JSON value


def serializer(output_type: GraphQLOutputType) -> Serialize:
    """A value as graphql-core completes it for `output_type`; Fallback where it would report an error."""
    if isinstance(output_type, GraphQLNonNull):
        inner = serializer(output_type.of_type)

        def non_null(value: Any) -> Any:
            if value is None:
                raise Fallback
            return inner(value)

        return non_null
    if isinstance(output_type, GraphQLList):
        item = serializer(output_type.of_type)
        return lambda value: None if value is None else [item(v) for v in value]
    leaf = get_named_type(output_type)
    if not isinstance(leaf, GraphQLScalarType | GraphQLEnumType):
        raise NotCompiled
    serialize = leaf.serialize

    def scalar(value: Any) -> Any:
        if value is None:
            return None
        try:
            result = serialize(value)
        except Exception as exc:
            raise Fallback from exc
        if result is None:
            raise Fallback
        return result

    return scalar


@dataclass(frozen=True)
class Plan:
    operation: OperationDefinitionNode
    field_node: FieldNode
    field_def: GraphQLField
    resolver_field: StrawberryField
    typed: TypedList
    response_key: str
    with_total: bool
    write: Callable[[Page], dict[str, Any]]


class Compiler:
    """One document against one workspace schema: a Plan, or NotCompiled."""

    def __init__(self, schema: StageflowSchema) -> None:
        self.schema = schema
        self.graphql_schema = schema._schema
        self.names = schema.config.name_converter

    def compile(self, document: DocumentNode, operation_name: str | None) -> Plan:
        operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
        if len(operations) != len(document.definitions):
            raise NotCompiled  # fragment definitions
        if operation_name is not None:
            operations = [o for o in operations if o.name is not None and o.name.value == operation_name]
        if len(operations) != 1 or operations[0].operation is not OperationType.QUERY or operations[0].directives:
            raise NotCompiled
        operation = operations[0]
        selections = operation.selection_set.selections
        if len(selections) != 1 or not isinstance(selections[0], FieldNode):
            raise NotCompiled
        node = self._plain(selections[0])
        typed = self.schema.typed_lists.get(node.name.value)
        query_type = self.graphql_schema.query_type
        if typed is None or query_type is None:
            raise NotCompiled
        connection_type = get_named_type(query_type.fields[node.name.value].type)
        assert isinstance(connection_type, GraphQLObjectType)  # noqa: S101 (a typed list returns a connection)
        write, with_total = self._connection(node.selection_set, connection_type, typed)
        key = _key(node)
        return Plan(
            operation=operation,
            field_node=node,
            field_def=query_type.fields[node.name.value],
            resolver_field=self._strawberry_field("Query", node.name.value),
            typed=typed,
            response_key=key,
            with_total=with_total,
            write=lambda page: {key: write(page, 0)},
        )

    def _strawberry_field(self, type_name: str, graphql_name: str) -> StrawberryField:
        definition = self.schema.get_type_by_name(type_name)
        if not isinstance(definition, StrawberryObjectDefinition):
            raise NotCompiled
        for candidate in definition.fields:
            if self.names.get_graphql_name(candidate) == graphql_name:
                return candidate
        raise NotCompiled

    def _plain(self, node: Any) -> FieldNode:
        """A field with no directive (fragments and inline fragments are not compiled)."""
        if not isinstance(node, FieldNode) or node.directives:
            raise NotCompiled
        return node

    def _fields(self, selection_set: SelectionSetNode | None) -> list[FieldNode]:
        """The selected fields, each response key once (a key selected twice merges selections: not compiled)."""
        if selection_set is None:
            raise NotCompiled
        fields = [self._plain(s) for s in selection_set.selections]
        if len({_key(f) for f in fields}) != len(fields):
            raise NotCompiled
        return fields

    def _object(self, selection_set: SelectionSetNode | None, type_name: str, members: dict[str, Writer]) -> Writer:
        """An object of `type_name` whose selectable fields are `members` (by GraphQL name)."""
        writers: list[tuple[str, Writer]] = []
        for field_node in self._fields(selection_set):
            name = field_node.name.value
            if name == TYPENAME:
                writers.append((_key(field_node), lambda page, i: type_name))
            elif name in members and not field_node.arguments:
                writers.append((_key(field_node), members[name]))
            else:
                raise NotCompiled
        return lambda page, i: {key: write(page, i) for key, write in writers}

    def _connection(
        self, selection_set: SelectionSetNode | None, connection_type: GraphQLObjectType, typed: TypedList
    ) -> tuple[Writer, bool]:
        fields = self._fields(selection_set)
        edge_type = get_named_type(connection_type.fields["edges"].type)
        edges_selection = next((f.selection_set for f in fields if f.name.value == "edges"), None)
        info_selection = next((f.selection_set for f in fields if f.name.value == "pageInfo"), None)
        members: dict[str, Writer] = {"totalCount": lambda page, i: page.total}
        if edges_selection is not None:
            edge = self._edge(edges_selection, edge_type.name, typed)
            members["edges"] = lambda page, i: [edge(page, n) for n in range(len(page.rows))]
        if info_selection is not None:
            members["pageInfo"] = self._object(info_selection, "PageInfo", PAGE_INFO)
        with_total = any(f.name.value == "totalCount" for f in fields)
        return self._object(selection_set, connection_type.name, members), with_total

    def _edge(self, selection_set: SelectionSetNode, edge_name: str, typed: TypedList) -> Writer:
        node_selection = next((f.selection_set for f in self._fields(selection_set) if f.name.value == "node"), None)
        members: dict[str, Writer] = {"cursor": lambda page, i: page.cursors[i]}
        if node_selection is not None:
            members["node"] = self._node(node_selection, typed)
        return self._object(selection_set, edge_name, members)

    def _node(self, selection_set: SelectionSetNode, typed: TypedList) -> Writer:
        node_type = self.graphql_schema.get_type(typed.node_type)
        definition = self.schema.get_type_by_name(typed.node_type)
        if not isinstance(node_type, GraphQLObjectType) or not isinstance(definition, StrawberryObjectDefinition):
            raise NotCompiled
        python_names = {self.names.get_graphql_name(f): f for f in definition.fields}
        members: dict[str, Writer] = {}
        for field_node in self._fields(selection_set):
            name = field_node.name.value
            if name == TYPENAME or name in members:
                continue
            field = python_names.get(name)
            if field is None:
                raise NotCompiled
            if field.python_name == "stage":
                members[name] = self._stage(field_node.selection_set)
            elif name in typed.values:
                members[name] = _custom(typed.values[name], serializer(node_type.fields[name].type))
            elif field.base_resolver is None and field.python_name in ElementRead.model_fields:
                members[name] = _system(field.python_name, serializer(node_type.fields[name].type))
            else:
                raise NotCompiled
        return self._object(selection_set, typed.node_type, members)

    def _stage(self, selection_set: SelectionSetNode | None) -> Writer:
        stage_type = self.graphql_schema.get_type("Stage")
        definition = self.schema.get_type_by_name("Stage")
        if not isinstance(stage_type, GraphQLObjectType) or not isinstance(definition, StrawberryObjectDefinition):
            raise NotCompiled
        by_name = {self.names.get_graphql_name(f): f for f in definition.fields}
        attributes: list[tuple[str, Callable[[Stage], Any]]] = []  # response key, its value of a Stage
        for field_node in self._fields(selection_set):
            name = field_node.name.value
            if name == TYPENAME:
                attributes.append((_key(field_node), lambda _: "Stage"))
                continue
            field = by_name.get(name)
            if field is None or field.base_resolver is not None or field_node.arguments:
                raise NotCompiled
            attributes.append((_key(field_node), _attribute(field.python_name, stage_type.fields[name].type)))

        # A stage's JSON, kept while the type's metadata (immutable, per version) holds the same stage object.
        written: dict[uuid.UUID, tuple[Any, dict[str, Any]]] = {}

        def stage_of(page: Page, i: int) -> Any:
            stage_id = page.rows[i]["stage_id"]
            if stage_id is None:
                return None
            known = page.stage_json.get(stage_id)
            if known is None:
                key = uuid.UUID(stage_id)
                read = page.stages.get(key)
                if read is None:
                    raise Fallback  # not one of the type's stages: the normal path's DataLoader finds it
                cached = written.get(key)
                if cached is None or cached[0] is not read:
                    stage = Stage.from_read(read)
                    cached = written[key] = (read, {name: value(stage) for name, value in attributes})
                known = page.stage_json[stage_id] = cached[1]
            return known

        return stage_of


def _key(node: FieldNode) -> str:
    return node.alias.value if node.alias else node.name.value


def _attribute(python_name: str, output_type: GraphQLOutputType) -> Callable[[Any], Any]:
    serialize = serializer(output_type)
    return lambda item: serialize(getattr(item, python_name))


def _system(python_name: str, serialize: Serialize) -> Writer:
    read = READ_AS.get(ElementRead.model_fields[python_name].annotation)
    if read is None:
        for candidate, reader in READ_AS.items():  # `X | None`
            if candidate in getattr(ElementRead.model_fields[python_name].annotation, "__args__", ()):
                read = reader
    if read is uuid.UUID:
        # PostgreSQL writes a uuid in its one standard form, str(UUID)'s: the row's text is the serialised value.
        read = None
    if read is None:
        return lambda page, i: serialize(page.rows[i][python_name])
    convert = read

    def write(page: Page, i: int) -> Any:
        value = page.rows[i][python_name]
        return serialize(None if value is None else convert(value))

    return write


def _custom(value: CustomValue, serialize: Serialize) -> Writer:
    """What the node's value resolver returns (typed._value_resolver), serialised."""
    code, convert, multiple = value.code, value.convert, value.multiple

    def write(page: Page, i: int) -> Any:
        raw = page.rows[i]["values"].get(code)
        if raw is None:
            return serialize(None)
        return serialize([convert(v) for v in raw] if multiple else convert(raw))

    return write


PAGE_INFO: dict[str, Writer] = {
    "hasNextPage": lambda page, i: page.next_cursor is not None,
    "hasPreviousPage": lambda page, i: page.after is not None,
    "startCursor": lambda page, i: page.cursors[0] if page.cursors else None,
    "endCursor": lambda page, i: page.cursors[-1] if page.cursors else None,
}


def plan_for(schema: StageflowSchema, query: str, operation_name: str | None, max_tokens: int) -> Plan | None:
    """The cached plan of a document, or None when it is not compiled (also cached)."""
    key = (query, operation_name)
    plans: OrderedDict[tuple[str, str | None], Plan | None] = schema.compiled_plans
    if key in plans:
        plans.move_to_end(key)
        return plans[key]
    plan: Plan | None = None
    try:
        document = parse(query, max_tokens=max_tokens)
        # Only a valid document is compiled: the normal path reports what is wrong with any other.
        rules = (*specified_rules, *validation_rules(schema.settings))
        if not validate_document(schema._schema, document, rules):
            plan = Compiler(schema).compile(document, operation_name)
    except (GraphQLError, NotCompiled):
        plan = None
    plans[key] = plan
    while len(plans) > MAX_PLANS:
        plans.popitem(last=False)
    return plan


async def answer(
    schema: StageflowSchema, context: Context, query: str, variables: Any, operation_name: Any
) -> bytes | None:
    """The response body, or None: the request is for normal execution."""
    if context.actor is None or context.db is None or not isinstance(operation_name, str | None):
        return None
    if variables is not None and not isinstance(variables, dict):
        return None
    plan = plan_for(schema, query, operation_name, schema.settings.GRAPHQL_MAX_TOKENS)
    if plan is None:
        return None
    try:
        return await _run(schema, plan, context, variables or {})
    except (Fallback, DomainError, GraphQLError):
        return None  # refused before the page was read, or a value to report as an error: executed normally
    except Exception:
        # A database error (the transaction is then aborted) or a bug here: executed normally from a clean
        # session, so the caller gets what they always got.
        logger.exception("compiled typed list failed; executing it normally")
        await context.session.rollback()
        return None


async def _run(schema: StageflowSchema, plan: Plan, context: Context, variables: dict[str, Any]) -> bytes:
    coerced = get_variable_values(schema._schema, plan.operation.variable_definitions or (), variables, max_errors=1)
    if isinstance(coerced, list):
        raise Fallback
    # The same cost the CostLimiter computes: an operation over the limit is refused by the normal path.
    if Coster(schema._schema, {}, variables).operation(plan.operation) > schema.settings.GRAPHQL_MAX_COST:
        raise Fallback
    raw = get_argument_values(plan.field_def, plan.field_node, coerced)
    registry = schema.schema_converter.scalar_registry
    arguments = convert_arguments(raw, plan.resolver_field.arguments, scalar_registry=registry, config=schema.config)
    first = check_first(arguments.get("first", 50))
    after = arguments.get("after")
    search = parse_input(
        ElementSearch,
        {
            "filter": plan.typed.to_filter(arguments.get("filter")),
            "sort": arguments.get("sort"),
            "limit": first,
            "cursor": after,
            "with_total": plan.with_total,
            "deleted": False,
        },
    )
    rows, stages = await element_service.list_element_rows(context.session, context.who, plan.typed.type_code, search)
    page = Page(
        rows=[orjson.loads(row[0]) for row in rows.rows],
        source=rows,
        after=after,
        stages=stages,
        stage_json={},
    )
    return orjson.dumps({"data": plan.write(page)})
