"""Too deep, too costly, too long or too aliased queries are refused with a clear error; introspection can be off."""

from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from gql import GraphQLRequest
from gql.transport.exceptions import TransportQueryError

from app.main import create_app
from app.settings import Settings
from tests.conftest import make_client, make_tenant
from tests.factories import create_type
from tests.graphql.conftest import Run, http_client


async def _error(run: Run, query: str, **variables: Any) -> dict[str, Any]:
    with pytest.raises(TransportQueryError) as caught:
        await run(query, **variables)
    errors: Any = caught.value.errors
    assert errors
    error: dict[str, Any] = errors[0]
    return error


async def test_too_deep(run: Run) -> None:
    nested = "children { " * 12 + "id" + " }" * 12
    error = await _error(run, f'{{ elements(type: "x", first: 1) {{ edges {{ node {{ {nested} }} }} }} }}')
    assert "exceeds maximum operation depth" in error["message"]


async def test_too_costly_counts_page_sizes_even_from_variables(client: httpx.AsyncClient, run: Run) -> None:
    await create_type(client, "lead")
    query = """query($first: Int!) { elements(type: "lead", first: $first) {
      edges { node { id title children(first: 100) { id title parents(first: 100) { id title } } } }
    } }"""
    error = await _error(run, query, first=50)
    assert error["extensions"]["code"] == "query-too-costly"
    assert error["extensions"]["cost"] > error["extensions"]["limit"]
    assert "too costly" in error["message"]
    small = await run(query, first=1)
    assert small["elements"]["edges"] == []


async def test_too_many_aliases(run: Run) -> None:
    aliases = " ".join(f"a{i}: entityTypes {{ code }}" for i in range(40))
    error = await _error(run, f"{{ {aliases} }}")
    assert "aliases" in error["message"]


async def test_too_many_tokens(run: Run) -> None:
    fields = " ".join("code" for _ in range(6000))
    error = await _error(run, f"{{ entityTypes {{ {fields} }} }}")
    assert "token" in error["message"].lower()


async def test_introspection_is_on_by_default(run: Run) -> None:
    data = await run("{ __schema { queryType { name } } }")
    assert data["__schema"]["queryType"]["name"] == "Query"


async def test_introspection_can_be_turned_off(settings: Settings) -> None:
    application = create_app(settings.model_copy(update={"GRAPHQL_INTROSPECTION": False, "DB_POOL_SIZE": 2}))
    async with application.router.lifespan_context(application):
        tenant = await make_tenant(application)
        async with http_client(application, tenant.admin_key) as session:
            with pytest.raises(TransportQueryError, match="introspection"):
                await session.execute(GraphQLRequest("{ __schema { queryType { name } } }"))


# The cost of one element node below: id, title and a page of 100 children with id and title each.
NODE = "id title children(first: 100) { id title }"
NODE_COST = 1 + 1 + (1 + 100 * 2)


async def _cost_error(run: Run, query: str, **variables: Any) -> int:
    error = await _error(run, query, **variables)
    assert error["extensions"]["code"] == "query-too-costly", error
    cost: int = error["extensions"]["cost"]
    return cost


@pytest.mark.parametrize(
    "query",
    [
        # the page size comes from the variable's default when the variable is not sent
        f'query($first: Int! = 500) {{ elements(type: "lead", first: $first) {{ edges {{ node {{ {NODE} }} }} }} }}',
        f'query($first: Int = 500) {{ elements(type: "lead", first: $first) {{ edges {{ node {{ {NODE} }} }} }} }}',
        # typed lists too, and through a fragment
        "query($n: Int! = 500) { leads(first: $n) { edges { node { ...N } } } } fragment N on Lead { " + NODE + " }",
    ],
    ids=["variable-default", "nullable-variable-default", "typed-list-in-a-fragment"],
)
async def test_cost_counts_variable_defaults_as_the_literal(client: httpx.AsyncClient, run: Run, query: str) -> None:
    await create_type(client, "lead")
    literal = query.replace("$first", "500").replace("$n", "500")
    literal = literal[literal.index(")") + 2 :]  # drop the variable definitions
    assert await _cost_error(run, query) == await _cost_error(run, literal) == 1 + 500 * (1 + 1 + NODE_COST)


