"""The benchmark's data set: the `lead` type, its pipelines and N deterministic elements (seed 47)."""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

INDUSTRIES = [
    "it",
    "retail",
    "bank",
    "insurance",
    "telecom",
    "energy",
    "health",
    "education",
    "logistics",
    "construction",
    "media",
    "government",
]
SOURCES = ["web", "ads", "referral", "partner", "event", "cold_call", "email", "social"]
PRIORITIES = ["low", "normal", "high", "urgent"]
TAGS = ["vip", "trial", "churn_risk", "upsell", "reseller", "startup"]
COUNTRIES = ["DE", "FR", "US", "GB", "ES", "IT", "NL", "PL", "SE", "BR", "IN", "JP", "CA", "AU", "MX", "TR"]
CITIES = ["Berlin", "Paris", "Austin", "Leeds", "Madrid", "Turin", "Utrecht", "Gdansk", "Malmo", "Recife"]
SYLLABLES = ["ka", "ro", "mi", "ten", "vo", "lux", "dra", "po", "zen", "qua", "bri", "tor", "ne", "sil", "fa"]
STAGES = [
    ("NEW", "New", "process"),
    ("CONTACTED", "Contacted", "process"),
    ("QUALIFIED", "Qualified", "process"),
    ("PROPOSAL", "Proposal", "process"),
    ("WON", "Won", "success"),
    ("LOST", "Lost", "failure"),
]
STAGE_CODES = [code for code, _, _ in STAGES]
DAY0 = date(2024, 1, 1)
DAYS = 730


def _options(values: list[str]) -> list[dict[str, str]]:
    return [{"value": v} for v in values]


# The 9 fields the issue names (`source` is a reserved system field, so the enum is `lead_source`) + 11 more.
FIELDS: list[dict[str, Any]] = [
    {"code": "company_size", "type": "integer", "min": 1},
    {"code": "industry", "type": "enum", "options": _options(INDUSTRIES)},
    {"code": "budget", "type": "decimal", "min": 0},
    {"code": "lead_source", "type": "enum", "options": _options(SOURCES)},
    {"code": "visits", "type": "integer", "min": 0},
    {"code": "time_on_site", "type": "decimal", "min": 0},
    {"code": "country", "type": "string"},
    {"code": "created_on", "type": "date"},
    {"code": "is_b2b", "type": "boolean"},
    {"code": "email", "type": "email"},
    {"code": "phone", "type": "phone"},
    {"code": "website", "type": "url"},
    {"code": "city", "type": "string"},
    {"code": "revenue_growth", "type": "decimal"},
    {"code": "last_contact_at", "type": "datetime"},
    {"code": "newsletter", "type": "boolean"},
    {"code": "priority", "type": "enum", "options": _options(PRIORITIES)},
    {"code": "tags", "type": "enum", "multiple": True, "options": _options(TAGS)},
    {"code": "annual_revenue", "type": "money"},
    {"code": "notes", "type": "text"},
]
assert len(FIELDS) == 20  # noqa: S101


def company_name(rng: random.Random) -> str:
    return "".join(rng.choice(SYLLABLES) for _ in range(3)).title()


@dataclass(frozen=True)
class Lead:
    """One generated element: the REST body and the row of the plain floor table."""

    index: int
    pipeline: int  # 0 or 1
    stage_code: str
    title: str
    amount: Decimal
    values: dict[str, Any]

    def body(self, pipeline_ids: list[str], user_ids: list[str] | None = None) -> dict[str, Any]:
        return {
            "title": self.title,
            "assigned_to": user_ids[self.index % len(user_ids)] if user_ids else None,
            "pipeline_id": pipeline_ids[self.pipeline],
            "stage_code": self.stage_code,
            "amount": str(self.amount),
            "currency": "EUR",
            "values": self.values,
        }


