"""New elements and elements past their stage's time limit, as the triggers and the timer keep them."""

from sqlalchemy import text

from app.db import unit_of_work
from tests.counters.conftest import Crm
from tests.factories import create_type, created


class TestNewElements:
    async def test_follow_create_move_assign_delete_restore(self, crm: Crm) -> None:
        mine = await crm.element(crm.ann)
        await crm.element(crm.ann, stage="IN_PROGRESS")
        await crm.element(None)
        assert await crm.of(crm.ann) == (1, 0, 0)
        assert await crm.of(crm.bob) == (0, 0, 0)

        await crm.move(mine["id"], "IN_PROGRESS")
        assert await crm.of(crm.ann) == (0, 0, 0)
        await crm.move(mine["id"], "NEW")
        assert await crm.of(crm.ann) == (1, 0, 0)

        await crm.patch(mine["id"], assigned_to=crm.bob)
        assert (await crm.of(crm.ann), await crm.of(crm.bob)) == ((0, 0, 0), (1, 0, 0))
        await crm.patch(mine["id"], assigned_to=None)
        assert await crm.of(crm.bob) == (0, 0, 0)
        await crm.patch(mine["id"], assigned_to=crm.ann)

        assert (await crm.client.delete(f"/elements/{mine['id']}")).status_code == 204
        assert await crm.of(crm.ann) == (0, 0, 0)
        assert (await crm.client.post(f"/elements/{mine['id']}/restore")).status_code == 200
        assert await crm.of(crm.ann) == (1, 0, 0)
        await crm.check_consistent()

    async def test_batch_creates_and_updates(self, crm: Crm) -> None:
        items = [{"op": "create", "data": {"title": f"e{i}", "assigned_to": crm.ann}} for i in range(30)]
        items += [{"op": "create", "data": {"title": "b", "assigned_to": crm.bob, "stage_code": "SUCCESS"}}]
        response = await crm.client.post("/entity-types/lead/elements/batch", json={"items": items})
        assert response.status_code == 200, response.text
        assert await crm.of(crm.ann) == (30, 0, 0)
        ids = [e["id"] for e in response.json()["items"][:10]]
        reassign = [{"op": "update", "id": i, "data": {"assigned_to": crm.bob}} for i in ids]
        response = await crm.client.post("/entity-types/lead/elements/batch", json={"items": reassign})
        assert response.status_code == 200, response.text
        assert (await crm.of(crm.ann), await crm.of(crm.bob)) == ((20, 0, 0), (10, 0, 0))
        await crm.check_consistent()

    async def test_purge_without_recycle_bin(self, crm: Crm) -> None:
        await create_type(crm.client, "ticket", settings={"recycle_bin_enabled": False})
        ticket = created(await crm.client.post("/entity-types/ticket/elements", json={"assigned_to": crm.ann}))
        assert await crm.of(crm.ann, "ticket") == (1, 0, 0)
        assert (await crm.client.delete(f"/elements/{ticket['id']}")).status_code == 204
        assert await crm.of(crm.ann, "ticket") == (0, 0, 0)
        await crm.check_consistent()

    async def test_first_stage_changes_with_the_pipeline(self, crm: Crm) -> None:
        """New means in the first stage: reordering, adding a stage in front or deleting the first one changes
        which elements are new."""
        await crm.element(crm.ann)
        for _ in range(2):
            await crm.element(crm.ann, stage="IN_PROGRESS")
        order = [crm.stages[c] for c in ("IN_PROGRESS", "NEW", "SUCCESS", "FAIL")]
        response = await crm.client.put(f"/pipelines/{crm.pipeline['id']}/stages/order", json={"stage_ids": order})
        assert response.status_code == 200, response.text
        assert await crm.of(crm.ann) == (2, 0, 0)
        await crm.check_consistent()

        inbox = created(
            await crm.client.post(f"/pipelines/{crm.pipeline['id']}/stages", json={"code": "INBOX", "sort": -1})
        )
        assert await crm.of(crm.ann) == (0, 0, 0)
        await crm.element(crm.ann, stage="INBOX")
        assert await crm.of(crm.ann) == (1, 0, 0)

        # Deleting the first stage moves its elements out first (to NEW); then IN_PROGRESS is first again.
        response = await crm.client.delete(f"/stages/{inbox['id']}", params={"move_to": crm.stages["NEW"]})
        assert response.status_code == 204, response.text
        assert await crm.of(crm.ann) == (2, 0, 0)
        await crm.check_consistent()

    async def test_a_new_pipeline_has_its_own_first_stage(self, crm: Crm) -> None:
        response = await crm.client.patch("/entity-types/lead", json={"settings": {"pipelines_enabled": True}})
        assert response.status_code == 200, response.text
        second = created(
            await crm.client.post(
                "/entity-types/lead/pipelines",
                json={"title": "Partners", "stages": [{"code": "TALK"}, {"code": "SIGN"}]},
            )
        )
        response = await crm.client.post(
            "/entity-types/lead/elements", json={"pipeline_id": second["id"], "assigned_to": crm.bob}
        )
        assert response.status_code == 201, response.text
        await crm.element(crm.bob)
        assert await crm.of(crm.bob) == (2, 0, 0)
        await crm.check_consistent()


