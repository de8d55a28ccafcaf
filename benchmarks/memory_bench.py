"""Memory store: the service's write path and profile resolution against plain dicts.

The limit for a mutation is a plain dict doing the same work by hand: build the domain row,
the audit row and the outbox row and put them in three dicts (the "Python floor" of
PERFORMANCE.md). The limit for a read is a dict lookup of a prepared profile.
"""

from __future__ import annotations

import argparse
import itertools
import sys
import uuid
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _report import Figure, median_of, rate, report
from user_engine.domain import Principal
from user_engine.runtime import RandomIds, SystemClock
from user_engine.service import UserEngineService
from user_engine.testing import InMemorySecretStore
from user_engine_store_memory import MemoryStore


def main() -> None:
    """Measure and report."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    count = 2_000 if parser.parse_args().quick else 20_000

    store = MemoryStore()
    store.migrate()
    service = UserEngineService(
        store=store, clock=SystemClock(), ids=RandomIds(), secrets=InMemorySecretStore()
    )
    operator = Principal.platform_operator("bench")
    service.create_tenant(operator, "bench", name="Bench")
    service.register_application(operator, "app", name="App")
    service.publish_catalog(
        Principal.application("app"),
        "app",
        [{"name": "nickname", "type": "string", "writers": ["self"], "layers": ["user"]}],
    )
    user = service.create_user(operator, display_name="U", tenant_id="bench")
    me = Principal.user(user.id)
    values = itertools.count()

    def service_write() -> None:
        service.write_profile_value(
            me, attribute="app.nickname", layer="user", user_id=user.id, value=f"n{next(values)}"
        )

    rows: dict[str, dict[str, object]] = {}
    audit: dict[str, dict[str, object]] = {}
    outbox: dict[str, dict[str, object]] = {}

    def dict_write() -> None:
        now = datetime.now(UTC)
        rows[user.id] = {"user": user.id, "attribute": "nickname", "value": "n", "at": now}
        audit[uuid.uuid4().hex] = {"actor": user.id, "action": "profile.write", "at": now}
        outbox[uuid.uuid4().hex] = {"type": "profile.value_written", "key": user.id, "at": now}

    def service_read() -> None:
        service.effective_profile(me, user.id)

    profile = {"app.nickname": "n"}

    def dict_read() -> None:
        rows.get(user.id)
        dict(profile)

    figures = [
        Figure(
            "mutation: service write vs 3 dict inserts",
            median_of(3, lambda: rate(service_write, count)),
            median_of(3, lambda: rate(dict_write, count)),
            "ops/s",
        ),
        Figure(
            "read: effective profile vs dict lookup",
            median_of(3, lambda: rate(service_read, count)),
            median_of(3, lambda: rate(dict_read, count)),
            "ops/s",
        ),
    ]
    report(
        "memory",
        figures,
        notes=[
            f"{count} operations per run, median of 3 runs",
            "the service path validates input, authorizes, audits and appends an outbox event",
        ],
    )


if __name__ == "__main__":
    main()
