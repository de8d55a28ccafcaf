"""The clause registry: stable, well-formed ids, and the marker that carries them."""

import re

import pytest
from user_engine.ports import StoreCapability
from user_engine_conformance import CLAUSES, clause
from user_engine_conformance.clauses import CLAUSE_ATTRIBUTE, CLAUSE_MARKER

_CAPABILITIES = {
    StoreCapability.CONCURRENT_WRITERS,
    StoreCapability.MULTI_PROCESS,
    StoreCapability.WAKE_ON_EVENT,
    StoreCapability.ROW_LEVEL_SECURITY,
}


def test_clause_ids_are_dotted_lowercase_and_start_with_their_port() -> None:
    for clause_id, found in CLAUSES.items():
        assert re.fullmatch(r"[a-z]+(\.[a-z][a-z0-9-]*)+", clause_id)
        assert clause_id.startswith(found.port + ".")
        assert found.summary.endswith(".")


def test_clauses_need_only_capabilities_stores_can_declare() -> None:
    for found in CLAUSES.values():
        assert found.requires <= _CAPABILITIES
        assert not found.requires or found.port == "store"


def test_the_clause_decorator_marks_the_test_with_its_id() -> None:
    @clause("store.identity.unique")
    def test_something() -> None: ...

    [mark] = test_something.pytestmark  # type: ignore[attr-defined]
    assert (mark.name, mark.args) == (CLAUSE_MARKER, ("store.identity.unique",))
    assert getattr(test_something, CLAUSE_ATTRIBUTE) == "store.identity.unique"


def test_a_misspelled_clause_id_fails_at_import_time() -> None:
    with pytest.raises(KeyError, match=r"store\.identity\.unqiue"):
        clause("store.identity.unqiue")
