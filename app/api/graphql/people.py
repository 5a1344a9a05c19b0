"""Users, scoring models and routing policies in GraphQL: thin resolvers over their services, as REST uses them."""

from __future__ import annotations

import enum
import uuid
from datetime import datetime
from typing import Annotated, Any, TypeAlias

import strawberry
from strawberry.scalars import JSON

from app.api.graphql.automation import Task
from app.api.graphql.context import Info
from app.api.graphql.errors import ErrorTypes, mutate, parse, plain
from app.api.graphql.types import Deleted, DeleteResult, User, UserTier, load_user
from app.routing import service as routing_service
from app.routing.schemas import RouteDecision as RouteDecisionRead
from app.routing.schemas import RoutingPolicyCreate, RoutingPolicyRead, RoutingPolicyUpdate, TierSpec
from app.scoring import service as scoring_service
from app.scoring.schemas import (
    CloseProbabilityRead,
    ModelMetrics,
    ScoreResult,
    ScoringModelCreate,
    ScoringModelRead,
)
from app.tasks import service as task_service
from app.users import service as user_service
from app.users.models import UserTier as UserTierEnum
from app.users.schemas import UserCreate, UserUpdate

UNSET: Any = strawberry.UNSET


# --- users ------------------------------------------------------------------------------------------------------


@strawberry.input
class UserCreateInput:
    name: str
    email: str
    tier: UserTier = UserTierEnum.regular  # type: ignore[valid-type]
    capacity: int = 20
    timezone: str = "UTC"
    active: bool = True


@strawberry.input
class UserUpdateInput:
    name: str | None = UNSET
    email: str | None = UNSET
    tier: UserTier | None = UNSET  # type: ignore[valid-type]
    capacity: int | None = UNSET
    timezone: str | None = UNSET
    active: bool | None = UNSET


UserResult: TypeAlias = Annotated[User | ErrorTypes, strawberry.union("UserResult")]


# --- scoring ----------------------------------------------------------------------------------------------------


@strawberry.enum(name="ScoringModelKind")
class ScoringModelKind(enum.StrEnum):
    factors = "factors"
    learned = "learned"


@strawberry.enum(name="ScoringModelStatus")
class ScoringModelStatus(enum.StrEnum):
    draft = "draft"
    training = "training"
    trained = "trained"
    failed = "failed"


@strawberry.type
class CalibrationBin:
    decile: int
    count: int
    mean_predicted: float
    observed_rate: float


@strawberry.type(description="One algorithm fitted on the training split, measured on the hold-out")
class ScoringCandidate:
    algorithm: str
    roc_auc: float | None
    log_loss: float
    brier: float
    chosen: bool


@strawberry.type(description="A simple baseline measured on the same hold-out (e.g. each stage's success rate)")
class ScoringBaseline:
    name: str
    roc_auc: float | None
    log_loss: float
    brier: float
    calibration: list[CalibrationBin]


@strawberry.type(description="Hold-out metrics of a trained learned model")
class ScoringMetrics:
    roc_auc: float | None
    log_loss: float
    calibration: list[CalibrationBin]
    train_size: int
    holdout_size: int
    base_rate: float
    train_roc_auc: float | None
    brier: float | None
    algorithm: str | None
    candidates: list[ScoringCandidate] | None
    baseline: ScoringBaseline | None
    holdout_elements: int | None
    note: str | None

    @classmethod
    def from_read(cls, read: ModelMetrics) -> ScoringMetrics:
        data = read.model_dump(exclude={"calibration", "candidates", "baseline"})
        baseline = None
        if read.baseline is not None:
            baseline = ScoringBaseline(
                **read.baseline.model_dump(exclude={"calibration"}),
                calibration=[CalibrationBin(**b.model_dump()) for b in read.baseline.calibration],
            )
        return cls(
            **data,
            calibration=[CalibrationBin(**b.model_dump()) for b in read.calibration],
            candidates=[ScoringCandidate(**c.model_dump()) for c in read.candidates] if read.candidates else None,
            baseline=baseline,
        )


