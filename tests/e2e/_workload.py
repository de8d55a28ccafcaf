"""The end-to-end workload: real service mutations, and the check of what reached the topic.

Every user gets a ``nickname`` written again and again; each write's event carries the
value's version (1, 2, 3 ...), so the order a consumer sees is checkable without trusting
the relay: after dropping duplicate ids, a user's events must be its set-up events, then
versions 1..n, nothing missing, nothing extra, nothing out of place.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections import defaultdict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from user_engine.domain import AccessScope, OutboxEvent, Principal
from user_engine.ports import EventPublisher, UserEngineStore
from user_engine.relay import Relay, RelaySettings
from user_engine.runtime import RandomIds, SystemClock
from user_engine.service import UserEngineService
from user_engine.testing import InMemorySecretStore
from user_engine_events_kafka import decode_message

from testsupport.kafka import ConsumedMessage

logger = logging.getLogger("e2e")
APPLICATION = "e2e"
TENANT = "e2e-tenant"
CATALOG: list[dict[str, Any]] = [
    {
        "name": "nickname",
        "type": "string",
        "sensitivity": "public",
        "max_length": 64,
        "writers": ["self", "platform-operator"],
        "layers": ["user"],
    }
]

Token = tuple[str, object]


@dataclass
class DeliveryCheck:
    """What the topic holds compared with what was written (all counts after dedupe)."""

    expected: int
    messages: int
    distinct: int
    lost: int
    duplicated: int
    reordered: int
    unexpected: int
    inconsistent_duplicates: int
    problems: list[str] = field(default_factory=list)

    @property
    def perfect(self) -> bool:
        """Nothing lost, nothing extra, nothing out of order, duplicates identical."""
        return not (self.lost or self.reordered or self.unexpected or self.inconsistent_duplicates)


class Workload:
    """Set-up (tenant, application, catalog, users) and nickname writes through the service."""

    def __init__(self, store: UserEngineStore, users: int) -> None:
        self.store = store
        self.service = UserEngineService(
            store=store, clock=SystemClock(), ids=RandomIds(), secrets=InMemorySecretStore()
        )
        self.operator = Principal.platform_operator("e2e-operator")
        self.service.create_tenant(self.operator, TENANT, name="End to end")
        self.service.register_application(self.operator, APPLICATION, name="End to end")
        self.service.publish_catalog(Principal.application(APPLICATION), APPLICATION, CATALOG)
        self.users = [
            self.service.create_user(self.operator, display_name=f"User {n}", tenant_id=TENANT).id
            for n in range(users)
        ]
        self.versions: dict[str, int] = dict.fromkeys(self.users, 0)
        self.setup: list[OutboxEvent] = pending_events(store)
        self.excluded: set[str] = set()
        self.write_errors: list[str] = []

    def write(self, rounds: int, users: Sequence[str] | None = None) -> None:
        """``rounds`` nickname writes for each user (in rounds across users)."""
        targets = list(users if users is not None else self.users)
        for _ in range(rounds):
            for user in targets:
                version = self.versions[user] + 1
                try:
                    self.service.write_profile_value(
                        self.operator,
                        attribute=f"{APPLICATION}.nickname",
                        layer="user",
                        user_id=user,
                        value=f"v{version}",
                    )
                except Exception as error:  # recorded: the tests require none
                    self.write_errors.append(f"{type(error).__name__}: {error}")
                    continue
                self.versions[user] = version

    def write_in_threads(self, rounds: int, threads: int = 2) -> None:
        """Write from several threads, each owning a share of the users."""
        shares = [self.users[n::threads] for n in range(threads)]
        workers = [threading.Thread(target=self.write, args=(rounds, share)) for share in shares]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()

    def append_raw(self, aggregate: str, payload: dict[str, Any]) -> str:
        """Commit one event straight into the outbox (a poison event, say); return its id.

        It is excluded from the expected stream: the tests check its fate separately.
        """
        event_id = RandomIds().new_id("evt_")
        with self.store.transaction(AccessScope.all_tenants()) as tx:
            tx.append_event(
                OutboxEvent(
                    id=event_id,
                    event_type="test.poison",
                    aggregate_type="user",
                    aggregate_id=aggregate,
                    tenant_id=TENANT,
                    occurred_at=datetime.now(UTC),
                    payload=payload,
                )
            )
        self.excluded.add(event_id)
        return event_id

    @property
    def expected_count(self) -> int:
        """Events a consumer must see once each."""
        return len(self.setup) + sum(self.versions.values())

    def expected_tokens(self) -> dict[str, list[Token]]:
        tokens: dict[str, list[Token]] = defaultdict(list)
        for event in self.setup:
            tokens[event.aggregate_id].append(("id", event.id))
        for user, count in self.versions.items():
            tokens[user].extend(("version", n) for n in range(1, count + 1))
        return tokens

    def check(self, messages: Sequence[ConsumedMessage]) -> DeliveryCheck:
        """Compare the topic with what was written: lost, duplicated, reordered, extra."""
        setup_ids = {event.id for event in self.setup}
        first_value: dict[str, bytes | None] = {}
        actual: dict[str, list[Token]] = defaultdict(list)
        inconsistent = 0
        problems: list[str] = []
        for message in messages:
            event = decode_message(message.headers, message.value)
            if event.id in first_value:
                inconsistent += first_value[event.id] != message.value
                continue
            first_value[event.id] = message.value
            if event.id in self.excluded:
                token: Token = ("excluded", event.id)
            elif event.id in setup_ids:
                token = ("id", event.id)
            elif event.type == "profile.value_written":
                token = ("version", event.data["version"])
            else:
                token = ("unknown", event.id)
            if message.key != event.aggregate_id.encode():
                problems.append(f"message key differs from the aggregate of {event.id}")
            actual[event.aggregate_id].append(token)
        expected = self.expected_tokens()
        lost = reordered = unexpected = 0
        for aggregate in set(expected) | set(actual):
            want, got = expected.get(aggregate, []), actual.get(aggregate, [])
            position = {token: index for index, token in enumerate(want)}
            lost += len(set(want) - set(got))
            extra = [token for token in got if token not in position]
            unexpected += len(extra)
            indexes = [position[token] for token in got if token in position]
            inversions = sum(1 for a, b in itertools.pairwise(indexes) if a > b)
            reordered += inversions
            if inversions and len(problems) < 5:
                problems.append(f"{aggregate}: {got[:12]} ...")
        verdict = DeliveryCheck(
            expected=self.expected_count,
            messages=len(messages),
            distinct=len(first_value),
            lost=lost,
            duplicated=len(messages) - len(first_value),
            reordered=reordered,
            unexpected=unexpected,
            inconsistent_duplicates=inconsistent,
            problems=problems,
        )
        logger.info(
            "delivery check: %d expected, %d messages, %d distinct, lost %d, duplicated %d, "
            "reordered %d, unexpected %d",
            verdict.expected,
            verdict.messages,
            verdict.distinct,
            verdict.lost,
            verdict.duplicated,
            verdict.reordered,
            verdict.unexpected,
        )
        return verdict


def pending_events(store: UserEngineStore) -> list[OutboxEvent]:
    """Every pending event, in sequence order (paged)."""
    found: list[OutboxEvent] = []
    after = 0
    while True:
        page = store.pending_events(limit=1000, after_sequence=after)
        if not page:
            return found
        found.extend(page)
        after = page[-1].sequence


def wait_until_drained(store: UserEngineStore, timeout: float = 300.0) -> bool:
    """Wait until no event is pending (dead letters aside); False if ``timeout`` passed."""
    deadline = time.monotonic() + timeout
    pause = threading.Event()
    while time.monotonic() < deadline:
        stats = store.outbox_stats()
        if stats.pending == 0 and stats.in_flight == 0:
            return True
        pause.wait(0.05)
    return False


def relay_settings(**overrides: Any) -> RelaySettings:
    """Settings sized for tests: short timeouts and lease, quick backoff."""
    values: dict[str, Any] = {
        "batch_size": 500,
        "lease": timedelta(seconds=10),
        "publish_timeout": 3.0,
        "poll_interval": 0.2,
        "progress_interval": 5.0,
        "transient_max_delay": timedelta(seconds=1),
    }
    values.update(overrides)
    return RelaySettings(**values)


@contextmanager
def running_relay(
    store: UserEngineStore, publisher: EventPublisher, settings: RelaySettings
) -> Iterator[Relay]:
    """A relay running in a thread until the block ends (then stopped and joined)."""
    relay = Relay(store, publisher, settings=settings)
    stop = threading.Event()
    failure: list[BaseException] = []

    def run() -> None:
        try:
            relay.run(stop)
        except BaseException as error:  # surfaced when the block ends
            failure.append(error)

    thread = threading.Thread(target=run, name="e2e-relay", daemon=True)
    thread.start()
    try:
        yield relay
    finally:
        stop.set()
        thread.join(timeout=60)
    if failure:
        raise failure[0]