def make_lead(rng: random.Random, index: int) -> Lead:
    company = company_name(rng)
    city = rng.choice(CITIES)
    created_on = DAY0 + timedelta(days=rng.randrange(DAYS))
    last_contact = datetime(2024, 1, 1, tzinfo=UTC) + timedelta(minutes=rng.randrange(DAYS * 1440))
    values: dict[str, Any] = {
        "company_size": rng.randint(1, 5000),
        "industry": rng.choice(INDUSTRIES),
        "budget": f"{rng.randint(0, 1_000_000) / 100:.2f}",
        "lead_source": rng.choice(SOURCES),
        "visits": rng.randint(0, 300),
        "time_on_site": f"{rng.randint(0, 36000) / 10:.1f}",
        "country": rng.choice(COUNTRIES),
        "created_on": created_on.isoformat(),
        "is_b2b": rng.random() < 0.6,
        "email": f"contact{index}@{company.lower()}.example",
        "phone": f"+49{rng.randint(100000000, 999999999)}",
        "website": f"https://{company.lower()}.example",
        "city": city,
        "revenue_growth": f"{rng.randint(-5000, 15000) / 100:.2f}",
        "last_contact_at": last_contact.isoformat(),
        "newsletter": rng.random() < 0.3,
        "priority": rng.choice(PRIORITIES),
        "tags": sorted(rng.sample(TAGS, rng.randint(0, 2))),
        "annual_revenue": f"{rng.randint(10_000, 50_000_000)}.00",
        "notes": f"Met at {city}; interested in plan {rng.randint(1, 9)}.",
    }
    return Lead(
        index=index,
        pipeline=index % 2,
        stage_code=STAGE_CODES[rng.randrange(len(STAGE_CODES))],
        title=f"{company} {city} #{index}",
        amount=Decimal(rng.randint(100, 10_000_000)) / 100,
        values=values,
    )


def leads(seed: int, start: int, stop: int) -> Iterator[Lead]:
    """Leads number `start`…`stop-1`; each depends only on (seed, index), so any range can be regenerated."""
    for index in range(start, stop):
        yield make_lead(random.Random(seed * 10_000_019 + index), index)


# --- the plain table the floor is measured on -------------------------------------------------------------------

PLAIN_COLUMNS: list[tuple[str, str]] = [
    ("id", "uuid PRIMARY KEY"),
    ("pipeline", "integer NOT NULL"),
    ("stage_code", "text NOT NULL"),
    ("title", "text NOT NULL"),
    ("amount", "numeric(18,2)"),
    ("company_size", "integer"),
    ("industry", "text"),
    ("budget", "numeric"),
    ("lead_source", "text"),
    ("visits", "integer"),
    ("time_on_site", "numeric"),
    ("country", "text"),
    ("created_on", "date"),
    ("is_b2b", "boolean"),
    ("email", "text"),
    ("phone", "text"),
    ("website", "text"),
    ("city", "text"),
    ("revenue_growth", "numeric"),
    ("last_contact_at", "timestamptz"),
    ("newsletter", "boolean"),
    ("priority", "text"),
    ("tags", "text[]"),
    ("annual_revenue", "numeric"),
    ("notes", "text"),
]
# Ordinary single-column indexes on the columns the floor queries filter and sort on.
PLAIN_INDEXES = ["industry", "budget", "created_on", "stage_code"]


def plain_row(lead: Lead) -> tuple[Any, ...]:
    v = lead.values
    return (
        uuid.UUID(int=lead.index + 1),
        lead.pipeline,
        lead.stage_code,
        lead.title,
        lead.amount,
        v["company_size"],
        v["industry"],
        Decimal(v["budget"]),
        v["lead_source"],
        v["visits"],
        Decimal(v["time_on_site"]),
        v["country"],
        date.fromisoformat(v["created_on"]),
        v["is_b2b"],
        v["email"],
        v["phone"],
        v["website"],
        v["city"],
        Decimal(v["revenue_growth"]),
        datetime.fromisoformat(v["last_contact_at"]),
        v["newsletter"],
        v["priority"],
        v["tags"],
        Decimal(v["annual_revenue"]),
        v["notes"],
    )
