"""The suite's self-test: broken adapters must fail it with the right clause ids.

Inner pytest runs happen in this process (``pytester``); the mutants module is put in
``sys.modules`` under its own name so the generated test modules can import it.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

from hypothesis import Phase, settings

_HERE = Path(__file__).parent

# Inner runs of the stateful model test report the first failing sequence without shrinking
# it: the self-test only needs to know that the clause fails, and shrinking costs minutes.
settings.register_profile(
    "conformance-selftest", phases=(Phase.explicit, Phase.reuse, Phase.generate)
)

if "selftest_mutants" not in sys.modules:
    _spec = importlib.util.spec_from_file_location(
        "selftest_mutants", _HERE / "selftest_mutants.py"
    )
    assert _spec is not None
    assert _spec.loader is not None
    _module = importlib.util.module_from_spec(_spec)
    sys.modules["selftest_mutants"] = _module
    _spec.loader.exec_module(_module)
