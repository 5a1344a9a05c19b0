"""Templates in action parameters (`Call {{ title }}`, `{{ values.budget }}`), rendered in a bounded jinja2 sandbox.

The worker renders every tenant's templates, so one template must not stall it or eat its memory:

- When a rule is saved (and whenever a template is compiled) its syntax tree is checked: only output, `if`, `for`,
  `set`, `with` and filter blocks; constant sub-expressions are folded under the same bounds as at run time
  (`9**(9**9)`, `'x' * 10**9`, `range(10**9)`, `'x'|center(10**9)`), and constant loops nested in each other may not
  run more than the step budget in all.
- At run time every loop step, call and filter counts against a budget of steps and a deadline, operators that grow
  a value (`** * + % ~`, list and dict literals, widening filters and string methods) check the size of what they
  would make before making it, and the output is capped.

A template over the limits fails its run with a clear error (a permanent failure: it would fail the same way again).
"""

import contextlib
import math
import re
import string
import time
from collections.abc import Callable, Iterable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, cast

from jinja2 import StrictUndefined, TemplateError, nodes
from jinja2.exceptions import SecurityError
from jinja2.filters import FILTERS, make_attrgetter
from jinja2.runtime import Context
from jinja2.sandbox import ImmutableSandboxedEnvironment
from jinja2.utils import Cycler, Joiner, Namespace

from app.errors import FieldError, Invalid

MAX_SOURCE_CHARS = 20_000
# Enough for any value an incoming hook may carry (256 KiB), far below what would hurt a worker.
MAX_OUTPUT_CHARS = 256 * 1024
# Loop iterations, calls, filters and literals per render.
MAX_STEPS = 50_000
MAX_INT_BITS = 4096
MAX_FORMAT_WIDTH = 1000
RENDER_SECONDS = 1.0


class TemplateLimit(SecurityError):
    """The template would go over a limit (time, steps or size)."""


# --- the budget of one render ----------------------------------------------------------------------------------


@dataclass
class _Budget:
    deadline: float
    steps: int = 0
    # Serialised sizes already measured, by object id (the object is kept so the id stays its own).
    weights: dict[int, tuple[Any, int]] = field(default_factory=dict)

    def step(self, count: int = 1) -> None:
        self.steps += count
        if self.steps > MAX_STEPS:
            raise TemplateLimit(f"more than {MAX_STEPS} loop steps and calls")
        self.check_time()

    def check_time(self) -> None:
        if time.monotonic() > self.deadline:
            raise TemplateLimit(f"rendering took longer than {RENDER_SECONDS:g}s")


_budget: ContextVar[_Budget | None] = ContextVar("template_budget", default=None)


def _step(count: int = 1) -> None:
    budget = _budget.get()
    if budget is not None:
        budget.step(count)


def _too_big(what: str, size: int) -> TemplateLimit:
    return TemplateLimit(f"{what} would be {size} characters; the limit is {MAX_OUTPUT_CHARS}")


def _limit_size(size: int, what: str = "a value") -> None:
    if size > MAX_OUTPUT_CHARS:
        raise _too_big(what, size)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def weight(value: Any) -> int:
    """About how long `str(value)` is, measured without building it; refuses once it passes the output limit.

    Shared parts count every time they appear (as `str()` would print them) but are measured once, so a list that
    holds itself twice, twenty levels deep, is refused in twenty steps instead of printed in a million.
    """
    return _weight(value, _budget.get(), set())


def _weight(value: Any, budget: _Budget | None, visiting: set[int]) -> int:
    if isinstance(value, str | bytes):
        return len(value)
    if value is None or isinstance(value, bool | float):
        return 8
    if _is_int(value):
        return int(value.bit_length()) // 3 + 2
    if isinstance(value, Namespace):
        value = object.__getattribute__(value, "_Namespace__attrs")  # mutable: never remembered
        remember = False
    else:
        remember = isinstance(value, list | tuple | dict | set | frozenset)
    if not isinstance(value, list | tuple | dict | set | frozenset):
        return 64  # loop contexts, cyclers, undefined…: short reprs
    key = id(value)
    if budget is not None and remember:
        known = budget.weights.get(key)
        if known is not None and known[0] is value:
            return known[1]
        budget.check_time()
    if key in visiting:
        return 8  # a cycle prints as [...]
    visiting.add(key)
    total = 2
    items: Iterable[Any] = (
        (item for pair in value.items() for item in pair) if isinstance(value, dict) else cast(Iterable[Any], value)
    )
    for item in items:
        total += _weight(item, budget, visiting) + 2
        if total > MAX_OUTPUT_CHARS:
            visiting.discard(key)
            raise _too_big("a value", total)
    visiting.discard(key)
    if budget is not None and remember:
        budget.weights[key] = (value, total)
    return total