@strawberry.type(description="A versioned scoring model of an entity type; one version per type is active")
class ScoringModel:
    id: uuid.UUID
    name: str
    entity_type: str
    kind: ScoringModelKind
    version: int
    status: ScoringModelStatus
    active: bool
    factors: JSON | None = strawberry.field(description="Factors models: the factors, as REST takes them")
    features: list[str] | None = strawberry.field(description="Learned models: the field codes used")
    training: JSON | None
    metrics: ScoringMetrics | None
    error: str | None
    algorithm: str | None = strawberry.field(description="Trained learned models: the algorithm kept")
    params: JSON | None = strawberry.field(
        description="The learned model as data: encodings and coefficients, or trees"
    )
    created_at: datetime
    trained_at: datetime | None

    @classmethod
    def from_read(cls, read: ScoringModelRead) -> ScoringModel:
        data = read.model_dump(exclude={"metrics", "kind", "status"})
        return cls(
            **data,
            kind=ScoringModelKind(read.kind),
            status=ScoringModelStatus(read.status),
            metrics=ScoringMetrics.from_read(read.metrics) if read.metrics else None,
        )


@strawberry.input
class ScoringModelCreateInput:
    name: str
    entity_type: str = strawberry.field(description="Entity type code or id")
    kind: ScoringModelKind
    factors: JSON | None = strawberry.field(
        default=UNSET,
        description='Factors models: [{"kind": "enum" | "range" | "presence" | "contains", "field", …}] as in REST',
    )
    features: list[str] | None = strawberry.field(default=UNSET, description="Learned models: field codes")
    training: JSON | None = strawberry.field(default=UNSET, description="Learned models: training options")


@strawberry.type
class ScoreContribution:
    feature: str
    value: JSON | None
    contribution: float = strawberry.field(description="Points (factors) or log-odds (learned) this feature added")


@strawberry.type(name="ElementScore", description="A score from 1 to 100 with the features that made it")
class ElementScore:
    score: int
    model_id: uuid.UUID
    version: int
    probability: float | None
    baseline: float | None
    explanation: list[ScoreContribution]

    @classmethod
    def from_read(cls, read: ScoreResult) -> ElementScore:
        data = read.model_dump(exclude={"explanation"})
        explanation = [
            ScoreContribution(feature=c.feature, value=c.value, contribution=c.contribution) for c in read.explanation
        ]
        return cls(**data, explanation=explanation)


@strawberry.type(description="The probability that an element reaches a success stage, and why")
class CloseProbability:
    element_id: uuid.UUID
    probability: float
    stage_code: str | None
    closed: bool = strawberry.field(description="Already in a success (1) or failure (0) stage: no model involved")
    model_id: uuid.UUID | None
    version: int | None
    algorithm: str | None
    baseline: float | None
    explanation: list[ScoreContribution]
    computed_at: datetime

    @classmethod
    def from_read(cls, read: CloseProbabilityRead) -> CloseProbability:
        data = read.model_dump(exclude={"explanation"})
        explanation = [
            ScoreContribution(feature=c.feature, value=c.value, contribution=c.contribution) for c in read.explanation
        ]
        return cls(**data, explanation=explanation)


ScoringModelResult: TypeAlias = Annotated[ScoringModel | ErrorTypes, strawberry.union("ScoringModelResult")]
CloseProbabilityResult: TypeAlias = Annotated[CloseProbability | ErrorTypes, strawberry.union("CloseProbabilityResult")]
ElementScoreResult: TypeAlias = Annotated[ElementScore | ErrorTypes, strawberry.union("ElementScoreResult")]


# --- routing ----------------------------------------------------------------------------------------------------


@strawberry.type
class RoutingPriority:
    field: str
    value: JSON | None


@strawberry.type(description="Elements scoring at least `minScore` (and below the next tier) land here")
class RoutingTier:
    name: str
    min_score: int
    user_tier: UserTier | None  # type: ignore[valid-type]
    user_ids: list[uuid.UUID] | None
    priority: RoutingPriority | None
    stage_code: str | None
    script: str | None

    @classmethod
    def from_read(cls, read: TierSpec) -> RoutingTier:
        data = read.model_dump(exclude={"priority"})
        priority = RoutingPriority(field=read.priority.field, value=read.priority.value) if read.priority else None
        return cls(**data, priority=priority)


@strawberry.type
class RoutingPolicy:
    id: uuid.UUID
    name: str
    entity_type: str
    tiers: list[RoutingTier]
    active: bool
    created_at: datetime
    updated_at: datetime

    @classmethod
    def from_read(cls, read: RoutingPolicyRead) -> RoutingPolicy:
        data = read.model_dump(exclude={"tiers"})
        return cls(**data, tiers=[RoutingTier.from_read(t) for t in read.tiers])