class TestOverdueElements:
    async def test_timer_marks_once_and_a_move_takes_it_back(self, crm: Crm) -> None:
        await crm.set_limit("IN_PROGRESS", 1)
        element = await crm.element(crm.ann)
        await crm.move(element["id"], "IN_PROGRESS")
        assert await crm.fire(0) == crm_fired(0)
        assert await crm.of(crm.ann) == (0, 0, 0)

        assert (await crm.fire(2)).elements == 1
        assert await crm.of(crm.ann) == (0, 1, 0)
        assert (await crm.fire(5)).elements == 0  # a repeated tick counts nothing twice
        assert await crm.of(crm.ann) == (0, 1, 0)
        await crm.check_consistent()

        await crm.move(element["id"], "SUCCESS")
        assert await crm.of(crm.ann) == (0, 0, 0)
        assert (await crm.fire(5)).elements == 0
        await crm.check_consistent()

    async def test_leaving_before_the_limit_arms_nothing(self, crm: Crm) -> None:
        await crm.set_limit("NEW", 1)
        element = await crm.element(crm.ann)
        await crm.move(element["id"], "IN_PROGRESS")
        assert (await crm.fire(10)).elements == 0
        assert await crm.of(crm.ann) == (0, 0, 0)

    async def test_past_the_limit_already_counts_at_once(self, crm: Crm) -> None:
        """Set the element's arrival in the past (as if minutes had gone by): no timer needed."""
        await crm.set_limit("NEW", 1)
        element = await crm.element(crm.ann)
        await crm.sql("UPDATE elements SET moved_at = now() - interval '2 minutes' WHERE id = :id", id=element["id"])
        assert await crm.of(crm.ann) == (1, 1, 0)
        await crm.check_consistent()

    async def test_reassign_delete_restore_of_an_overdue_element(self, crm: Crm) -> None:
        await crm.set_limit("NEW", 1)
        element = await crm.element(crm.ann)
        await crm.fire(2)
        assert await crm.of(crm.ann) == (1, 1, 0)
        await crm.patch(element["id"], assigned_to=crm.bob)
        assert (await crm.of(crm.ann), await crm.of(crm.bob)) == ((0, 0, 0), (1, 1, 0))
        assert (await crm.client.delete(f"/elements/{element['id']}")).status_code == 204
        assert await crm.of(crm.bob) == (0, 0, 0)
        await crm.sql("UPDATE elements SET moved_at = now() - interval '5 minutes' WHERE id = :id", id=element["id"])
        assert (await crm.client.post(f"/elements/{element['id']}/restore")).status_code == 200
        assert await crm.of(crm.bob) == (1, 1, 0)  # still past the limit when it comes back
        await crm.check_consistent()

    async def test_changing_the_limit_recounts_the_stage(self, crm: Crm) -> None:
        await crm.set_limit("NEW", 60)
        first = await crm.element(crm.ann)
        await crm.element(crm.ann)
        await crm.sql("UPDATE elements SET moved_at = now() - interval '30 minutes' WHERE id = :id", id=first["id"])
        assert await crm.of(crm.ann) == (2, 0, 0)
        await crm.set_limit("NEW", 10)  # the first one is now 20 minutes late
        assert await crm.of(crm.ann) == (2, 1, 0)
        assert (await crm.fire(11)).elements == 1  # the second one's deadline was re-armed at 10 minutes
        assert await crm.of(crm.ann) == (2, 2, 0)
        await crm.set_limit("NEW", 45)
        assert await crm.of(crm.ann) == (2, 0, 0)
        await crm.set_limit("NEW", None)
        assert (await crm.fire(60 * 24)).elements == 0
        assert await crm.of(crm.ann) == (2, 0, 0)
        await crm.check_consistent()

    async def test_the_workers_tick_runs_the_timer(self, crm: Crm) -> None:
        from app.automation import runner
        from app.automation.engine import Followups

        class Quiet:
            async def run(self, *args: object) -> None: ...
            async def resume(self, *args: object) -> None: ...
            async def timer(self, *args: object) -> None: ...
            async def deliver(self, *args: object) -> None: ...
            async def deliver_many(self, *args: object) -> None: ...
            async def deliver_due(self, *args: object) -> None: ...
            async def events(self, *args: object) -> None: ...

        await crm.set_limit("NEW", 5)
        element = await crm.element(crm.ann)
        await crm.sql(
            "UPDATE counter_deadlines SET due_at = now() - interval '1 second' WHERE element_id = :id", id=element["id"]
        )
        settings = crm.app.state.settings
        out = await runner.tick(crm.app.state.sessionmaker, settings, Quiet(), events=False)
        assert isinstance(out, Followups)
        assert await crm.of(crm.ann) == (1, 1, 0)


