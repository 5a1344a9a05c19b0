"""The audit row of a GraphQL mutation (app.audit): recorded by `mutate`, the one place every mutation commits."""

from __future__ import annotations

import uuid
from typing import Any

from strawberry.types.nodes import SelectedField

from app.api.graphql.context import Info
from app.api.graphql.types import Element
from app.audit import service as audit


async def record_mutation(info: Info, result: Any) -> None:
    actor = info.context.actor
    if actor is None:
        return  # a mutation nobody is signed in for (logging in) has no one to record
    selected = info.selected_fields[0] if info.selected_fields else None
    arguments: dict[str, Any] = selected.arguments if isinstance(selected, SelectedField) else {}
    object_type = audit.object_type_of(info.field_name)
    object_id = getattr(result, "id", None) or getattr(result, "ref", None) or arguments.get("id")
    element_id: uuid.UUID | None
    if isinstance(result, Element):  # the generic element and every typed one (`createLead`)
        element_id = result.id
    elif object_type == "element":
        element_id = audit.as_uuid(str(object_id))
    else:
        element_id = audit.as_uuid(arguments.get("parentId")) if object_type == "elements" else None
    details: dict[str, Any] = {"arguments": sorted(arguments)}
    details.update(audit.field_codes(arguments.get("input")))
    request = getattr(info.context, "request", None)
    client = getattr(request, "client", None)
    change = audit.Change(
        action=info.field_name,
        object_type=object_type,
        object_id=str(object_id) if object_id is not None else None,
        element_id=element_id,
        status=200,
        details=details,
    )
    await audit.record(info.context.session, actor, client.host if client else None, change)
