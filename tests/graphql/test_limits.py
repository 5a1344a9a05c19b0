"""Too deep, too costly, too long or too aliased queries are refused with a clear error; introspection can be off."""

from typing import Any

import httpx
import pytest
from gql import GraphQLRequest
from gql.transport.exceptions import TransportQueryError

from app.main import create_app
from app.settings import Settings
from tests.conftest import make_tenant
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
