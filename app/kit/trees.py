"""Walking a tree kept as a parent -> children map (the department tree, in the access snapshot and its service)."""

from collections.abc import Callable, Iterable
from typing import TypeVar

T = TypeVar("T")


def subtree(root: T, children_of: Callable[[T], Iterable[T]]) -> set[T]:
    """The root and every node under it (a cycle, which writes refuse, would not loop)."""
    found: set[T] = set()
    stack = [root]
    while stack:
        node = stack.pop()
        if node not in found:
            found.add(node)
            stack.extend(children_of(node))
    return found
