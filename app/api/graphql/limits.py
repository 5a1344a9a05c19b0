"""Query limits: depth, tokens, aliases (Strawberry's extensions) and a cost estimate that knows page sizes."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from graphql import (
    ExecutionResult,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    InlineFragmentNode,
    IntValueNode,
    OperationDefinitionNode,
    SelectionSetNode,
    VariableNode,
)
from strawberry.extensions import (
    DisableIntrospection,
    MaxAliasesLimiter,
    MaxTokensLimiter,
    ParserCache,
    QueryDepthLimiter,
    SchemaExtension,
)

from app.settings import Settings

PAGE_ARGUMENTS = ("first", "perStage")
# List fields and their default page sizes: what is below them counts once per item.
LIST_DEFAULTS = {
    "elements": 50,
    "board": 20,
    "children": 100,
    "parents": 100,
    "history": 100,
    "automationRuns": 50,
    "tasks": 100,
}


def _page_size(field: FieldNode, variables: dict[str, Any], lists: dict[str, int]) -> int:
    for argument in field.arguments or ():
        if argument.name.value in PAGE_ARGUMENTS:
            value = argument.value
            if isinstance(value, IntValueNode):
                return int(value.value)
            if isinstance(value, VariableNode) and isinstance(variables.get(value.name.value), int):
                return int(variables[value.name.value])
    return lists.get(field.name.value, 1)


def selection_cost(
    selection_set: SelectionSetNode | None,
    fragments: dict[str, FragmentDefinitionNode],
    variables: dict[str, Any],
    lists: dict[str, int],
    seen: frozenset[str] = frozenset(),
) -> int:
    """Every field costs 1, and what is below a paged field counts once per item of the page."""
    if selection_set is None:
        return 0
    total = 0
    for selection in selection_set.selections:
        if isinstance(selection, FieldNode):
            below = selection_cost(selection.selection_set, fragments, variables, lists, seen)
            total += 1 + (_page_size(selection, variables, lists) * below if below else 0)
        elif isinstance(selection, InlineFragmentNode):
            total += selection_cost(selection.selection_set, fragments, variables, lists, seen)
        elif isinstance(selection, FragmentSpreadNode) and selection.name.value not in seen:
            fragment = fragments.get(selection.name.value)
            if fragment is not None:
                total += selection_cost(
                    fragment.selection_set, fragments, variables, lists, seen | {selection.name.value}
                )
    return total


class CostLimiter(SchemaExtension):
    def __init__(self, *, max_cost: int, lists: dict[str, int]) -> None:
        self.max_cost = max_cost
        self.lists = lists

    def on_execute(self) -> Iterator[None]:
        context = self.execution_context
        document = context.graphql_document
        if document is not None:
            fragments = {d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)}
            variables = context.variables or {}
            operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
            if context.operation_name:
                operations = [o for o in operations if o.name and o.name.value == context.operation_name]
            cost = max(
                (selection_cost(o.selection_set, fragments, variables, self.lists) for o in operations), default=0
            )
            if cost > self.max_cost:
                error = GraphQLError(
                    f"The query is too costly: about {cost} fields to resolve, the limit is {self.max_cost}. "
                    "Ask for smaller pages (first, perStage) or fewer nested lists.",
                    extensions={"code": "query-too-costly", "cost": cost, "limit": self.max_cost},
                )
                context.result = ExecutionResult(data=None, errors=[error])
        yield


def limit_extensions(settings: Settings, typed_lists: tuple[str, ...] = ()) -> list[Any]:
    """Extension factories: Strawberry builds fresh instances per operation."""
    lists = {**LIST_DEFAULTS, **dict.fromkeys(typed_lists, 50)}
    extensions: list[Any] = [
        lambda: ParserCache(maxsize=512),  # clients repeat the same few documents: parse each once
        lambda: QueryDepthLimiter(max_depth=settings.GRAPHQL_MAX_DEPTH),
        lambda: MaxTokensLimiter(max_token_count=settings.GRAPHQL_MAX_TOKENS),
        lambda: MaxAliasesLimiter(max_alias_count=settings.GRAPHQL_MAX_ALIASES),
        lambda: CostLimiter(max_cost=settings.GRAPHQL_MAX_COST, lists=lists),
    ]
    if not settings.GRAPHQL_INTROSPECTION:
        extensions.append(DisableIntrospection)
    return extensions
