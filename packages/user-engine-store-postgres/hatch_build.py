"""Build hook: put the repository's ``migrations/postgres`` into the package.

Built from the repository, the SQL files come from ``../../migrations/postgres`` (their one
source of truth): into ``src/user_engine_store_postgres/migrations`` of the sdist and into
``user_engine_store_postgres/migrations`` of the wheel. A wheel built from that sdist finds
them already inside the package directory. Editable installs read them from the repository.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hatchling.builders.hooks.plugin.interface import BuildHookInterface


class MigrationsHook(BuildHookInterface):  # type: ignore[type-arg]
    """Force-include the migrations when building from the repository."""

    PLUGIN_NAME = "migrations"

    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        source = Path(self.root).resolve().parent.parent / "migrations" / "postgres"
        if version == "editable" or not source.is_dir():
            return
        inside = "user_engine_store_postgres/migrations"
        target = inside if self.target_name == "wheel" else f"src/{inside}"
        build_data["force_include"][str(source)] = target
