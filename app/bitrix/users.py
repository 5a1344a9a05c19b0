"""`user.get`: the workspace's people, numbered, for `assignedById` and `employee` fields."""

from __future__ import annotations

from typing import Any

from app.bitrix import numbers
from app.bitrix.common import Answer, Call, method, start_of, to_int, window
from app.bitrix.errors import invalid
from app.users import service as user_service


@method("user.get", "user.search")
async def get_users(call: Call) -> Answer:
    users = await user_service.list_users(call.session, call.actor)
    numbered = await numbers.numbers_of(call.session, call.workspace_id, numbers.USER, [u.id for u in users])
    views: list[dict[str, Any]] = []
    for user in users:
        first, _, last = user.name.partition(" ")
        views.append(
            {
                "ID": str(numbered[user.id]),
                "ACTIVE": user.active,
                "NAME": first,
                "LAST_NAME": last,
                "EMAIL": user.email,
                "TIME_ZONE": user.timezone,
            }
        )
    filter_ = {key.upper().lstrip("="): value for key, value in (call.map("filter") or call.map("FILTER")).items()}
    for key in ("ID", "EMAIL", "ACTIVE"):
        direct = call.get(key)
        if direct is not None and key not in filter_:
            filter_[key] = direct
    unknown = set(filter_) - {"ID", "EMAIL", "ACTIVE", "NAME", "LAST_NAME"}
    if unknown:
        raise invalid(f"unknown filter field {sorted(unknown)[0]!r}")
    if "ID" in filter_:
        filter_["ID"] = str(to_int(filter_["ID"], "ID"))
    views.sort(key=lambda v: int(v["ID"]))
    views = [v for v in views if all(str(v[k]).lower() == str(value).lower() for k, value in filter_.items())]
    chunk, total, after = window(views, start_of(call))
    return Answer(chunk, total=total, next=after)
