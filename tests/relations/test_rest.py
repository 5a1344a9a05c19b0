import httpx

from tests.factories import create_element, create_type


async def company_and_deals(client: httpx.AsyncClient) -> dict[str, str]:
    await create_type(client, "company", preset="list")
    await create_type(client, "deal")
    response = await client.post("/relations", json={"parent_type": "company", "child_type": "deal"})
    assert response.status_code == 201, response.text
    relation: dict[str, str] = response.json()
    return relation


class TestRelations:
    async def test_declare_list_and_delete(self, client: httpx.AsyncClient) -> None:
        relation = await company_and_deals(client)
        listed = (await client.get("/relations")).json()["items"]
        assert [(r["parent_type"], r["child_type"]) for r in listed] == [("company", "deal")]
        duplicate = await client.post("/relations", json={"parent_type": "company", "child_type": "deal"})
        assert duplicate.status_code == 409
        assert (await client.delete(f"/relations/{relation['id']}")).status_code == 204
        assert (await client.get("/relations")).json()["items"] == []

    async def test_unknown_type_is_refused(self, client: httpx.AsyncClient) -> None:
        await create_type(client, "deal")
        response = await client.post("/relations", json={"parent_type": "ghost", "child_type": "deal"})
        assert response.status_code in (404, 422)


class TestLinks:
    async def test_link_walk_both_ways_and_unlink(self, client: httpx.AsyncClient) -> None:
        await company_and_deals(client)
        acme = await create_element(client, "company", title="ACME")
        deals = [await create_element(client, "deal", title=f"deal {i}") for i in range(3)]
        for deal in deals:
            response = await client.post(f"/elements/{acme['id']}/links", json={"child_id": deal["id"]})
            assert response.status_code == 201, response.text
        children = (await client.get(f"/elements/{acme['id']}/links", params={"direction": "children"})).json()
        assert sorted(e["title"] for e in children["items"]) == ["deal 0", "deal 1", "deal 2"]
        parents = (await client.get(f"/elements/{deals[0]['id']}/links", params={"direction": "parents"})).json()
        assert [e["title"] for e in parents["items"]] == ["ACME"]
        typed = await client.get(f"/elements/{acme['id']}/links", params={"direction": "children", "type": "company"})
        assert typed.json()["items"] == []
        assert (await client.delete(f"/elements/{acme['id']}/links/{deals[0]['id']}")).status_code == 204
        children = (await client.get(f"/elements/{acme['id']}/links", params={"direction": "children"})).json()
        assert len(children["items"]) == 2

    async def test_link_without_relation_is_refused(self, client: httpx.AsyncClient) -> None:
        await create_type(client, "company", preset="list")
        await create_type(client, "deal")
        acme = await create_element(client, "company", title="ACME")
        deal = await create_element(client, "deal", title="d")
        response = await client.post(f"/elements/{acme['id']}/links", json={"child_id": deal["id"]})
        assert response.status_code in (409, 422)
        assert response.headers["content-type"] == "application/problem+json"
        # the relation is directed: company → deal does not allow deal → company
        await client.post("/relations", json={"parent_type": "company", "child_type": "deal"})
        reverse = await client.post(f"/elements/{deal['id']}/links", json={"child_id": acme["id"]})
        assert reverse.status_code in (409, 422)

    async def test_duplicate_link_is_409(self, client: httpx.AsyncClient) -> None:
        await company_and_deals(client)
        acme = await create_element(client, "company", title="ACME")
        deal = await create_element(client, "deal", title="d")
        assert (await client.post(f"/elements/{acme['id']}/links", json={"child_id": deal["id"]})).status_code == 201
        again = await client.post(f"/elements/{acme['id']}/links", json={"child_id": deal["id"]})
        assert again.status_code == 409

    async def test_foreign_elements_are_404(self, client: httpx.AsyncClient, other_client: httpx.AsyncClient) -> None:
        await company_and_deals(client)
        await company_and_deals(other_client)
        acme = await create_element(client, "company", title="ACME")
        foreign_deal = await create_element(other_client, "deal", title="theirs")
        response = await client.post(f"/elements/{acme['id']}/links", json={"child_id": foreign_deal["id"]})
        assert response.status_code == 422
        assert response.json()["errors"][0]["field"] == "child_id"
        assert (
            await other_client.post(f"/elements/{acme['id']}/links", json={"child_id": foreign_deal["id"]})
        ).status_code == 404
        assert (await other_client.get(f"/elements/{acme['id']}/links")).status_code == 404

    async def test_viewer_cannot_link(self, client: httpx.AsyncClient, viewer_client: httpx.AsyncClient) -> None:
        await company_and_deals(client)
        acme = await create_element(client, "company", title="ACME")
        deal = await create_element(client, "deal", title="d")
        response = await viewer_client.post(f"/elements/{acme['id']}/links", json={"child_id": deal["id"]})
        assert response.status_code == 403