def crm_fired(elements: int, tasks: int = 0) -> object:
    from app.counters.service import Fired

    return Fired(elements=elements, tasks=tasks)


async def test_stage_limits_are_validated(crm: Crm) -> None:
    for bad in (0, -5, 10**9, "soon"):
        response = await crm.client.patch(f"/stages/{crm.stages['NEW']}", json={"time_limit_minutes": bad})
        assert response.status_code == 422, response.text
        assert response.headers["content-type"] == "application/problem+json"
    response = await crm.client.post(
        f"/pipelines/{crm.pipeline['id']}/stages", json={"code": "LATE", "time_limit_minutes": 90}
    )
    assert created(response)["time_limit_minutes"] == 90
    stages = (await crm.client.get(f"/pipelines/{crm.pipeline['id']}/stages")).json()["items"]
    assert {s["code"]: s["time_limit_minutes"] for s in stages}["LATE"] == 90


async def test_a_stage_limit_through_graphql(crm: Crm) -> None:
    from gql import GraphQLRequest

    from tests.graphql.conftest import http_client

    async with http_client(crm.app, crm.tenant.admin_key) as session:
        result = await session.execute(
            GraphQLRequest(
                "mutation($id: UUID!) { updateStage(id: $id, input: {timeLimitMinutes: 30}) "
                "{ ... on Stage { code timeLimitMinutes } } }",
                variable_values={"id": crm.stages["NEW"]},
            )
        )
        assert result["updateStage"] == {"code": "NEW", "timeLimitMinutes": 30}
        result = await session.execute(
            GraphQLRequest(
                "mutation($id: UUID!) { updateStage(id: $id, input: {timeLimitMinutes: null}) "
                "{ ... on Stage { timeLimitMinutes } } }",
                variable_values={"id": crm.stages["NEW"]},
            )
        )
        assert result["updateStage"] == {"timeLimitMinutes": None}


async def test_deleting_a_type_takes_its_counters_and_deadlines(crm: Crm) -> None:
    await crm.set_limit("NEW", 5)
    await crm.set_limit("IN_PROGRESS", 1)
    await crm.element(crm.ann)
    late = await crm.element(crm.ann, stage="IN_PROGRESS")
    await crm.sql("UPDATE elements SET moved_at = now() - interval '3 minutes' WHERE id = :id", id=late["id"])
    assert await crm.of(crm.ann) == (1, 1, 0)
    assert (await crm.client.delete("/entity-types/lead", params={"force": True})).status_code == 204
    assert (await crm.counters(crm.ann))["types"] == []
    async with unit_of_work(crm.app.state.sessionmaker) as session:
        left = await session.scalar(
            text("SELECT count(*) FROM counter_deadlines WHERE workspace_id = :ws"), {"ws": crm.tenant.workspace_id}
        )
        rows = await session.scalar(
            text("SELECT count(*) FROM user_counters WHERE workspace_id = :ws"), {"ws": crm.tenant.workspace_id}
        )
    assert (left, rows) == (0, 0)


async def test_the_timer_skips_what_someone_holds_and_drops_stale_deadlines(crm: Crm) -> None:
    await crm.set_limit("NEW", 1)
    held = await crm.element(crm.ann)
    await crm.sql(
        "INSERT INTO counter_deadlines (element_id, workspace_id, stage_id, due_at) "
        "VALUES (gen_random_uuid(), :ws, :stage, now() - interval '1 hour')",
        ws=crm.tenant.workspace_id,
        stage=crm.stages["NEW"],
    )
    async with crm.app.state.sessionmaker() as holder, holder.begin():
        await holder.execute(text("SELECT 1 FROM elements WHERE id = :id FOR UPDATE"), {"id": held["id"]})
        assert (await crm.fire(2)).elements == 0  # no wait: the row in use is left for a later tick
    assert await crm.of(crm.ann) == (1, 0, 0)
    assert (await crm.fire(2)).elements == 1
    assert await crm.of(crm.ann) == (1, 1, 0)
    async with unit_of_work(crm.app.state.sessionmaker) as session:
        left = await session.scalar(
            text("SELECT count(*) FROM counter_deadlines WHERE workspace_id = :ws"), {"ws": crm.tenant.workspace_id}
        )
    assert left == 0
