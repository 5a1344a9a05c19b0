"""Factor scoring: weighted points per factor, normalised to 1–100 between the lowest and highest possible totals.

score = 1 + round(99 * (total - lowest) / (highest - lowest)); with nothing to tell elements apart it is 50.
"""

from collections.abc import Callable
from decimal import Decimal
from typing import Any

from pydantic import TypeAdapter

from app.scoring.schemas import ContainsFactor, Contribution, EnumFactor, Factor, PresenceFactor, RangeFactor

FACTORS = TypeAdapter(list[Factor])


def _items(value: Any) -> list[Any]:
    if value is None or value == "" or value == []:
        return []
    return value if isinstance(value, list) else [value]


def _key(value: Any) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float | Decimal):
        return float(value)
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _enum_points(factor: EnumFactor, items: list[Any]) -> float:
    matched = [factor.points[_key(v)] for v in items if _key(v) in factor.points]
    return max(matched) if matched else factor.default


def _range_points(factor: RangeFactor, items: list[Any]) -> float:
    for item in items:
        number = _number(item)
        if number is None:
            continue
        for band in factor.ranges:
            if (band.min is None or number >= band.min) and (band.max is None or number < band.max):
                return band.points
    return factor.default


def _contains_points(factor: ContainsFactor, items: list[Any]) -> float:
    needle = factor.text if factor.case_sensitive else factor.text.lower()
    for item in items:
        text = str(item) if factor.case_sensitive else str(item).lower()
        if needle in text:
            return factor.points
    return 0.0


def raw_points(factor: Factor, value: Any) -> float:
    items = _items(value)
    if isinstance(factor, EnumFactor):
        return _enum_points(factor, items)
    if isinstance(factor, RangeFactor):
        return _range_points(factor, items)
    if isinstance(factor, PresenceFactor):
        return factor.points if items else factor.absent_points
    return _contains_points(factor, items)


def candidates(factor: Factor) -> list[float]:
    """Every number of points the factor can give."""
    if isinstance(factor, EnumFactor):
        return [*factor.points.values(), factor.default]
    if isinstance(factor, RangeFactor):
        return [*(band.points for band in factor.ranges), factor.default]
    if isinstance(factor, PresenceFactor):
        return [factor.points, factor.absent_points]
    return [factor.points, 0.0]


def bounds(factors: list[Factor]) -> tuple[float, float]:
    lowest = sum(min(factor.weight * p for p in candidates(factor)) for factor in factors)
    highest = sum(max(factor.weight * p for p in candidates(factor)) for factor in factors)
    return lowest, highest


def normalise(total: float, lowest: float, highest: float) -> int:
    if highest <= lowest:
        return 50
    share = (total - lowest) / (highest - lowest)
    return max(1, min(100, 1 + round(99 * share)))


def score(factors: list[Factor], value_of: Callable[[str], Any]) -> tuple[int, list[Contribution]]:
    explanation: list[Contribution] = []
    total = 0.0
    for factor in factors:
        value = value_of(factor.field)
        points = factor.weight * raw_points(factor, value)
        total += points
        explanation.append(Contribution(feature=factor.label or factor.field, value=value, contribution=points))
    lowest, highest = bounds(factors)
    return normalise(total, lowest, highest), explanation
