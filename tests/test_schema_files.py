import json
import re
from pathlib import Path

from app.cli import graphql_document, openapi_document

SCHEMA_DIR = Path(__file__).resolve().parent.parent / "schema"


def test_openapi_document_is_current() -> None:
    committed = (SCHEMA_DIR / "openapi.json").read_text()
    assert committed == openapi_document(), "schema/openapi.json is stale: run `stageflow export-schema`"


def test_operation_ids_are_the_handler_names() -> None:
    document = openapi_document()
    for operation_id in ("create_element", "list_elements", "move_element", "get_board", "create_entity_type"):
        assert f'"operationId": "{operation_id}"' in document


def test_graphql_sdl_is_current() -> None:
    committed = (SCHEMA_DIR / "schema.graphql").read_text()
    assert committed == graphql_document(), "schema/schema.graphql is stale: run `stageflow export-schema`"


def test_every_schema_reference_resolves() -> None:
    # Two pydantic models with one class name get module-qualified component names, and the hand-written
    # `#/components/schemas/Problem` references then point at nothing: generated clients refuse the document.
    document = json.loads(openapi_document())
    components = set(document["components"]["schemas"])
    referenced = set(re.findall(r'"#/components/schemas/([^"]+)"', json.dumps(document)))
    assert referenced - components == set()
    assert not [name for name in components if name.startswith("app__")], "rename the clashing model"
