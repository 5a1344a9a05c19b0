import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

ModelKind = Literal["factors", "learned"]
ModelStatus = Literal["draft", "training", "trained", "failed"]


class _Factor(BaseModel):
    model_config = ConfigDict(extra="forbid")

    field: str = Field(min_length=1, max_length=63, description="A custom field code or title/source/amount/currency")
    weight: float = Field(default=1.0, ge=-1000, le=1000, description="Multiplies the factor's points")
    label: str | None = Field(default=None, max_length=200)


class EnumFactor(_Factor):
    """Points for a value of the field (for a multi-value field, the best matching value counts)."""

    kind: Literal["enum"]
    points: dict[str, float] = Field(min_length=1, examples=[{"it": 30, "bank": 20}])
    default: float = Field(default=0, description="Points for any other value, or none")


class RangeBand(BaseModel):
    model_config = ConfigDict(extra="forbid")

    min: float | None = Field(default=None, description="Inclusive lower bound; none for open")
    max: float | None = Field(default=None, description="Exclusive upper bound; none for open")
    points: float

    @model_validator(mode="after")
    def _ordered(self) -> "RangeBand":
        if self.min is not None and self.max is not None and self.min >= self.max:
            raise ValueError("min must be below max")
        return self


class RangeFactor(_Factor):
    """Points for the first band a number falls in."""

    kind: Literal["range"]
    ranges: list[RangeBand] = Field(min_length=1, max_length=50)
    default: float = Field(default=0, description="Points when no band matches or the value is missing")


class PresenceFactor(_Factor):
    """Points when the field has a value."""

    kind: Literal["presence"]
    points: float
    absent_points: float = 0


class ContainsFactor(_Factor):
    """Points when the text contains a phrase."""

    kind: Literal["contains"]
    text: str = Field(min_length=1, max_length=200)
    points: float
    case_sensitive: bool = False


Factor = Annotated[EnumFactor | RangeFactor | PresenceFactor | ContainsFactor, Field(discriminator="kind")]


class TrainingOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    holdout_fraction: float = Field(default=0.2, ge=0.05, le=0.5)
    l2: float = Field(default=1.0, ge=0, le=1e6, description="L2 penalty on the coefficients")
    bins: int = Field(default=5, ge=0, le=20, description="Quantile bins per numeric feature (0: linear only)")
    min_category_count: int = Field(default=10, ge=1, description="Rarer categories are pooled as `other`")
    seed: int = 0
    algorithm: Literal["auto", "logistic", "boosted_trees"] = Field(
        default="auto",
        description="`auto` fits both on the same split and keeps the boosted trees only when their hold-out ROC AUC "
        "beats the logistic model's by 0.002 (boosted trees need LightGBM where training runs; `auto` falls back to "
        "logistic without it)",
    )
    num_leaves: int = Field(default=7, ge=2, le=63, description="Boosted trees: leaves per tree")
    learning_rate: float = Field(default=0.05, gt=0, le=1, description="Boosted trees: shrinkage per tree")
    max_trees: int = Field(
        default=500, ge=1, le=2000, description="Boosted trees: the most trees (early stopping picks fewer)"
    )
    retrain_every_hours: float | None = Field(
        default=None,
        gt=0,
        le=24 * 366,
        description="Retrain on a schedule (the worker's cron): while this model is the active one, a new version is "
        "trained once the newest is this many hours old, and takes over unless its hold-out ROC AUC is worse",
    )


class ScoringModelCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200)
    entity_type: str = Field(description="Entity type code or id")
    kind: ModelKind
    factors: list[Factor] | None = Field(default=None, max_length=200)
    features: list[str] | None = Field(default=None, max_length=200, description="Field codes (learned)")
    training: TrainingOptions | None = None

    @model_validator(mode="after")
    def _shape(self) -> "ScoringModelCreate":
        if self.kind == "factors" and not self.factors:
            raise ValueError("a factors model needs `factors`")
        if self.kind == "learned" and not self.features:
            raise ValueError("a learned model needs `features`")
        if self.kind == "factors" and (self.features or self.training):
            raise ValueError("`features` and `training` are for learned models")
        if self.kind == "learned" and self.factors:
            raise ValueError("`factors` are for factors models")
        return self


class CalibrationBin(BaseModel):
    decile: int
    count: int
    mean_predicted: float
    observed_rate: float


class CandidateMetrics(BaseModel):
    algorithm: str
    roc_auc: float | None
    log_loss: float
    brier: float
    chosen: bool


class BaselineMetrics(BaseModel):
    name: str = Field(description="The simple baseline, e.g. each stage's historical success rate")
    roc_auc: float | None
    log_loss: float
    brier: float
    calibration: list[CalibrationBin]


class ModelMetrics(BaseModel):
    roc_auc: float | None
    log_loss: float
    calibration: list[CalibrationBin]
    train_size: int
    holdout_size: int
    base_rate: float
    train_roc_auc: float | None = None
    brier: float | None = Field(default=None, description="Mean squared error of the probability on the hold-out")
    algorithm: str | None = Field(default=None, description="`logistic_regression_l2` or `gradient_boosted_trees`")
    candidates: list[CandidateMetrics] | None = Field(
        default=None, description="Every algorithm fitted on the same split, with its hold-out metrics"
    )
    baseline: BaselineMetrics | None = Field(
        default=None, description="Models reading `stage_code`: the per-stage success rate on the same hold-out"
    )
    holdout_elements: int | None = Field(
        default=None, description="History models: elements behind the hold-out's snapshots"
    )
    note: str | None = None


class ScoringModelRead(BaseModel):
    id: uuid.UUID
    name: str
    entity_type: str
    kind: ModelKind
    version: int
    status: ModelStatus
    active: bool
    factors: list[dict[str, Any]] | None = None
    features: list[str] | None = None
    training: dict[str, Any] | None = None
    metrics: ModelMetrics | None = None
    error: str | None = None
    algorithm: str | None = Field(default=None, description="Trained learned models: the algorithm kept")
    params: dict[str, Any] | None = Field(
        default=None, description="The learned model as data: encodings and coefficients, or trees"
    )
    created_at: datetime
    trained_at: datetime | None


class ScoringModelList(BaseModel):
    items: list[ScoringModelRead]


class ScoreRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model_id: uuid.UUID | None = Field(default=None, description="Default: the type's active model")


class Contribution(BaseModel):
    feature: str
    value: Any
    contribution: float = Field(description="Points (factors) or log-odds (learned) this feature added")


class ScoreResult(BaseModel):
    score: int = Field(ge=1, le=100)
    model_id: uuid.UUID
    version: int
    probability: float | None = Field(default=None, description="Learned models: probability of success")
    baseline: float | None = Field(
        default=None,
        description="Learned models: log-odds of an average element; baseline + contributions = logit(probability)",
    )
    explanation: list[Contribution]


class CloseProbabilityRead(BaseModel):
    element_id: uuid.UUID
    probability: float = Field(ge=0, le=1, description="Probability of reaching a success stage")
    stage_code: str | None
    closed: bool = Field(description="Already in a success (1) or failure (0) stage: no model involved")
    model_id: uuid.UUID | None = None
    version: int | None = None
    algorithm: str | None = None
    baseline: float | None = Field(
        default=None, description="Log-odds of an average element; baseline + contributions = logit(probability)"
    )
    explanation: list[Contribution] = Field(default_factory=list)
    computed_at: datetime
