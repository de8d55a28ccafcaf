"""Plugin discovery through the entry points of installed distributions.

Each test installs tiny distributions into a temporary site directory (a module plus a
``*.dist-info`` with ``METADATA`` and ``entry_points.txt``, exactly what an installer writes)
and puts it on ``sys.path`` (or ``PYTHONPATH`` for the command line). Discovery must find them
through ``importlib.metadata`` alone: no test imports a plugin module itself.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from user_engine.config import EngineConfig, build_engine, load_config
from user_engine.errors import ConfigurationError, PluginError
from user_engine.plugins import PluginHost

STORE_PLUGIN = """
from user_engine.hookspecs import hookimpl
from user_engine_store_memory import MemoryStore


def create_store(settings):
    return MemoryStore(name={adapter!r})


@hookimpl
def user_engine_register_stores(register):
    register({adapter!r}, create_store)
"""
BROKEN_PLUGIN = 'raise ImportError("the acme database driver is not installed")\n'
MISSPELLED_PLUGIN = """
from user_engine.hookspecs import hookimpl


@hookimpl
def user_engine_register_storez(register):
    register("typo", lambda settings: None)
"""
INVALID_REGISTRATION_PLUGIN = """
from user_engine.hookspecs import hookimpl


@hookimpl
def user_engine_register_audit_sinks(register):
    register("", "not a factory")
