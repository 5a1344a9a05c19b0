import uuid
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict

from app.elements.schemas import ElementRead


class RelationCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    parent_type: str
    child_type: str


class RelationRead(BaseModel):
    id: uuid.UUID
    parent_type: str
    child_type: str
    created_at: datetime


class RelationList(BaseModel):
    items: list[RelationRead]


class LinkCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    child_id: uuid.UUID


class LinkRead(BaseModel):
    parent_id: uuid.UUID
    child_id: uuid.UUID
    relation_id: uuid.UUID
    created_at: datetime


LinkDirection = Literal["children", "parents"]


class LinkedElements(BaseModel):
    items: list[ElementRead]