@strawberry.input
class RoutingPriorityInput:
    field: str = strawberry.field(description="A custom field code")
    value: JSON | None = None


@strawberry.input
class RoutingTierInput:
    name: str
    min_score: int
    user_tier: UserTier | None = UNSET  # type: ignore[valid-type]
    user_ids: list[uuid.UUID] | None = UNSET
    priority: RoutingPriorityInput | None = UNSET
    stage_code: str | None = UNSET
    script: str | None = strawberry.field(
        default=UNSET, description="A text template, e.g. 'Call {{ title }} ({{ score }})'"
    )


@strawberry.input
class RoutingPolicyCreateInput:
    name: str
    entity_type: str
    tiers: list[RoutingTierInput] | None = strawberry.field(
        default=UNSET, description="Default: 80+ senior, 50-79 regular, below automatic"
    )
    active: bool = True


@strawberry.input
class RoutingPolicyUpdateInput:
    name: str | None = UNSET
    tiers: list[RoutingTierInput] | None = UNSET
    active: bool | None = UNSET


@strawberry.type(description="Where routing put an element, and why (also written on its timeline)")
class RouteDecision:
    element_id: uuid.UUID
    policy_id: uuid.UUID
    score: int
    tier: str
    assigned_to_id: uuid.UUID | None
    assignee_name: str | None
    over_capacity: bool
    load: int | None
    capacity: int | None
    priority: JSON | None
    stage_code: str | None
    script: str | None = strawberry.field(description="The rendered script, given to the assignee as a task")
    task_id: uuid.UUID | None
    reasons: list[str]

    @strawberry.field(description="The user the element went to")
    async def assigned_to(self, info: Info) -> User | None:
        return await load_user(info, self.assigned_to_id)

    @strawberry.field(description="The task that carries the script")
    async def task(self, info: Info) -> Task | None:
        if self.task_id is None:
            return None
        return Task.from_read(await task_service.get_task(info.context.session, info.context.who, self.task_id))

    @classmethod
    def from_read(cls, read: RouteDecisionRead) -> RouteDecision:
        data = read.model_dump(exclude={"assigned_to"})
        return cls(**data, assigned_to_id=read.assigned_to)


RoutingPolicyResult: TypeAlias = Annotated[RoutingPolicy | ErrorTypes, strawberry.union("RoutingPolicyResult")]
RouteDecisionResult: TypeAlias = Annotated[RouteDecision | ErrorTypes, strawberry.union("RouteDecisionResult")]


# --- the root fields ----------------------------------------------------------------------------------------------


@strawberry.type
class PeopleQuery:
    @strawberry.field(description="The workspace's users, by name; optionally of one tier or activity")
    async def users(self, info: Info, tier: UserTier | None = None, active: bool | None = None) -> list[User]:  # type: ignore[valid-type]
        rows = await user_service.list_users(info.context.session, info.context.who, tier=tier, active=active)
        return [User.from_read(u) for u in rows]

    @strawberry.field
    async def user(self, info: Info, id: uuid.UUID) -> User:
        return User.from_read(await user_service.get_user(info.context.session, info.context.who, id))

    @strawberry.field(description="Scoring models (every version), optionally of one entity type")
    async def scoring_models(self, info: Info, entity_type: str | None = None) -> list[ScoringModel]:
        rows = await scoring_service.list_models(info.context.session, info.context.who, entity_type=entity_type)
        return [ScoringModel.from_read(m) for m in rows]

    @strawberry.field
    async def scoring_model(self, info: Info, id: uuid.UUID) -> ScoringModel:
        return ScoringModel.from_read(await scoring_service.get_model(info.context.session, info.context.who, id))

    @strawberry.field
    async def routing_policies(self, info: Info, entity_type: str | None = None) -> list[RoutingPolicy]:
        rows = await routing_service.list_policies(info.context.session, info.context.who, entity_type=entity_type)
        return [RoutingPolicy.from_read(p) for p in rows]

    @strawberry.field
    async def routing_policy(self, info: Info, id: uuid.UUID) -> RoutingPolicy:
        return RoutingPolicy.from_read(await routing_service.get_policy(info.context.session, info.context.who, id))


