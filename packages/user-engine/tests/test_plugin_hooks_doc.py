"""docs/plugin-hooks.md lists every hookspec with its exact signature."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

from user_engine import hookspecs

DOC = Path(__file__).resolve().parents[3] / "docs" / "plugin-hooks.md"


def _hookspecs() -> dict[str, str]:
    """``{name: "def name(param: Annotation, ...) -> Return"}`` from ``user_engine.hookspecs``."""
    found = {}
    for name, function in inspect.getmembers(hookspecs, inspect.isfunction):
        if not hasattr(function, f"{hookspecs.PROJECT_NAME}_spec"):
            continue
        signature = inspect.signature(function)  # annotations stay strings (PEP 563)
        parameters = ", ".join(f"{p.name}: {p.annotation}" for p in signature.parameters.values())
        found[name] = f"def {name}({parameters}) -> {signature.return_annotation}"
    return found


def test_the_hookspecs_module_declares_hooks() -> None:
    assert set(_hookspecs()) >= {
        "user_engine_register_stores",
        "user_engine_register_event_publishers",
        "user_engine_register_audit_sinks",
    }


def test_every_hookspec_is_documented_with_its_signature() -> None:
    text = DOC.read_text(encoding="utf-8")

    for name, signature in _hookspecs().items():
        assert f"## `{name}`" in text, f"{name} has no section in {DOC.name}"
        assert signature in text, f"{DOC.name} does not show: {signature}"


def test_the_doc_documents_no_hook_that_does_not_exist() -> None:
    documented = set(re.findall(r"^## `(user_engine_\w+)`", DOC.read_text(), re.MULTILINE))

    assert documented == set(_hookspecs())