"""


@dataclass
class Site:
    """A temporary site directory that distributions are installed into."""

    root: Path
    modules: list[str] = field(default_factory=list)

    def install(
        self,
        distribution: str,
        entry_point: str,
        source: str,
        version: str = "1.0.0",
    ) -> str:
        """Install a one-module distribution exposing ``entry_point``; return the module."""
        module = f"{entry_point.replace('-', '_')}_{uuid.uuid4().hex[:8]}"
        (self.root / f"{module}.py").write_text(source)
        info = self.root / f"{distribution.replace('-', '_')}-{version}.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(
            f"Metadata-Version: 2.1\nName: {distribution}\nVersion: {version}\n"
        )
        (info / "entry_points.txt").write_text(f"[user_engine]\n{entry_point} = {module}\n")
        (info / "RECORD").write_text("")
        self.modules.append(module)
        return module

    def environment(self) -> dict[str, str]:
        """The process environment with this site on ``PYTHONPATH``."""
        paths = [str(self.root), os.environ.get("PYTHONPATH", "")]
        return {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in paths if p)}


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Site]:
    """A site directory on ``sys.path`` for this test; its modules are forgotten after."""
    root = tmp_path / "site-packages"
    root.mkdir()
    monkeypatch.syspath_prepend(str(root))
    installed = Site(root)
    yield installed
    for module in installed.modules:
        sys.modules.pop(module, None)


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """``python -m user_engine ARGS`` in a fresh interpreter."""
    return subprocess.run(
        [sys.executable, "-m", "user_engine", *args],
        capture_output=True,
        text=True,
        check=False,
        env=env,
    )


def test_an_installed_distribution_is_discovered_through_its_entry_point(site: Site) -> None:
    module = site.install(
        "acme-user-engine-store", "acme", STORE_PLUGIN.format(adapter="acme"), version="1.2.3"
    )
    assert module not in sys.modules

    host = PluginHost()

    [acme] = [a for a in host.adapters("store") if a.name == "acme"]
    assert (acme.distribution, acme.version, acme.plugin) == (
        "acme-user-engine-store",
        "1.2.3",
        "acme",
    )
    assert module in sys.modules, "discovery imported the module through the entry point"
    store = host.create_store("acme", {})
    assert store.name == "acme"
    with build_engine(EngineConfig(store="acme"), host=host) as engine:
        assert engine.store.name == "acme"


def test_the_packaged_adapters_register_through_the_same_entry_points() -> None:
    host = PluginHost()

    by_kind = {
        kind: {a.name: a.distribution for a in host.adapters(kind)}
        for kind in ("store", "events", "audit")
    }
    assert by_kind["store"]["memory"] == "user-engine-store-memory"
    assert by_kind["events"]["inprocess"] == "user-engine"
    assert by_kind["audit"]["inprocess"] == "user-engine"


def test_a_plugin_that_fails_to_import_is_reported_by_name_and_the_others_still_load(
    site: Site,
) -> None:
    site.install("acme-broken", "acme-broken", BROKEN_PLUGIN)
    site.install("acme-user-engine-store", "acme", STORE_PLUGIN.format(adapter="acme"))

    host = PluginHost()

    [failure] = [f for f in host.failures if f.name.startswith("acme")]
    assert (failure.name, failure.distribution) == ("acme-broken", "acme-broken")
    assert failure.error == "ImportError: the acme database driver is not installed"
    assert {"acme", "memory"} <= {a.name for a in host.adapters("store")}


def test_a_duplicate_adapter_name_is_an_error_naming_both_distributions(site: Site) -> None:
    site.install("acme-store-one", "acme-one", STORE_PLUGIN.format(adapter="acme"))
    site.install("acme-store-two", "acme-two", STORE_PLUGIN.format(adapter="acme"))
    host = PluginHost()

    with pytest.raises(PluginError) as duplicate:
        host.adapters("store")

    assert duplicate.value.code == "plugin.duplicate_name"
    assert "acme-store-one" in duplicate.value.message
    assert "acme-store-two" in duplicate.value.message


def test_a_duplicate_of_a_packaged_adapter_name_is_an_error_too(site: Site) -> None:
    site.install("memory-impostor", "impostor", STORE_PLUGIN.format(adapter="memory"))

    with pytest.raises(PluginError) as duplicate:
        PluginHost().adapter("store", "memory")

    assert "user-engine-store-memory" in duplicate.value.message
    assert "memory-impostor" in duplicate.value.message


def test_a_misspelled_hook_fails_at_start_up_naming_the_plugin(site: Site) -> None:
    site.install("acme-typo", "acme-typo", MISSPELLED_PLUGIN)

    with pytest.raises(PluginError) as unknown:
        PluginHost()

    assert unknown.value.code == "plugin.unknown_hook"
    assert "acme-typo" in unknown.value.message
    assert "user_engine_register_storez" in unknown.value.message


def test_an_invalid_registration_is_an_error_naming_the_plugin(site: Site) -> None:
    site.install("acme-invalid", "acme-invalid", INVALID_REGISTRATION_PLUGIN)

    with pytest.raises(PluginError) as invalid:
        PluginHost().adapters("audit")

    assert invalid.value.code == "plugin.invalid_registration"
    assert "acme-invalid" in invalid.value.message


def test_disabled_plugins_are_neither_imported_nor_registered(site: Site) -> None:
    typo = site.install("acme-typo", "acme-typo", MISSPELLED_PLUGIN)
    broken = site.install("acme-broken", "acme-broken", BROKEN_PLUGIN)
    store = site.install("acme-user-engine-store", "acme", STORE_PLUGIN.format(adapter="acme"))

    host = PluginHost(disabled=["acme-typo", "acme-broken", "acme"])

    assert [f for f in host.failures if f.name.startswith("acme")] == []
    assert host.disabled == {"acme-typo", "acme-broken", "acme"}
    assert not {typo, broken, store} & set(sys.modules)
    assert "acme" not in {a.name for a in host.adapters("store")}
    with pytest.raises(ConfigurationError) as unknown:
        host.adapter("store", "acme")
    assert "memory" in unknown.value.message, "the error lists the adapters available"


def test_the_configuration_disable_list_reaches_discovery(site: Site) -> None:
    site.install("acme-typo", "acme-typo", MISSPELLED_PLUGIN)
    config = load_config(environ={"USER_ENGINE_DISABLE_PLUGINS": "acme-typo, other"})

    with build_engine(config) as engine:
        assert engine.host.disabled == {"acme-typo", "other"}
        assert engine.store.name == "memory"


def test_the_plugins_command_lists_the_memory_store_from_its_distribution() -> None:
    finished = run_cli("plugins", "--json")

    listing = json.loads(finished.stdout)
    assert {
        "name": "memory",
        "distribution": "user-engine-store-memory",
        "version": "0.1.0",
    } in listing["adapters"]["store"]
    # Exit 1 exactly when some installed plugin failed to load (none of ours may).
    assert finished.returncode == (1 if listing["failures"] else 0), finished.stderr
    assert not [
        f
        for f in listing["failures"]
        if f["distribution"].startswith("user-engine") and f["name"] in {"memory", "inprocess"}
    ]
    names = {p["name"]: p["distribution"] for p in listing["plugins"]}
    assert names["memory"] == "user-engine-store-memory"
    assert names["inprocess"] == "user-engine"


def test_the_console_script_lists_the_memory_store() -> None:
    script = Path(sys.executable).with_name("user-engine")

    finished = subprocess.run([str(script), "plugins"], capture_output=True, text=True, check=False)

    assert finished.returncode in (0, 1), finished.stderr
    assert "memory" in finished.stdout
    assert "user-engine-store-memory" in finished.stdout


def test_the_plugins_command_reports_a_broken_plugin_and_exits_1(site: Site) -> None:
    site.install("acme-broken", "acme-broken", BROKEN_PLUGIN)

    finished = run_cli("plugins", "--json", env=site.environment())

    assert finished.returncode == 1
    listing = json.loads(finished.stdout)
    assert {
        "name": "acme-broken",
        "distribution": "acme-broken",
        "error": "ImportError: the acme database driver is not installed",
    } in listing["failures"]
    assert any(a["name"] == "memory" for a in listing["adapters"]["store"])
    text = run_cli("plugins", env=site.environment())
    assert "failed to load plugin acme-broken (acme-broken)" in text.stdout


def test_the_plugins_command_names_both_distributions_of_a_duplicate(site: Site) -> None:
    site.install("acme-store-one", "acme-one", STORE_PLUGIN.format(adapter="acme"))
    site.install("acme-store-two", "acme-two", STORE_PLUGIN.format(adapter="acme"))

    finished = run_cli("plugins", env=site.environment())

    assert finished.returncode == 2
    assert "acme-store-one" in finished.stderr
    assert "acme-store-two" in finished.stderr
    assert "Traceback" not in finished.stderr


def test_the_plugins_command_fails_clearly_on_a_misspelled_hook_unless_disabled(
    site: Site,
) -> None:
    site.install("acme-typo", "acme-typo", MISSPELLED_PLUGIN)

    failed = run_cli("plugins", env=site.environment())
    disabled = run_cli("plugins", "--json", "--disable", "acme-typo", env=site.environment())

    assert failed.returncode == 2
    assert "plugin.unknown_hook" in failed.stderr
    assert "acme-typo" in failed.stderr
    assert "Traceback" not in failed.stderr
    assert disabled.returncode in (0, 1), disabled.stderr
    listing = json.loads(disabled.stdout)
    assert listing["disabled"] == ["acme-typo"]
    assert not [f for f in listing["failures"] if f["name"] == "acme-typo"]