@strawberry.type
class PeopleMutation:
    # --- users ---

    @strawberry.mutation
    async def create_user(self, info: Info, input: UserCreateInput) -> UserResult:
        async def run() -> User:
            data = parse(UserCreate, plain(input))
            return User.from_read(await user_service.create_user(info.context.session, info.context.who, data))

        return await mutate(info, run)

    @strawberry.mutation
    async def update_user(self, info: Info, id: uuid.UUID, input: UserUpdateInput) -> UserResult:
        async def run() -> User:
            data = parse(UserUpdate, plain(input))
            return User.from_read(await user_service.update_user(info.context.session, info.context.who, id, data))

        return await mutate(info, run)

    @strawberry.mutation(description="Refused (Conflict) while elements are assigned to the user")
    async def delete_user(self, info: Info, id: uuid.UUID) -> DeleteResult:
        async def run() -> Deleted:
            await user_service.delete_user(info.context.session, info.context.who, id)
            return Deleted(ref=str(id))

        return await mutate(info, run)

    # --- scoring ---

    @strawberry.mutation
    async def create_scoring_model(self, info: Info, input: ScoringModelCreateInput) -> ScoringModelResult:
        async def run() -> ScoringModel:
            data = parse(ScoringModelCreate, plain(input))
            return ScoringModel.from_read(
                await scoring_service.create_model(info.context.session, info.context.who, data)
            )

        return await mutate(info, run)

    @strawberry.mutation(
        description="Train a learned model in the background (status `training`); a trained one gets a new version"
    )
    async def train_scoring_model(self, info: Info, id: uuid.UUID) -> ScoringModelResult:
        async def run() -> ScoringModel:
            return ScoringModel.from_read(
                await scoring_service.request_training(info.context.session, info.context.who, id)
            )

        return await mutate(info, run)

    @strawberry.mutation(description="Make this version the type's active model")
    async def activate_scoring_model(self, info: Info, id: uuid.UUID) -> ScoringModelResult:
        async def run() -> ScoringModel:
            return ScoringModel.from_read(
                await scoring_service.activate_model(info.context.session, info.context.who, id)
            )

        return await mutate(info, run)

    @strawberry.mutation(description="Score one element (the type's active model by default), store and explain it")
    async def score_element(self, info: Info, id: uuid.UUID, model_id: uuid.UUID | None = None) -> ElementScoreResult:
        async def run() -> ElementScore:
            read = await scoring_service.score_element(info.context.session, info.context.who, id, model_id=model_id)
            return ElementScore.from_read(read)

        return await mutate(info, run)

    @strawberry.mutation(
        description="Estimate the element's probability of reaching a success stage now, explained, on its timeline"
    )
    async def compute_close_probability(self, info: Info, id: uuid.UUID) -> CloseProbabilityResult:
        async def run() -> CloseProbability:
            read = await scoring_service.explain_close_probability(info.context.session, info.context.who, id)
            return CloseProbability.from_read(read)

        return await mutate(info, run)

    # --- routing ---

    @strawberry.mutation
    async def create_routing_policy(self, info: Info, input: RoutingPolicyCreateInput) -> RoutingPolicyResult:
        async def run() -> RoutingPolicy:
            data = parse(RoutingPolicyCreate, plain(input))
            return RoutingPolicy.from_read(
                await routing_service.create_policy(info.context.session, info.context.who, data)
            )

        return await mutate(info, run)

    @strawberry.mutation
    async def update_routing_policy(
        self, info: Info, id: uuid.UUID, input: RoutingPolicyUpdateInput
    ) -> RoutingPolicyResult:
        async def run() -> RoutingPolicy:
            data = parse(RoutingPolicyUpdate, plain(input))
            return RoutingPolicy.from_read(
                await routing_service.update_policy(info.context.session, info.context.who, id, data)
            )

        return await mutate(info, run)

    @strawberry.mutation
    async def delete_routing_policy(self, info: Info, id: uuid.UUID) -> DeleteResult:
        async def run() -> Deleted:
            await routing_service.delete_policy(info.context.session, info.context.who, id)
            return Deleted(ref=str(id))

        return await mutate(info, run)

    @strawberry.mutation(description="Route one element by its score: tier, assignee by free capacity, priority, stage")
    async def route_element(self, info: Info, id: uuid.UUID, policy_id: uuid.UUID | None = None) -> RouteDecisionResult:
        async def run() -> RouteDecision:
            read = await routing_service.route_element(info.context.session, info.context.who, id, policy_id=policy_id)
            return RouteDecision.from_read(read)

        return await mutate(info, run)
