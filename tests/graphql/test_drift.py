"""The GraphQL types built from service models (`cls(**read.model_dump())`) must keep up with them: a field added to a
service model without its GraphQL field would fail at run time, so it fails here first."""

import pydantic
import pytest
from strawberry.types.base import get_object_definition

from app.api.graphql import automation, people, types
from app.automation.schemas import RuleRead, RunRead
from app.routing.schemas import RouteDecision, RoutingPolicyRead, TierSpec
from app.scoring.schemas import ModelMetrics, ScoreResult, ScoringModelRead
from app.tasks.schemas import TaskRead
from app.users.schemas import UserRead
from app.webhooks.schemas import SubscriptionCreated, SubscriptionRead

PAIRS: list[tuple[type, type[pydantic.BaseModel], dict[str, str]]] = [
    (types.User, UserRead, {}),
    (automation.AutomationRule, RuleRead, {}),
    (automation.AutomationRun, RunRead, {}),
    (automation.Task, TaskRead, {}),
    (automation.WebhookSubscription, SubscriptionRead, {}),
    (automation.WebhookSubscriptionCreated, SubscriptionCreated, {}),
    (people.ScoringModel, ScoringModelRead, {}),
    (people.ScoringMetrics, ModelMetrics, {}),
    (people.ElementScore, ScoreResult, {}),
    (people.RoutingPolicy, RoutingPolicyRead, {}),
    (people.RoutingTier, TierSpec, {}),
    (people.RouteDecision, RouteDecision, {"assigned_to": "assigned_to_id"}),
]


@pytest.mark.parametrize(("graphql_type", "model", "renamed"), PAIRS, ids=[p[0].__name__ for p in PAIRS])
def test_graphql_types_have_every_field_of_their_service_model(
    graphql_type: type, model: type[pydantic.BaseModel], renamed: dict[str, str]
) -> None:
    definition = get_object_definition(graphql_type, strict=True)
    # Resolver-only fields (assignedTo, task…) are not constructor arguments.
    data_fields = {f.python_name for f in definition.fields if f.base_resolver is None}
    wanted = {renamed.get(name, name) for name in model.model_fields}
    assert wanted <= data_fields, f"missing in GraphQL: {sorted(wanted - data_fields)}"
