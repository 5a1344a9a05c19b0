from typing import Any

from fastapi import APIRouter

from app.api.rest.problems import problem_responses
from app.api.rest.routing import TransactionalRoute

READ_ERRORS = problem_responses(401, 404, 422)
# 400: a body that is not even decodable (e.g. invalid UTF-8); a well-formed but wrong body is a 422.
SEARCH_ERRORS = problem_responses(400, 401, 404, 422)
WRITE_ERRORS = problem_responses(400, 401, 403, 404, 409, 422)


def make_router(**kwargs: Any) -> APIRouter:
    return APIRouter(route_class=TransactionalRoute, **kwargs)
