"""``SharedLayers``: the store's copies of what every profile resolution reads alike.

A resolution reads the current catalogs, the application defaults, the tenant's defaults and
the user's own values. The first three are shared by every user (of a tenant) and change
rarely. Migration 0003 keeps each of them ready in a row of ``profile_layers`` with a
*generation* that every change draws anew; the store keeps a copy of each, stamped with its
generation, and ``profile_snapshot`` sends a layer's content only when the generation the
store offers is no longer current. A copy is immutable and replaced whole; a transaction
takes the copies it offers before it sends, so a copy replaced meanwhile by another thread
is never mixed with the answer.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Any, Generic, NamedTuple, TypeVar

from user_engine.domain import CatalogVersion, ProfileValue

__all__ = ["Copy", "Offer", "SharedLayers"]

T = TypeVar("T")

MAX_TENANTS = 10_000
"""Tenants whose defaults are kept; beyond it the oldest copy is dropped (it is read again
on the next resolution in that tenant)."""


class Copy(NamedTuple, Generic[T]):
    """A layer's items as of ``generation``."""

    generation: int
    items: tuple[T, ...]


class Offer(NamedTuple):
    """The copies one ``profile_snapshot`` call offers, taken before it is sent."""

    catalogs: Copy[CatalogVersion] | None
    application: Copy[ProfileValue] | None
    tenant: Copy[ProfileValue] | None

    def generations(self) -> tuple[int | None, int | None, int | None]:
        """The generations to send (None: no copy)."""
        return tuple(None if c is None else c.generation for c in self)  # type: ignore[return-value]


class SharedLayers:
    """Copies of the current catalogs, the application defaults and each tenant's defaults.

    Only what ``profile_snapshot`` read before any write of its transaction is kept (the
    committed state).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._catalogs: Copy[CatalogVersion] | None = None
        self._application: Copy[ProfileValue] | None = None
        self._tenants: dict[str, Copy[ProfileValue]] = {}

    def offer(self, tenant_id: str | None, *, with_catalogs: bool) -> Offer:
        """The copies to offer for a resolution in ``tenant_id``."""
        return Offer(
            self._catalogs if with_catalogs else None,
            self._application,
            None if tenant_id is None else self._tenants.get(tenant_id),
        )

    def catalogs(
        self,
        answer: Sequence[Any] | None,
        offered: Copy[CatalogVersion] | None,
        parse: Callable[[Sequence[Any]], list[CatalogVersion]],
    ) -> list[CatalogVersion]:
        """The current catalogs from a ``profile_snapshot`` answer's ``catalogs`` entry."""
        items, fresh = _current(answer, offered, parse)
        if fresh is not None:
            self._catalogs = fresh
        return list(items)

    def application(
        self,
        answer: Sequence[Any] | None,
        offered: Copy[ProfileValue] | None,
        parse: Callable[[Sequence[Any]], list[ProfileValue]],
    ) -> tuple[ProfileValue, ...]:
        """The application defaults from an answer's ``application`` entry."""
        items, fresh = _current(answer, offered, parse)
        if fresh is not None:
            self._application = fresh
        return items

    def tenant(
        self,
        tenant_id: str,
        answer: Sequence[Any] | None,
        offered: Copy[ProfileValue] | None,
        parse: Callable[[Sequence[Any]], list[ProfileValue]],
    ) -> tuple[ProfileValue, ...]:
        """A tenant's defaults from an answer's ``tenant:<id>`` entry."""
        items, fresh = _current(answer, offered, parse)
        if fresh is not None:
            with self._lock:
                tenants = self._tenants
                tenants.pop(tenant_id, None)  # re-inserted last: the oldest copies go first
                if len(tenants) >= MAX_TENANTS:
                    del tenants[next(iter(tenants))]
                tenants[tenant_id] = fresh
        return items

    def clear(self) -> None:
        """Forget every copy."""
        with self._lock:
            self._catalogs = None
            self._application = None
            self._tenants.clear()


def _current(
    answer: Sequence[Any] | None,
    offered: Copy[T] | None,
    parse: Callable[[Sequence[Any]], list[T]],
) -> tuple[tuple[T, ...], Copy[T] | None]:
    """A layer's items from its answer entry ``[key, generation, content or NULL]``, and the
    copy to keep (None: keep what is kept): no items when the layer has no row in the
    scope, the offered copy's when the content is NULL (the generation offered is current),
    else the content parsed, kept with its generation."""
    if answer is None:
        return (), None
    if answer[2] is None:
        assert offered is not None, "NULL content answers an offered copy only"
        assert offered.generation == answer[1]
        return offered.items, None
    fresh = Copy(answer[1], tuple(parse(answer[2])))
    return fresh.items, fresh