# --- operators, calls and literals -----------------------------------------------------------------------------

_PERCENT_SPEC = re.compile(r"%(?:\([^)]*\))?[-#0 +]*(\*|\d+)?(?:\.(\*|\d+))?")


def _check_percent_format(template: str, arguments: Any) -> None:
    for match in _PERCENT_SPEC.finditer(template):
        for part in match.groups():
            if part == "*" or (part is not None and int(part) > MAX_FORMAT_WIDTH):
                raise TemplateLimit(f"format widths above {MAX_FORMAT_WIDTH} (or `*`) are not allowed")
    _limit_size(len(template) + weight(arguments), "a formatted string")


def _check_brace_format(template: str, arguments: Any) -> None:
    for _, _field, spec, _ in string.Formatter().parse(template):
        if spec and "{" in spec:
            raise TemplateLimit("nested format specifications are not allowed")
        if spec and any(int(n) > MAX_FORMAT_WIDTH for n in re.findall(r"\d+", spec)):
            raise TemplateLimit(f"format widths above {MAX_FORMAT_WIDTH} are not allowed")
    _limit_size(len(template) + weight(arguments), "a formatted string")


def _check_power(base: Any, exponent: Any) -> None:
    if _is_int(base) and _is_int(exponent) and exponent > 0 and abs(base) > 1:
        bits = math.log2(abs(base)) * exponent
        if bits > MAX_INT_BITS:
            raise TemplateLimit(f"{base} ** {exponent} is too large a number (more than {MAX_INT_BITS} bits)")


def _check_times(left: Any, right: Any) -> None:
    if _is_int(left) and _is_int(right):
        if left.bit_length() + right.bit_length() > MAX_INT_BITS:
            raise TemplateLimit(f"a product of more than {MAX_INT_BITS} bits")
        return
    sequence, count = (left, right) if _is_int(right) else (right, left)
    if isinstance(sequence, str | bytes | list | tuple) and _is_int(count) and count > 0:
        if len(sequence) * count > MAX_OUTPUT_CHARS:
            raise _too_big("a repeated value", len(sequence) * count)
        if isinstance(sequence, list | tuple):
            _limit_size(weight(sequence) * count, "a repeated list")


def _check_plus(left: Any, right: Any) -> None:
    if isinstance(left, str | bytes) and isinstance(right, str | bytes):
        _limit_size(len(left) + len(right), "a joined string")
    elif isinstance(left, list | tuple) and isinstance(right, list | tuple):
        _limit_size(weight(left) + weight(right), "a joined list")


def _check_binop(operator: str, left: Any, right: Any) -> None:
    if operator == "**":
        _check_power(left, right)
    elif operator == "*":
        _check_times(left, right)
    elif operator == "+":
        _check_plus(left, right)
    elif operator == "%" and isinstance(left, str):
        _check_percent_format(left, right)


def _concat(*parts: Any) -> str:
    """`a ~ b`: every part turned to text, the total checked before it is built."""
    _limit_size(sum(weight(part) for part in parts), "a joined string")
    return "".join(str(part) for part in parts)


def _bounded_join(separator: str, items: Iterable[Any]) -> str:
    parts: list[str] = []
    total = 0
    for item in items:
        _step()
        total += weight(item) + (len(separator) if parts else 0)
        _limit_size(total, "a joined string")
        parts.append(str(item))
    return separator.join(parts)


def _check_width(width: Any, what: str = "a width") -> None:
    if _is_int(width) and width > MAX_OUTPUT_CHARS:
        raise _too_big(what, width)


def _check_replace(text: Any, old: Any, new: Any, count: Any = -1) -> None:
    if not (isinstance(text, str) and isinstance(old, str) and isinstance(new, str)):
        return
    found = text.count(old) if old else len(text) + 1
    if _is_int(count) and count >= 0:
        found = min(found, count)
    _limit_size(len(text) + found * (len(new) - len(old)), "a replaced string")