async def test_cost_counts_a_nested_variable_default_and_a_float_variable(client: httpx.AsyncClient, run: Run) -> None:
    await create_type(client, "lead")
    nested = """query($c: Int = 400) { elements(type: "lead", first: 100) {
      edges { node { id children(first: $c) { id title } } } } }"""
    assert await _cost_error(run, nested) == 1 + 100 * (1 + 1 + 1 + (1 + 400 * 2))
    # JSON has no integers: `500.0` is a valid Int and must cost 500, not 1
    floats = f'query($f: Int!) {{ elements(type: "lead", first: $f) {{ edges {{ node {{ {NODE} }} }} }} }}'
    assert await _cost_error(run, floats, f=500.0) == 1 + 500 * (1 + 1 + NODE_COST)


async def test_a_negative_page_does_not_buy_room_for_the_rest(client: httpx.AsyncClient, run: Run) -> None:
    await create_type(client, "lead")
    query = f"""{{
      cheap: elements(type: "lead", first: -100000) {{ edges {{ node {{ {NODE} }} }} }}
      costly: elements(type: "lead", first: 500) {{ edges {{ node {{ {NODE} }} }} }}
    }}"""
    assert await _cost_error(run, query) >= 500 * NODE_COST


BOARD = (
    "query($p: UUID!, $per: Int! = 60) { board(pipelineId: $p, perStage: $per) {"
    " pipelineId stages { count elements { " + NODE + " } } } }"
)


def _board_cost(stages: int, per_stage: int = 60) -> int:
    column = 1 + (1 + per_stage * NODE_COST)  # count, elements
    return 1 + (1 + 1 + stages * column)  # board: pipelineId, stages


async def _pipeline(client: httpx.AsyncClient, stages: int) -> str:
    body = {"title": f"{stages} stages", "stages": [{"code": f"S{i}", "title": f"S{i}"} for i in range(stages)]}
    response = await client.post("/entity-types/lead/pipelines", json=body)
    assert response.status_code == 201, response.text
    pipeline_id: str = response.json()["id"]
    return pipeline_id


async def test_board_costs_one_page_per_stage(client: httpx.AsyncClient, run: Run) -> None:
    await create_type(client, "lead", settings={"pipelines_enabled": True})
    assert _board_cost(4) < 50_000 < _board_cost(5)
    four = await _pipeline(client, 4)
    data = await run(BOARD, p=four)
    assert len(data["board"]["stages"]) == 4
    five = await _pipeline(client, 5)
    assert await _cost_error(run, BOARD, p=five) == _board_cost(5)
    # perStage from a literal, and a smaller page lets the wider board through
    assert await _cost_error(
        run, BOARD.replace("perStage: $per", "perStage: 60").replace(", $per: Int! = 60", ""), p=five
    ) == _board_cost(5)
    data = await run(BOARD, p=five, per=40)
    assert len(data["board"]["stages"]) == 5
    # and two boards in one query add up
    two = f"""{{ a: board(pipelineId: "{four}", perStage: 60) {{ stages {{ elements {{ {NODE} }} }} }}
      b: board(pipelineId: "{five}", perStage: 60) {{ stages {{ elements {{ {NODE} }} }} }} }}"""
    assert await _cost_error(run, two) == 2 + (1 + 4 * (1 + 60 * NODE_COST)) + (1 + 5 * (1 + 60 * NODE_COST))


async def test_board_of_another_workspace_costs_nothing_and_is_not_found(app: FastAPI, run: Run) -> None:
    """The stage count is read in the caller's workspace only: another tenant's board reveals nothing."""
    other = await make_tenant(app, "other")
    async with make_client(app, other.admin_key) as other_client:
        await create_type(other_client, "lead", settings={"pipelines_enabled": True})
        foreign = await _pipeline(other_client, 9)
    with pytest.raises(TransportQueryError) as caught:
        await run(BOARD, p=foreign)
    errors: Any = caught.value.errors
    assert errors[0]["extensions"]["code"] == "not-found", errors
