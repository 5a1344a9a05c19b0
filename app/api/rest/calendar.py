import uuid
from datetime import datetime
from http import HTTPStatus
from typing import Annotated

from fastapi import Path, Query, Request, Response

from app.api.rest.common import READ_ERRORS, WRITE_ERRORS, make_router
from app.api.rest.deps import ActorDep, SessionDep
from app.api.rest.problems import problem_responses
from app.calendar import service
from app.calendar.schemas import (
    CalendarFeedCreated,
    EventCreate,
    EventPage,
    EventRead,
    EventUpdate,
    ScheduleRead,
    UserCalendar,
    WeekSchedule,
)

router = make_router(tags=["calendar"])
GUARDED_READ_ERRORS = problem_responses(401, 403, 404, 422)
ICS_MEDIA_TYPE = "text/calendar"
From = Annotated[
    datetime, Query(alias="from", description="Inclusive; a date or a time without an offset is in the user's zone")
]
To = Annotated[datetime, Query(alias="to", description="Exclusive; at most 366 days after `from`")]


@router.post("/calendar/events", status_code=HTTPStatus.CREATED, responses=WRITE_ERRORS)
async def create_calendar_event(data: EventCreate, session: SessionDep, actor: ActorDep) -> EventRead:
    return await service.create_event(session, actor, data)


@router.get("/calendar/events", responses=READ_ERRORS)
async def list_calendar_events(
    session: SessionDep,
    actor: ActorDep,
    user_id: Annotated[uuid.UUID | None, Query(description="Events this user owns or attends")] = None,
    element_id: uuid.UUID | None = None,
    since: Annotated[datetime | None, Query(alias="from", description="Ending after this (UTC without offset)")] = None,
    until: Annotated[datetime | None, Query(alias="to", description="Starting before this")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    cursor: Annotated[str | None, Query(max_length=500)] = None,
) -> EventPage:
    """The events you may see, by start: yours and those you attend, or everyone's for roles that read everything."""
    return await service.list_events(
        session,
        actor,
        user_id=user_id,
        element_id=element_id,
        starts_at=since,
        ends_at=until,
        limit=limit,
        cursor=cursor,
    )


@router.get("/calendar/events/{event_id}", responses=READ_ERRORS)
async def get_calendar_event(event_id: uuid.UUID, session: SessionDep, actor: ActorDep) -> EventRead:
    return await service.get_event(session, actor, event_id)


@router.patch("/calendar/events/{event_id}", responses=WRITE_ERRORS)
async def update_calendar_event(
    event_id: uuid.UUID, data: EventUpdate, session: SessionDep, actor: ActorDep
) -> EventRead:
    return await service.update_event(session, actor, event_id, data)


@router.delete("/calendar/events/{event_id}", status_code=HTTPStatus.NO_CONTENT, responses=WRITE_ERRORS)
async def delete_calendar_event(event_id: uuid.UUID, session: SessionDep, actor: ActorDep) -> Response:
    await service.delete_event(session, actor, event_id)
    return Response(status_code=HTTPStatus.NO_CONTENT)


@router.get("/users/{user_id}/calendar", responses=GUARDED_READ_ERRORS)
async def get_user_calendar(
    user_id: uuid.UUID, session: SessionDep, actor: ActorDep, since: From, until: To
) -> UserCalendar:
    """The user's events (owned or attended) and the tasks assigned to them due in the range, by start, in UTC and
    in the user's time zone, with their working hours in the range."""
    return await service.user_calendar(session, actor, user_id, starts_at=since, ends_at=until)


@router.get("/users/{user_id}/schedule", responses=READ_ERRORS)
async def get_user_schedule(user_id: uuid.UUID, session: SessionDep, actor: ActorDep) -> ScheduleRead:
    """The user's weekly working hours, in their time zone (the default when none were set)."""
    return await service.get_schedule(session, actor, user_id)


@router.put("/users/{user_id}/schedule", responses=WRITE_ERRORS)
async def set_user_schedule(
    user_id: uuid.UUID, data: WeekSchedule, session: SessionDep, actor: ActorDep
) -> ScheduleRead:
    """Replace the user's working hours (the user themselves or an admin)."""
    return await service.set_schedule(session, actor, user_id, data)


@router.delete("/users/{user_id}/schedule", responses=WRITE_ERRORS)
async def reset_user_schedule(user_id: uuid.UUID, session: SessionDep, actor: ActorDep) -> ScheduleRead:
    """Back to the default working hours: Monday to Friday, 09:00-18:00."""
    return await service.set_schedule(session, actor, user_id, None)


@router.post("/users/{user_id}/calendar/feed", responses=WRITE_ERRORS)
async def rotate_calendar_feed(
    user_id: uuid.UUID, request: Request, session: SessionDep, actor: ActorDep
) -> CalendarFeedCreated:
    """Create the user's iCalendar feed, or give it a new secret address (the old one stops working at once). The
    address is in this answer only."""
    feed, secret = await service.rotate_feed(session, actor, user_id)
    url = str(request.url_for("get_calendar_feed", token=secret + service.FEED_SUFFIX))
    return CalendarFeedCreated(user_id=feed.user_id, url=url, secret=secret, created_at=feed.created_at)


@router.delete("/users/{user_id}/calendar/feed", status_code=HTTPStatus.NO_CONTENT, responses=WRITE_ERRORS)
async def revoke_calendar_feed(user_id: uuid.UUID, session: SessionDep, actor: ActorDep) -> Response:
    await service.revoke_feed(session, actor, user_id)
    return Response(status_code=HTTPStatus.NO_CONTENT)


@router.get(
    "/calendar/feeds/{token}",
    response_class=Response,
    responses={
        200: {"content": {ICS_MEDIA_TYPE: {"schema": {"type": "string"}}}, "description": "An iCalendar document"},
        **problem_responses(404),
    },
)
async def get_calendar_feed(
    token: Annotated[str, Path(description="The feed's secret followed by `.ics`")],
    session: SessionDep,
) -> Response:
    """A user's events and due tasks as iCalendar, from 30 days back to 6 months ahead, for calendar apps. The
    secret address is the authentication (no `Authorization` header); a wrong or revoked one is 404."""
    document = await service.feed_document(session, token)
    return Response(
        document,
        media_type=ICS_MEDIA_TYPE,
        headers={"Cache-Control": "private, max-age=300", "Content-Disposition": 'inline; filename="calendar.ics"'},
    )
