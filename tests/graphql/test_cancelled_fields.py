"""A root field that fails makes graphql-core cancel its siblings (gather_with_cancel), queries in flight included:
asyncpg then closes that connection. The pool must not hand it to the next request (app.db._refuse_closed)."""

import httpx
from fastapi import FastAPI

from tests.conftest import Tenant
from tests.factories import create_element, create_type, create_user


async def test_a_cancelled_query_leaves_no_closed_connection_behind(
    app: FastAPI, tenant: Tenant, client: httpx.AsyncClient
) -> None:
    await create_type(client, "lead")
    await create_type(client, "company", preset="list")
    ann = await create_user(client, "Ann")
    lead = await create_element(client, "lead", title="x", assigned_to=ann["id"])
    # `element` (with its assignee, a second query) is mid-flight when `company` fails: the lead is no company.
    failing = (
        f'{{ one: element(id: "{lead["id"]}") {{ score assignedTo {{ roleIds capacity }} }}'
        f' other: company(id: "{lead["id"]}") {{ movedAt }} }}'
    )
    headers = {"Authorization": f"Bearer {tenant.admin_key}"}
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver", headers=headers) as http:
        for _ in range(app.state.settings.DB_POOL_SIZE + 2):
            refused = (await http.post("/graphql", json={"query": failing})).json()
            assert refused["data"] is None
            assert "not a company" in refused["errors"][0]["message"]
            after = await http.post("/graphql", json={"query": "{ users { name } }"})
            assert after.json() == {"data": {"users": [{"name": "Ann"}]}}, after.text
