"""Templates in action parameters (`Call {{ title }}`, `{{ values.budget }}`), rendered in a jinja2 sandbox."""

from functools import lru_cache
from typing import Any

from jinja2 import StrictUndefined, TemplateError
from jinja2.sandbox import SandboxedEnvironment

from app.errors import FieldError, Invalid


@lru_cache
def _environment() -> SandboxedEnvironment:
    # Autoescape is for HTML; these strings go to JSON fields and HTTP bodies.
    return SandboxedEnvironment(autoescape=False, undefined=StrictUndefined)


def is_template(value: Any) -> bool:
    return isinstance(value, str) and ("{{" in value or "{%" in value)


def check_template(value: str, location: str) -> None:
    try:
        _environment().parse(value)
    except TemplateError as exc:
        raise Invalid("A template is not valid", errors=[FieldError(location, str(exc))]) from exc


def render(value: Any, context: dict[str, Any]) -> Any:
    """Render every template string inside `value` (dicts and lists walked); other values pass through."""
    if isinstance(value, dict):
        return {key: render(item, context) for key, item in value.items()}
    if isinstance(value, list):
        return [render(item, context) for item in value]
    if not is_template(value):
        return value
    try:
        return _environment().from_string(value).render(context)
    except TemplateError as exc:
        raise Invalid(f"Template {value!r} failed: {exc}") from exc
