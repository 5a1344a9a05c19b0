"""Query limits: depth, tokens, aliases (Strawberry's extensions) and a cost estimate that knows page sizes."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from graphql import (
    ExecutionResult,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    GraphQLField,
    GraphQLInterfaceType,
    GraphQLNamedType,
    GraphQLObjectType,
    GraphQLSchema,
    InlineFragmentNode,
    IntValueNode,
    OperationDefinitionNode,
    SelectionSetNode,
    StringValueNode,
    ValueNode,
    VariableNode,
    get_named_type,
)
from strawberry.extensions import (
    AddValidationRules,
    DisableIntrospection,
    MaxAliasesLimiter,
    MaxTokensLimiter,
    ParserCache,
    QueryDepthLimiter,
    SchemaExtension,
    ValidationCache,
)

from app.pipelines import service as pipeline_service
from app.settings import Settings

PAGE_ARGUMENT = "first"
# A board is one page of `perStage` elements per stage: `Board.stages` counts once per stage of the pipeline and
# `BoardColumn.elements` once per element of the page.
BOARD = "board"
BOARD_PIPELINE, BOARD_PAGE = "pipelineId", "perStage"
BOARD_STAGES, BOARD_ELEMENTS = ("Board", "stages"), ("BoardColumn", "elements")


@dataclass
class Coster:
    """The cost of an operation: every field costs 1, and what is below a list counts once per item.

    A list's size is its page argument as the query sets it (a literal, a variable's value or, when the variable is
    not sent, its default), else the argument's default in the schema. A board's size is its stage count, which only
    the database knows: pipelines whose count is not in `stages` are collected in `wanted` and counted as empty.
    """

    schema: GraphQLSchema
    fragments: dict[str, FragmentDefinitionNode]
    variables: dict[str, Any]
    variable_defaults: dict[str, ValueNode] = field(default_factory=dict)
    stages: dict[uuid.UUID, int] = field(default_factory=dict)
    wanted: set[uuid.UUID] = field(default_factory=set)

    def operation(self, operation: OperationDefinitionNode) -> int:
        self.variable_defaults = {
            d.variable.name.value: d.default_value for d in operation.variable_definitions or () if d.default_value
        }
        root = self.schema.get_root_type(operation.operation)
        return self.selections(operation.selection_set, root, {})

    def selections(
        self,
        selection_set: SelectionSetNode | None,
        parent: GraphQLNamedType | None,
        sizes: dict[tuple[str, str], int],
        seen: frozenset[str] = frozenset(),
    ) -> int:
        if selection_set is None:
            return 0
        total = 0
        for selection in selection_set.selections:
            if isinstance(selection, FieldNode):
                total += self.field(selection, parent, sizes, seen)
            elif isinstance(selection, InlineFragmentNode):
                condition = selection.type_condition
                inner = self.schema.get_type(condition.name.value) if condition else parent
                total += self.selections(selection.selection_set, inner, sizes, seen)
            elif isinstance(selection, FragmentSpreadNode) and selection.name.value not in seen:
                fragment = self.fragments.get(selection.name.value)
                if fragment is not None:
                    inner = self.schema.get_type(fragment.type_condition.name.value)
                    total += self.selections(fragment.selection_set, inner, sizes, seen | {selection.name.value})
        return total

    def field(
        self,
        node: FieldNode,
        parent: GraphQLNamedType | None,
        sizes: dict[tuple[str, str], int],
        seen: frozenset[str],
    ) -> int:
        name = node.name.value
        definition: GraphQLField | None = None
        if isinstance(parent, GraphQLObjectType | GraphQLInterfaceType):
            definition = parent.fields.get(name)
        child = get_named_type(definition.type) if definition else None
        if definition is not None and name == BOARD and BOARD_PIPELINE in definition.args:
            sizes = {
                **sizes,
                BOARD_STAGES: self._stage_count(node),
                BOARD_ELEMENTS: self._argument(node, definition, BOARD_PAGE),
            }
        below = self.selections(node.selection_set, child, sizes, seen)
        if not below:
            return 1
        size = sizes.get((parent.name, name), 1) if parent is not None else 1
        if definition is not None and PAGE_ARGUMENT in definition.args:
            size = self._argument(node, definition, PAGE_ARGUMENT)
        return 1 + size * below

    def _value(self, node: FieldNode, argument: str) -> Any:
        """An argument's value as the query gives it, or None when it leaves it to the schema's default."""
        for given in node.arguments or ():
            if given.name.value != argument:
                continue
            value = given.value
            if isinstance(value, VariableNode):
                variable = value.name.value
                if variable in self.variables:
                    return self.variables[variable]
                value = self.variable_defaults.get(variable)  # type: ignore[assignment]
            if isinstance(value, IntValueNode):
                return int(value.value)
            if isinstance(value, StringValueNode):
                return value.value
            return None
        return None

    def _argument(self, node: FieldNode, definition: GraphQLField, argument: str) -> int:
        value = self._value(node, argument)
        if value is None:
            value = definition.args[argument].default_value
        if isinstance(value, float) and value.is_integer():
            value = int(value)  # GraphQL's Int takes 500.0 from JSON variables
        if not isinstance(value, int) or isinstance(value, bool):
            return 1
        # A negative page is refused by its resolver, but must not lower the cost of the rest of the query.
        return max(value, 0)

    def _stage_count(self, node: FieldNode) -> int:
        value = self._value(node, BOARD_PIPELINE)
        try:
            pipeline_id = value if isinstance(value, uuid.UUID) else uuid.UUID(str(value))
        except ValueError:
            return 0  # not an id: the resolver refuses it
        if pipeline_id not in self.stages:
            self.wanted.add(pipeline_id)
            return 0
        return self.stages[pipeline_id]


class CostLimiter(SchemaExtension):
    def __init__(self, *, max_cost: int) -> None:
        self.max_cost = max_cost

    async def on_execute(self) -> AsyncIterator[None]:
        context = self.execution_context
        document = context.graphql_document
        if document is not None:
            cost = await self._cost(document.definitions)
            if cost > self.max_cost:
                error = GraphQLError(
                    f"The query is too costly: about {cost} fields to resolve, the limit is {self.max_cost}. "
                    "Ask for smaller pages (first, perStage) or fewer nested lists.",
                    extensions={"code": "query-too-costly", "cost": cost, "limit": self.max_cost},
                )
                context.result = ExecutionResult(data=None, errors=[error])
        yield

    async def _cost(self, definitions: Any) -> int:
        context = self.execution_context
        coster = Coster(
            schema=context.schema._schema,
            fragments={d.name.value: d for d in definitions if isinstance(d, FragmentDefinitionNode)},
            variables=context.variables or {},
        )
        operations = [d for d in definitions if isinstance(d, OperationDefinitionNode)]
        if context.operation_name:
            operations = [o for o in operations if o.name and o.name.value == context.operation_name]
        cost = max((coster.operation(o) for o in operations), default=0)
        if coster.wanted:
            # Boards: one query for the stage counts of their pipelines, then the cost again with them.
            coster.stages = await _stage_counts(context.context, list(coster.wanted))
            cost = max((coster.operation(o) for o in operations), default=0)
        return cost


async def _stage_counts(context: Any, pipeline_ids: list[uuid.UUID]) -> dict[uuid.UUID, int]:
    if getattr(context, "db", None) is None or getattr(context, "actor", None) is None:
        return dict.fromkeys(pipeline_ids, 0)  # no session (a WebSocket): no board there to count
    counts: dict[uuid.UUID, int] = await pipeline_service.count_stages(context.db, context.actor, pipeline_ids)
    return counts


def validation_rules(settings: Settings) -> list[Any]:
    """The rules a document must also pass: depth, aliases and, where it is off, no introspection."""
    return [
        *QueryDepthLimiter(max_depth=settings.GRAPHQL_MAX_DEPTH).validation_rules,
        *MaxAliasesLimiter(max_alias_count=settings.GRAPHQL_MAX_ALIASES).validation_rules,
        *([] if settings.GRAPHQL_INTROSPECTION else DisableIntrospection().validation_rules),
    ]


def limit_extensions(settings: Settings) -> list[Any]:
    """Extension factories: Strawberry builds fresh instances per operation.

    The validation rules (depth, aliases, introspection) are made once, not per operation, so the validation of a
    document against a schema is cached: a client repeating its few documents is validated once per document.
    """
    rules = validation_rules(settings)
    return [
        lambda: ParserCache(maxsize=512),  # clients repeat the same few documents: parse each once
        lambda: AddValidationRules(rules),
        lambda: MaxTokensLimiter(max_token_count=settings.GRAPHQL_MAX_TOKENS),
        lambda: CostLimiter(max_cost=settings.GRAPHQL_MAX_COST),
        lambda: ValidationCache(maxsize=512),
    ]
