"""The consumer-side Deduplicator: first copy of an id passes, later copies do not."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from user_engine.errors import ValidationError
from user_engine_events_kafka import Deduplicator


def test_the_first_copy_of_an_id_passes_and_later_copies_do_not() -> None:
    seen = Deduplicator()
    assert seen.first_time("evt_1") is True
    assert seen.first_time("evt_2") is True
    assert seen.first_time("evt_1") is False
    assert "evt_1" in seen
    assert len(seen) == 2


def test_memory_is_bounded_by_capacity_forgetting_the_least_recent() -> None:
    seen = Deduplicator(capacity=2)
    seen.first_time("a")
    seen.first_time("b")
    seen.first_time("a")  # a is recent again
    seen.first_time("c")  # b is forgotten
    assert len(seen) == 2
    assert "b" not in seen
    assert seen.first_time("a") is False


@pytest.mark.parametrize("capacity", [0, -1, True, 1.5, "10"])
def test_capacity_must_be_a_positive_integer(capacity: object) -> None:
    with pytest.raises(ValidationError):
        Deduplicator(capacity=capacity)  # type: ignore[arg-type]


@pytest.mark.parametrize("event_id", ["", None, 7])
def test_an_event_id_must_be_a_non_empty_string(event_id: object) -> None:
    with pytest.raises(ValidationError):
        Deduplicator().first_time(event_id)  # type: ignore[arg-type]


@given(st.lists(st.sampled_from([f"evt_{i}" for i in range(30)]), max_size=200))
def test_with_enough_capacity_each_id_passes_exactly_once(ids: list[str]) -> None:
    seen = Deduplicator(capacity=100)
    passed = [event_id for event_id in ids if seen.first_time(event_id)]
    assert passed == list(dict.fromkeys(ids))
