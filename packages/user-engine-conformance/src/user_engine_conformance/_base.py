"""What the three suites share: building the adapter through its entry point, failing loudly
when it cannot be built, skipping undeclared capabilities with a reason, and refusing
overrides of clause tests that are not an xfail with a reason."""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from typing import Any, ClassVar, NoReturn

import pytest
from user_engine.errors import ConfigurationError
from user_engine.plugins import AdapterInfo, AdapterKind, PluginHost

from user_engine_conformance.clauses import CLAUSE_ATTRIBUTE, clause_of

__all__ = ["ConformanceBase"]

_DOCS = "docs/conformance.md"


@functools.cache
def _installed_plugins() -> PluginHost:
    # Discovery reads every installed distribution's metadata: once per process is enough.
    return PluginHost()


def _inherited_clause(cls: type, name: str) -> tuple[str, object] | None:
    """The clause id and test a base class defines under ``name``, if it is a clause test."""
    for base in cls.__mro__[1:]:
        if name in vars(base):
            test = vars(base)[name]
            found = getattr(test, CLAUSE_ATTRIBUTE, None)
            return (found, test) if isinstance(found, str) else None
    return None


def _xfail_reason(function: object) -> str:
    for mark in getattr(function, "pytestmark", ()):
        if getattr(mark, "name", "") == "xfail":
            reason = mark.kwargs.get("reason", "")
            return reason.strip() if isinstance(reason, str) else ""
    return ""


class ConformanceBase:
    """Machinery shared by ``StoreConformance``, ``EventPublisherConformance`` and
    ``AuditSinkConformance``. Not a test class itself (its name does not start with Test)."""

    adapter_name: ClassVar[str] = ""
    """The name the adapter registered under through the ``user_engine`` entry point."""

    adapter_kind: ClassVar[AdapterKind]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        """Allow overriding a clause test only as an xfail with a reason.

        Skipping a clause by overriding it with a passing test would make an adapter look
        conformant when it is not; an xfail with a reason stays visible in every report.
        """
        super().__init_subclass__(**kwargs)
        for name, value in list(vars(cls).items()):
            inherited = _inherited_clause(cls, name)
            if inherited is None:
                continue
            clause_id, test = inherited
            if not callable(value) or not _xfail_reason(value):
                raise TypeError(
                    f"{cls.__qualname__}.{name} overrides the conformance test of clause "
                    f"{clause_id}. A clause may only be overridden as an expected failure: "
                    f"decorate the override with @pytest.mark.xfail(reason='why the adapter "
                    f"cannot keep {clause_id}') and call the inherited test from it (see "
                    f"{_DOCS}, 'Overriding a clause')."
                )
            # The override keeps the inherited marks it does not set itself: it reports under
            # its clause id and runs with the same parameters as the test it replaces.
            own = list(getattr(value, "pytestmark", []))
            names = {mark.name for mark in own}
            value.pytestmark = own + [
                mark for mark in getattr(test, "pytestmark", []) if mark.name not in names
            ]
            setattr(value, CLAUSE_ATTRIBUTE, clause_id)

    @pytest.fixture
    def adapter_settings(self) -> Mapping[str, Any]:
        """Settings handed to the adapter factory. Override to pass a DSN, servers ...

        Its scope is yours to choose: function scope gives each test its own settings (for
        example a fresh database), class scope shares them across the class.
        """
        return {}

    @pytest.fixture
    def plugin_host(self) -> PluginHost:
        """The plugin host adapters are built from: every installed ``user_engine`` entry
        point. Override only to test an adapter that is not packaged yet (then the packaging
        itself is not tested)."""
        return _installed_plugins()

    # -- building the adapter ---------------------------------------------------------------
    def _adapter_info(self, host: PluginHost) -> AdapterInfo:
        cls = type(self)
        kind = cls.adapter_kind
        if not cls.adapter_name:
            pytest.fail(
                f"{cls.__qualname__} names no adapter: set the class attribute "
                f"adapter_name = '<name>' to the name your {kind} adapter registers through the "
                "'user_engine' entry point (see docs/writing-an-adapter.md).",
                pytrace=False,
            )
        try:
            return host.adapter(kind, cls.adapter_name)
        except ConfigurationError as error:
            problem = error.message
        # Failing outside the except block keeps the driver-free message on its own.
        broken = "".join(
            f"\n  plugin {failure.name} ({failure.distribution}) failed to load: {failure.error}"
            for failure in host.failures
        )
        pytest.fail(
            f"{problem}.{broken}\nInstall the distribution that registers "
            f"{cls.adapter_name!r} under the 'user_engine' entry point in this environment "
            "(an editable install is enough) and check `user-engine plugins`.",
            pytrace=False,
        )

    def _build(
        self,
        host: PluginHost,
        settings: Mapping[str, Any],
        create: Callable[[str, Mapping[str, Any]], Any],
    ) -> Any:
        info = self._adapter_info(host)
        try:
            return create(info.name, dict(settings))
        except ConfigurationError as error:
            problem = str(error)
        pytest.fail(
            f"the {info.kind} adapter {info.name!r} ({info.distribution} {info.version}) "
            f"could not be built from the settings {sorted(settings)}: {problem}\n"
            f"Give it the settings it needs with an `adapter_settings` fixture on "
            f"{type(self).__qualname__}, e.g.\n\n"
            "    @pytest.fixture\n"
            "    def adapter_settings(self):\n"
            "        return {'dsn': ...}\n\n"
            "or, with the zero-line command, `--setting key=value`.",
            pytrace=False,
        )

    @staticmethod
    def _require_capabilities(
        request: pytest.FixtureRequest, declared: frozenset[str], adapter: str
    ) -> None:
        found = clause_of(request.node) if isinstance(request.node, pytest.Item) else None
        if found is None:
            return
        missing = sorted(found.requires - declared)
        if missing:
            pytest.skip(
                f"clause {found.id} needs the capabilit{'y' if len(missing) == 1 else 'ies'} "
                f"{', '.join(missing)}, which adapter {adapter!r} does not declare in its "
                "capabilities"
            )

    @staticmethod
    def _hook_missing(request: pytest.FixtureRequest, fixture: str, purpose: str) -> NoReturn:
        found = clause_of(request.node) if isinstance(request.node, pytest.Item) else None
        clause_id = found.id if found else "this clause"
        owner = type(request.instance).__qualname__ if request.instance else "the test class"
        pytest.skip(
            f"{clause_id} needs the `{fixture}` fixture, which {owner} does not provide: "
            f"override it to {purpose} (see {_DOCS}, 'Hooks')"
        )
