from typing import Any, ClassVar

import pytest

from app.errors import Invalid
from app.kit.cursor import decode_cursor, encode_cursor
from app.kit.filters import And, Condition, Not, Or, conditions, evaluate, parse_filter


class TestParseFilter:
    def test_empty_means_no_filter(self) -> None:
        assert parse_filter(None) is None
        assert parse_filter("") is None
        assert parse_filter({}) is None

    def test_tree(self) -> None:
        node = parse_filter(
            '{"and": [{"field": "a", "op": "eq", "value": 1},'
            ' {"or": [{"field": "b", "op": "in", "value": [1, 2]},'
            ' {"not": {"field": "c", "op": "is_null", "value": true}}]}]}'
        )
        assert isinstance(node, And)
        assert isinstance(node.items[1], Or)
        assert isinstance(node.items[1].items[1], Not)
        assert [c.field for c in conditions(node)] == ["a", "b", "c"]

    def test_every_problem_is_reported_with_its_path(self) -> None:
        with pytest.raises(Invalid) as caught:
            parse_filter(
                {"or": [{"field": "a", "op": "like", "value": 1}, {"field": "b", "op": "in", "value": 3}, [], {"x": 1}]}
            )
        paths = [e.field for e in caught.value.errors]
        assert paths == ["filter.or[0].op", "filter.or[1].value", "filter.or[2]", "filter.or[3]"]

    @pytest.mark.parametrize(
        ("raw", "message"),
        [
            ("{not json", "not valid JSON"),
            ({"and": []}, "non-empty list"),
            ({"field": "a", "op": "between", "value": [1]}, "[low, high]"),
            ({"field": "a", "op": "is_null", "value": "yes"}, "true or false"),
            ({"field": "a", "op": "eq", "value": None}, "one value"),
        ],
    )
    def test_bad_shapes(self, raw: object, message: str) -> None:
        with pytest.raises(Invalid) as caught:
            parse_filter(raw)
        text = caught.value.detail + " ".join(e.message for e in caught.value.errors)
        assert message in text

    def test_depth_and_size_are_bounded(self) -> None:
        deep: dict[str, object] = {"field": "a", "op": "eq", "value": 1}
        for _ in range(12):
            deep = {"not": deep}
        with pytest.raises(Invalid):
            parse_filter(deep)
        wide = {"or": [{"field": "a", "op": "eq", "value": i} for i in range(60)]}
        with pytest.raises(Invalid):
            parse_filter(wide)


class TestEvaluate:
    record: ClassVar[dict[str, Any]] = {
        "industry": "it",
        "budget": 50,
        "tags": ["a", "b"],
        "email": None,
        "title": "ACME Corp",
    }

    @pytest.mark.parametrize(
        ("flt", "expected"),
        [
            ({"field": "industry", "op": "eq", "value": "it"}, True),
            ({"field": "industry", "op": "ne", "value": "it"}, False),
            ({"field": "email", "op": "ne", "value": "x"}, True),
            ({"field": "email", "op": "is_null", "value": True}, True),
            ({"field": "budget", "op": "between", "value": [10, 50]}, True),
            ({"field": "budget", "op": "gt", "value": 50}, False),
            ({"field": "tags", "op": "eq", "value": "b"}, True),
            ({"field": "tags", "op": "nin", "value": ["b"]}, False),
            ({"field": "title", "op": "icontains", "value": "corp"}, True),
            ({"field": "title", "op": "starts_with", "value": "Corp"}, False),
            ({"not": {"field": "industry", "op": "in", "value": ["it", "bank"]}}, False),
            (
                {
                    "or": [
                        {"field": "budget", "op": "lt", "value": 0},
                        {"field": "missing", "op": "is_null", "value": True},
                    ]
                },
                True,
            ),
        ],
    )
    def test_cases(self, flt: dict[str, object], expected: bool) -> None:
        assert evaluate(parse_filter(flt), self.record) is expected

    def test_condition_keeps_its_path(self) -> None:
        node = parse_filter({"and": [{"field": "a", "op": "eq", "value": 1}]})
        assert isinstance(node, And)
        assert node.items[0] == Condition(field="a", op="eq", value=1, path="filter.and[0]")


class TestCursor:
    def test_round_trip(self) -> None:
        values = ["2024-01-01", None, "42.5", "4b6f1e9e-0a3c-4f0e-9d9e-1b2c3d4e5f60"]
        assert decode_cursor(encode_cursor(values), 4) == values

    def test_garbage_and_wrong_length_are_invalid(self) -> None:
        with pytest.raises(Invalid):
            decode_cursor("%%%", 2)
        with pytest.raises(Invalid):
            decode_cursor(encode_cursor([1, 2, 3]), 2)
