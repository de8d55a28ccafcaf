"""``DeferredList``: a list whose items arrive with a later round trip."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

__all__ = ["DeferredList"]

T = TypeVar("T")


class DeferredList(list[T]):
    """A list whose items are computed on first use (by ``fill``), then a plain list.

    Every way of reading or changing the list fills it first, so callers cannot tell it
    from a list; it exists so that a query can travel in the round trip of the next one.
    """

    __slots__ = ("_fill",)

    def __init__(self, fill: Callable[[], list[T]]) -> None:
        super().__init__()
        self._fill: Callable[[], list[T]] | None = fill

    def fill_now(self) -> None:
        """Compute the items now (if not yet done). If that raises, the list stays unfilled:
        every later use raises again rather than showing an empty list."""
        fill = self._fill
        if fill is not None:
            items = fill()
            self._fill = None
            super().extend(items)


def _filling(name: str) -> Any:
    method = getattr(list, name)

    @functools.wraps(method)
    def filled(self: DeferredList[Any], *args: Any, **kwargs: Any) -> Any:
        self.fill_now()
        return method(self, *args, **kwargs)

    return filled


for _name in (
    "__add__", "__contains__", "__delitem__", "__eq__", "__ge__", "__getitem__", "__gt__",
    "__iadd__", "__imul__", "__iter__", "__le__", "__len__", "__lt__", "__mul__", "__ne__",
    "__reduce_ex__", "__repr__", "__reversed__", "__rmul__", "__setitem__", "__sizeof__",
    "append", "clear", "copy", "count", "extend", "index", "insert", "pop", "remove",
    "reverse", "sort",
):  # fmt: skip
    setattr(DeferredList, _name, _filling(_name))
del _name