def _string_method(method: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Callable[[], Any] | None:
    """A checked call of a string method that could grow its string; None for the others."""
    target = getattr(method, "__wrapped__", method)  # the sandbox wraps str.format
    owner = getattr(target, "__self__", None)
    if not isinstance(owner, str | bytes):
        return None
    name = getattr(target, "__name__", "")
    if name in ("center", "ljust", "rjust", "zfill"):
        _check_width(args[0] if args else kwargs.get("width"))
    elif name == "expandtabs":
        size = args[0] if args else kwargs.get("tabsize", 8)
        if _is_int(size):
            _limit_size(len(owner) * max(size, 1), "an expanded string")
    elif name == "replace":
        _check_replace(owner, *args, **kwargs)
    elif name == "join" and isinstance(owner, str) and len(args) == 1:
        return lambda: _bounded_join(owner, args[0])
    elif name in ("format", "format_map") and isinstance(owner, str):
        _check_brace_format(owner, [args, kwargs])
    return None


class BoundedRange:
    """`range()` in templates: lazy, and every item it yields is a step of the budget."""

    def __init__(self, *args: int) -> None:
        self.range = range(*args)

    def __len__(self) -> int:
        return len(self.range)

    def __getitem__(self, index: Any) -> Any:
        item = self.range[index]
        return BoundedRange._of(item) if isinstance(item, range) else item

    @staticmethod
    def _of(inner: range) -> "BoundedRange":
        bounded = BoundedRange()
        bounded.range = inner
        return bounded

    def __iter__(self) -> Iterator[int]:
        for item in self.range:
            _step()
            yield item

    def __repr__(self) -> str:
        return repr(self.range)


def _counted(iterable: Iterable[Any]) -> Iterator[Any]:
    for item in iterable:
        _step()
        yield item


def _literal_size(value: Any) -> Any:
    _limit_size(weight(value), "a literal")
    return value


class BoundedEnvironment(ImmutableSandboxedEnvironment):
    """The sandbox with the budget's checks on operators, calls, loops, literals and output."""

    intercepted_binops = frozenset({"**", "*", "+", "%"})

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        _step()
        _check_binop(operator, left, right)
        return super().call_binop(context, operator, left, right)

    def call(__self, __context: Context, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        _step()
        checked = _string_method(__obj, args, kwargs)
        if checked is not None:
            return checked()
        if __obj is Namespace or __obj is dict:
            _limit_size(weight([args, kwargs]), "a namespace")
        result = super().call(__context, __obj, *args, **kwargs)
        if isinstance(result, str | bytes):
            _limit_size(len(result), "a call's result")
        return result

    # Reached from the rewritten syntax tree (see `_rewrite`).
    def sf_iter(self, iterable: Any) -> Iterable[Any]:
        return iterable if isinstance(iterable, BoundedRange) else _counted(iterable)

    def sf_concat(self, *parts: Any) -> str:
        return _concat(*parts)

    def sf_list(self, *items: Any) -> list[Any]:
        return cast(list[Any], _literal_size(list(items)))

    def sf_tuple(self, *items: Any) -> tuple[Any, ...]:
        return cast(tuple[Any, ...], _literal_size(tuple(items)))

    def sf_dict(self, *flat: Any) -> dict[Any, Any]:
        return cast(dict[Any, Any], _literal_size(dict(zip(flat[::2], flat[1::2], strict=True))))

    def _parse(self, source: str, name: str | None, filename: str | None) -> nodes.Template:
        if len(source) > MAX_SOURCE_CHARS:
            raise TemplateLimit(f"a template is at most {MAX_SOURCE_CHARS} characters")
        tree = super()._parse(source, name, filename)
        _StaticCheck(self).check(tree)
        rewritten = cast(nodes.Template, _rewrite(tree))
        rewritten.set_environment(self)
        return rewritten


def _finalize(value: Any) -> Any:
    """Every `{{ … }}` value: its printed size is checked before it is printed."""
    if not isinstance(value, str):
        _limit_size(weight(value), "a printed value")
    return value


# --- filters ---------------------------------------------------------------------------------------------------


_UNKNOWN = object()
Check = Callable[..., None]


def _known(*values: Any) -> bool:
    return all(v is not _UNKNOWN for v in values)


def _check_center(value: Any, width: Any = 80) -> None:
    _check_width(width)


def _check_indent(value: Any, width: Any = 4, *args: Any, **kwargs: Any) -> None:
    per_line = width if _is_int(width) else len(width) if isinstance(width, str) else 0
    _check_width(per_line, "an indent")
    if _known(value):
        text = str(value)
        _limit_size(len(text) + (text.count("\n") + 1) * per_line, "an indented string")


def _check_wordwrap(value: Any, width: Any = 79, break_long_words: Any = True, wrapstring: Any = None, *a: Any) -> None:
    if _known(value) and _is_int(width):
        text = str(value)
        breaks = len(text) // max(width, 1) + 1
        _limit_size(len(text) + breaks * len(str(wrapstring or "\n")), "a wrapped string")


def _check_fill(value: Any, count: Any, fill_with: Any = None) -> None:
    if not _is_int(count):
        return
    if count > MAX_STEPS:
        raise TemplateLimit(f"batch and slice take at most {MAX_STEPS}")
    if fill_with is not None and _known(fill_with):
        _limit_size(count * (weight(fill_with) + 2), "a filled list")


def _check_format_filter(value: Any, *args: Any, **kwargs: Any) -> None:
    if isinstance(value, str):
        _check_percent_format(value, [args, kwargs])


def _check_replace_filter(value: Any, old: Any = _UNKNOWN, new: Any = _UNKNOWN, count: Any = None) -> None:
    if _known(value, old, new):
        _check_replace(str(value), old, new, -1 if count is None else count)


def _check_tojson(value: Any, indent: Any = None) -> None:
    if _is_int(indent) and indent > 16:
        raise TemplateLimit("tojson indents by at most 16")
    if _known(value):
        _limit_size(weight(value), "a JSON value")


# Filters that print their input: its printed size is checked first.
PRINTING = frozenset(
    {
        "capitalize",
        "center",
        "e",
        "escape",
        "forceescape",
        "format",
        "indent",
        "lower",
        "replace",
        "string",
        "striptags",
        "title",
        "tojson",
        "trim",
        "truncate",
        "upper",
        "urlencode",
        "wordcount",
        "wordwrap",
        "xmlattr",
    }
)
# Filters that take sizes: their arguments are checked (also when the rule is saved, for constant arguments).
FILTER_CHECKS: dict[str, Check] = {
    "center": _check_center,
    "indent": _check_indent,
    "wordwrap": _check_wordwrap,
    "batch": _check_fill,
    "slice": _check_fill,
    "format": _check_format_filter,
    "replace": _check_replace_filter,
    "tojson": _check_tojson,
}
# Not offered: random (a run must be repeatable), urlize and pprint (HTML and debugging helpers).
LEFT_OUT = frozenset({"random", "urlize", "pprint"})


def _guarded(name: str, function: Callable[..., Any]) -> Callable[..., Any]:
    passes = hasattr(function, "jinja_pass_arg")
    check = FILTER_CHECKS.get(name)
    printing = name in PRINTING

    def guarded(*args: Any, **kwargs: Any) -> Any:
        _step()
        value, rest = args[int(passes)], args[int(passes) + 1 :]
        if printing:
            _limit_size(weight(value), "a filtered value")
        if check is not None:
            check(value, *rest, **kwargs)
        result = function(*args, **kwargs)
        if isinstance(result, str):
            _limit_size(len(result), f"the result of |{name}")
        return result

    if passes:
        guarded.jinja_pass_arg = function.jinja_pass_arg  # type: ignore[attr-defined]
    guarded.__name__ = f"bounded_{name}"
    return guarded


def _join_filter(eval_ctx: Any, value: Any, d: str = "", attribute: Any = None) -> str:
    if attribute is not None:
        getter = make_attrgetter(eval_ctx.environment, attribute)
        value = (getter(item) for item in value)
    return _bounded_join(str(d), value)


_join_filter.jinja_pass_arg = FILTERS["join"].jinja_pass_arg  # type: ignore[attr-defined]


def _filters() -> dict[str, Callable[..., Any]]:
    chosen = {name: _guarded(name, f) for name, f in FILTERS.items() if name not in LEFT_OUT and name != "join"}
    chosen["join"] = _guarded("join", _join_filter)
    return chosen


# --- the syntax tree: checked, then rewritten ------------------------------------------------------------------

ALLOWED_STATEMENTS = (
    nodes.Output,
    nodes.If,
    nodes.For,
    nodes.Assign,
    nodes.AssignBlock,
    nodes.With,
    nodes.FilterBlock,
    nodes.ScopedEvalContextModifier,
    nodes.EvalContextModifier,
)
_BINOPS: dict[type[nodes.BinExpr], Callable[[Any, Any], Any]] = {
    nodes.Add: lambda a, b: a + b,
    nodes.Sub: lambda a, b: a - b,
    nodes.Mul: lambda a, b: a * b,
    nodes.Div: lambda a, b: a / b,
    nodes.FloorDiv: lambda a, b: a // b,
    nodes.Mod: lambda a, b: a % b,
    nodes.Pow: lambda a, b: a**b,
}


class _StaticCheck:
    """What can be told without data: forbidden tags, and constants or constant loops over the limits."""

    def __init__(self, environment: BoundedEnvironment) -> None:
        self.environment = environment

    def check(self, tree: nodes.Template) -> None:
        self._statements(tree.body, 1)

    def _statements(self, body: list[nodes.Node], factor: int) -> None:
        for node in body:
            self._statement(node, factor)

    def _statement(self, node: nodes.Node, factor: int) -> None:
        if not isinstance(node, ALLOWED_STATEMENTS):
            tag = type(node).__name__.lower()
            raise TemplateLimit(f"{{% {tag} %}} is not allowed in automation templates")
        if isinstance(node, nodes.For):
            if node.recursive:
                raise TemplateLimit("recursive loops are not allowed in automation templates")
            self._expression(node.iter)
            count = self._length(node.iter)
            inner = factor * count if count is not None else factor
            if inner > MAX_STEPS:
                raise TemplateLimit(f"these loops would run {inner} times; the limit is {MAX_STEPS} steps")
            if node.test is not None:
                self._expression(node.test)
            self._statements(node.body, inner)
            self._statements(node.else_, factor)
            return
        for child in node.iter_child_nodes():
            if isinstance(child, nodes.Stmt):
                self._statement(child, factor)
            elif isinstance(child, nodes.Expr):
                self._expression(child)
            else:
                for grandchild in child.iter_child_nodes():
                    if isinstance(grandchild, nodes.Stmt):
                        self._statement(grandchild, factor)
                    elif isinstance(grandchild, nodes.Expr):
                        self._expression(grandchild)

    def _expression(self, node: nodes.Node) -> None:
        # Children first: folding a parent reuses their (already checked) values.
        for child in node.iter_child_nodes():
            self._expression(child)
        self._fold(node)

    def _length(self, node: nodes.Node) -> int | None:
        value = self._fold(node)
        if isinstance(value, BoundedRange):
            return len(value)
        if isinstance(value, str | list | tuple | dict):
            return len(value)
        return None

    def _fold(self, node: nodes.Node) -> Any:
        """The node's value when it is a constant (checked under the run-time bounds), else _UNKNOWN."""
        if isinstance(node, nodes.Const):
            return node.value
        if isinstance(node, nodes.List | nodes.Tuple):
            items = [self._fold(item) for item in node.items]
            return _UNKNOWN if not _known(*items) else (items if isinstance(node, nodes.List) else tuple(items))
        if isinstance(node, nodes.Neg | nodes.Pos):
            inner = self._fold(node.node)
            return inner if _known(inner) and isinstance(inner, int | float) else _UNKNOWN
        if isinstance(node, nodes.BinExpr) and type(node) in _BINOPS:
            return self._fold_binop(node)
        if isinstance(node, nodes.Concat):
            parts = [self._fold(part) for part in node.nodes]
            return _concat(*parts) if _known(*parts) else _UNKNOWN
        if isinstance(node, nodes.Call) and isinstance(node.node, nodes.Name) and node.node.name == "range":
            return self._fold_range(node)
        if isinstance(node, nodes.Filter) and node.name in FILTER_CHECKS:
            self._check_filter(node)
        return _UNKNOWN

    def _fold_binop(self, node: nodes.BinExpr) -> Any:
        left, right = self._fold(node.left), self._fold(node.right)
        if not _known(left, right):
            return _UNKNOWN
        _check_binop(node.operator, left, right)
        try:
            return _BINOPS[type(node)](left, right)
        except Exception:
            return _UNKNOWN  # a type error or a division by zero: the run reports it

    def _fold_range(self, node: nodes.Call) -> Any:
        args = [self._fold(arg) for arg in node.args]
        if node.kwargs or node.dyn_args or node.dyn_kwargs or not _known(*args) or not all(map(_is_int, args)):
            return _UNKNOWN
        try:
            bounded = BoundedRange(*args)
        except (TypeError, ValueError):
            return _UNKNOWN
        if len(bounded) > MAX_STEPS:
            raise TemplateLimit(f"range() of {len(bounded)} items; the limit is {MAX_STEPS} steps")
        return bounded

    def _check_filter(self, node: nodes.Filter) -> None:
        """A sizing filter's constant arguments (and constant input) are checked as they will be at run time."""
        value = self._fold(node.node) if node.node is not None else _UNKNOWN
        args = [self._fold(arg) for arg in node.args]
        kwargs = {str(pair.key): self._fold(pair.value) for pair in node.kwargs}
        if node.dyn_args or node.dyn_kwargs or not _known(*args, *kwargs.values()):
            return
        with contextlib.suppress(TypeError):  # wrong arguments: the filter itself reports them
            FILTER_CHECKS[node.name](value, *args, **kwargs)


def _call(name: str, args: list[Any], node: nodes.Node) -> nodes.Call:
    call = nodes.Call(nodes.EnvironmentAttribute(name), args, [], None, None)
    call.set_lineno(node.lineno or 1)
    return call


def _rewrite(node: nodes.Node) -> nodes.Node:
    """Loops, `~`, and list, tuple and dict literals go through the environment's counted, size-checked versions."""
    for name, value in node.iter_fields():
        if isinstance(value, nodes.Node):
            setattr(node, name, _rewrite(value))
        elif isinstance(value, list):
            setattr(node, name, [_rewrite(v) if isinstance(v, nodes.Node) else v for v in value])
    if isinstance(node, nodes.For):
        node.iter = _call("sf_iter", [node.iter], node)
    elif isinstance(node, nodes.Concat):
        return _call("sf_concat", list(node.nodes), node)
    elif isinstance(node, nodes.List):
        return _call("sf_list", list(node.items), node)
    elif isinstance(node, nodes.Tuple) and node.ctx == "load":
        return _call("sf_tuple", list(node.items), node)
    elif isinstance(node, nodes.Dict):
        return _call("sf_dict", [part for pair in node.items for part in (pair.key, pair.value)], node)
    return node


# --- the module's surface --------------------------------------------------------------------------------------


@lru_cache
def _environment() -> BoundedEnvironment:
    # Autoescape is for HTML; these strings go to JSON fields and HTTP bodies.
    environment = BoundedEnvironment(autoescape=False, undefined=StrictUndefined, finalize=_finalize)
    environment.filters = _filters()
    environment.globals = {
        "range": BoundedRange,
        "dict": dict,
        "namespace": Namespace,
        "cycler": Cycler,
        "joiner": Joiner,
    }
    return environment


@lru_cache(maxsize=1024)
def _compiled(source: str) -> Any:
    return _environment().from_string(source)


def is_template(value: Any) -> bool:
    return isinstance(value, str) and ("{{" in value or "{%" in value)


def _short(source: str) -> str:
    return repr(source if len(source) <= 200 else source[:200] + "…")


def check_template(value: str, location: str) -> None:
    """Compile the template (syntax, known filters, forbidden tags, constants and constant loops over the limits)."""
    try:
        _compiled(value)
    except TemplateError as exc:
        raise Invalid("A template is not valid", errors=[FieldError(location, str(exc))]) from exc
    except RecursionError as exc:
        raise Invalid("A template is not valid", errors=[FieldError(location, "nested too deeply")]) from exc


def render(value: Any, context: dict[str, Any]) -> Any:
    """Render every template string inside `value` (dicts and lists walked); other values pass through.

    One budget (steps, deadline) covers the whole value; a template that fails or goes over it raises Invalid.
    """
    token = _budget.set(_Budget(deadline=time.monotonic() + RENDER_SECONDS))
    try:
        return _render(value, context)
    finally:
        _budget.reset(token)


def _render(value: Any, context: dict[str, Any]) -> Any:
    if isinstance(value, dict):
        return {key: _render(item, context) for key, item in value.items()}
    if isinstance(value, list):
        return [_render(item, context) for item in value]
    if not is_template(value):
        return value
    budget = _budget.get()
    try:
        chunks: list[str] = []
        size = 0
        for chunk in _compiled(value).generate(context):
            size += len(chunk)
            _limit_size(size, "the output")
            if budget is not None:
                budget.check_time()
            chunks.append(chunk)
        return "".join(chunks)
    except TemplateLimit as exc:
        raise Invalid(f"Template {_short(value)} stopped: {exc}") from exc
    except Exception as exc:  # every other failure is the template's too, and would happen again
        raise Invalid(f"Template {_short(value)} failed: {type(exc).__name__}: {exc}") from exc
