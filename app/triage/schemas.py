import uuid
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from app.triage.model import MAX_EXAMPLES

EncoderChoice = Literal["auto", "embeddings", "tfidf"]
MAX_SIMILAR = 20


class TriageConfigWrite(BaseModel):
    model_config = ConfigDict(extra="forbid")

    text_fields: list[str] = Field(
        min_length=1, max_length=5, description="Text fields (string or text; `title` too) read, in this order"
    )
    category_field: str = Field(min_length=1, max_length=63, description="The enum field holding the category")
    urgency_field: str = Field(min_length=1, max_length=63, description="The enum field holding the urgency")


class TriageHoldout(BaseModel):
    accuracy: float
    macro_f1: float
    baseline_accuracy: float = Field(description="The majority class's accuracy on the same hold-out part")
    classes: dict[str, int] = Field(description="Labelled examples per value")


class TriageMetrics(BaseModel):
    examples: int
    holdout: int
    encoder: str
    category: TriageHoldout
    urgency: TriageHoldout
    timings: dict[str, float]
    progress: list[str] = Field(default_factory=list, description="What the training did, step by step")


class TriageConfigRead(BaseModel):
    entity_type: str
    text_fields: list[str]
    category_field: str
    urgency_field: str
    status: Literal["untrained", "trained", "failed"]
    encoder: str | None = Field(description="embeddings (all-MiniLM-L6-v2) or tfidf, once trained")
    embeddings_available: bool = Field(description="Whether this server can use the embedding model")
    metrics: TriageMetrics | None
    error: str | None
    trained_at: datetime | None
    updated_at: datetime


class TriageTrainRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    encoder: EncoderChoice = Field(
        default="auto", description="auto: embeddings when the `triage` extra is installed, else TF-IDF"
    )
    max_examples: int = Field(default=MAX_EXAMPLES, ge=10, le=MAX_EXAMPLES, description="The newest labelled ones")


class TriageElementRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    apply: bool = Field(default=False, description="Also set the category and urgency fields")
    similar: int = Field(default=5, ge=0, le=MAX_SIMILAR, description="How many similar solved requests")


class TriageTerm(BaseModel):
    term: str = Field(description="A word, word pair, or …part… of a word (character 3-gram)")
    weight: float


class TriageExample(BaseModel):
    element_id: uuid.UUID
    title: str
    similarity: float
    category: str | None
    urgency: str | None = None


class TriageLabel(BaseModel):
    field: str
    value: str
    probability: float
    probabilities: dict[str, float]
    terms: list[TriageTerm] = Field(description="TF-IDF: the terms of the text that weigh most for this value")


class TriageResultRead(BaseModel):
    element_id: uuid.UUID
    encoder: str
    category: TriageLabel
    urgency: TriageLabel
    nearest_examples: list[TriageExample] = Field(
        description="Embeddings: the nearest labelled requests (that you may read), which explain the decision"
    )
    similar_solved: list[TriageExample] = Field(
        description="The most similar solved requests (in a success stage, or closed) that you may read"
    )
    applied: bool
    text_truncated: bool = Field(description="The text was longer than the part triage reads")

    def timeline(self) -> dict[str, Any]:
        return {
            "encoder": self.encoder,
            "category": self.category.value,
            "category_probability": self.category.probability,
            "urgency": self.urgency.value,
            "urgency_probability": self.urgency.probability,
            "terms": {
                "category": [t.term for t in self.category.terms],
                "urgency": [t.term for t in self.urgency.terms],
            },
            "nearest": [str(e.element_id) for e in self.nearest_examples],
            "similar_solved": [str(e.element_id) for e in self.similar_solved],
            "applied": self.applied,
        }
