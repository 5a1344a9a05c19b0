"""The facade's transport: PHP bracket notation, PHP-style JSON arrays and batch references (no database)."""

from typing import Any, ClassVar

import pytest

from app.bitrix.dispatcher import method_name
from app.bitrix.transport import (
    TransportError,
    as_list,
    build_params,
    param,
    parse_query,
    php_json,
    resolve_references,
)


class TestParseQuery:
    def test_flat_and_nested(self) -> None:
        assert parse_query("a=1&b[c]=2&b[d][e]=3") == {"a": "1", "b": {"c": "2", "d": {"e": "3"}}}

    def test_percent_encoded_brackets_and_prefixes(self) -> None:
        parsed = parse_query("filter%5B%3E%3Did%5D=5&filter[%3Copportunity]=10.5&order%5BID%5D=ASC")
        assert parsed == {"filter": {">=id": "5", "<opportunity": "10.5"}, "order": {"ID": "ASC"}}

    def test_appended_and_indexed_lists(self) -> None:
        assert parse_query("select[]=id&select[]=title") == {"select": {"0": "id", "1": "title"}}
        assert as_list(parse_query("f[@id][0]=1&f[@id][1]=2")["f"]["@id"]) == ["1", "2"]

    def test_later_values_win_and_blanks_are_kept(self) -> None:
        assert parse_query("a=1&a=2&b=") == {"a": "2", "b": ""}

    def test_plus_and_utf8(self) -> None:
        assert parse_query("title=%D0%A2%D0%B5%D1%81%D1%82+1") == {"title": "Тест 1"}

    def test_unclosed_bracket_is_a_plain_name(self) -> None:
        assert parse_query("a[b=1") == {"a[b": "1"}

    def test_scalar_then_nested_replaces(self) -> None:
        assert parse_query("a=1&a[b]=2") == {"a": {"b": "2"}}

    def test_limits(self) -> None:
        with pytest.raises(TransportError):
            build_params([("a" + "[x]" * 20, "1")])
        with pytest.raises(TransportError):
            build_params([("k" * 600, "1")])
        with pytest.raises(TransportError):
            parse_query("&".join(f"a{i}=1" for i in range(10_001)))

    def test_bad_utf8(self) -> None:
        with pytest.raises(UnicodeDecodeError):
            parse_query(b"title=\xff\xfe")
        with pytest.raises(TransportError):
            parse_query("title=%FF%FE")


class TestParams:
    def test_case_insensitive(self) -> None:
        assert param({"entityTypeId": 128}, "entitytypeid") == 128
        assert param({"ENTITYTYPEID": 128}, "entityTypeId") == 128
        assert param({"x": 1}, "entityTypeId") is None

    def test_method_names(self) -> None:
        assert method_name(" CRM.Item.List.json ") == "crm.item.list"
        assert method_name("batch") == "batch"


class TestPhpJson:
    def test_sequential_keys_are_a_list(self) -> None:
        assert php_json({"0": "a", "1": "b"}) == ["a", "b"]
        assert php_json({}) == []

    def test_other_keys_stay_a_map(self) -> None:
        assert php_json({"1": "a", "2": "b"}) == {"1": "a", "2": "b"}
        assert php_json({"0": "a", "x": "b"}) == {"0": "a", "x": "b"}


class TestReferences:
    outputs: ClassVar[dict[str, Any]] = {"result": {"add": {"item": {"id": 7, "title": "A"}}, "0": [{"id": 3}]}}

    def test_whole_value_keeps_its_type(self) -> None:
        assert resolve_references("$result[add][item][id]", self.outputs) == 7

    def test_inside_text(self) -> None:
        assert resolve_references("copy of $result[add][item][title]", self.outputs) == "copy of A"

    def test_nested_params_and_numeric_labels(self) -> None:
        resolved = resolve_references({"fields": {"parent": "$result[0][0][id]"}}, self.outputs)
        assert resolved == {"fields": {"parent": 3}}

    def test_missing_reference_is_empty(self) -> None:
        assert resolve_references("$result[nope][id]", self.outputs) is None
        assert resolve_references("x$result[nope][id]", self.outputs) == "x"
