"""The kit's pytest plugin (entry point ``pytest11``): registers its marker and options only.

Nothing here collects or runs tests: the suites are plain base classes an adapter's test
module subclasses, so installing the kit never changes what an unrelated test run does.
"""

from __future__ import annotations

import pytest

from user_engine_conformance.clauses import CLAUSE_MARKER

__all__ = ["MODEL_EXAMPLES_OPTION", "pytest_addoption", "pytest_configure"]

MODEL_EXAMPLES_OPTION = "--user-engine-model-examples"
"""How many random operation sequences the stateful model test tries."""


def pytest_addoption(parser: pytest.Parser) -> None:
    """Add the kit's options to the ``user-engine conformance`` group."""
    group = parser.getgroup("user-engine conformance")
    group.addoption(
        MODEL_EXAMPLES_OPTION,
        action="store",
        type=int,
        default=None,
        metavar="N",
        help="random operation sequences the stateful model test (store.model.equivalence) "
        "tries; default: the test class's model_examples",
    )


def pytest_configure(config: pytest.Config) -> None:
    """Register the clause marker, so ``--strict-markers`` runs accept it."""
    config.addinivalue_line(
        "markers",
        f"{CLAUSE_MARKER}(clause_id): the user-engine port contract clause this test checks",
    )
