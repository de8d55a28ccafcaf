"""Observers and the comparison of exported values."""

from datetime import UTC, datetime, timedelta, timezone

from user_engine.domain import AuditOutcome
from user_engine_conformance import PollingObserver
from user_engine_conformance.observers import comparable


def test_a_polling_observer_returns_once_enough_items_match() -> None:
    arrived: list[int] = []

    def poll() -> list[int]:
        arrived.append(len(arrived))
        return list(arrived)

    found = PollingObserver(poll, interval=0).collect(lambda n: n % 2 == 0, 3, timeout=60)

    assert found == [0, 2, 4]


def test_a_polling_observer_returns_what_it_has_when_time_is_up() -> None:
    found = PollingObserver(lambda: [1, 2], interval=0).collect(lambda n: True, 5, timeout=0)

    assert found == [1, 2]


def test_exported_values_compare_as_text_times_in_utc_and_enums_by_value() -> None:
    moment = datetime(2030, 1, 2, 3, 4, 5, 6, tzinfo=UTC)
    elsewhere = moment.astimezone(timezone(timedelta(hours=2)))

    assert comparable(moment) == comparable(elsewhere.isoformat()) == moment.isoformat()
    assert comparable(AuditOutcome.DENIED) == "denied"
    assert comparable(41) == comparable("41")
    assert comparable("not a date") == "not a date"
    assert comparable(None) is None
