"""Registration of the Acme store through the ``user_engine`` entry point."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from user_engine.errors import ConfigurationError
from user_engine.hookspecs import Register, hookimpl

from acme_user_engine_store.store import AcmeStore

_REGION = re.compile(r"[a-z]{2}-[a-z]+")


def create_store(settings: Mapping[str, Any]) -> AcmeStore:
    """Build an Acme store from its settings table (``[acme]`` in the engine config).

    ``region`` (required): an Acme region such as ``eu-west``. ``migrate`` (default true):
    bring the schema up to date at once. Unknown or malformed settings are a
    ``ConfigurationError`` that says what to write instead.
    """
    unknown = set(settings) - {"region", "migrate"}
    if unknown:
        raise ConfigurationError(
            f"the acme store does not know the setting(s) {', '.join(sorted(unknown))}; "
            "it takes 'region' and 'migrate'",
            code="configuration.unknown_setting",
        )
    region = settings.get("region")
    if not isinstance(region, str) or not _REGION.fullmatch(region):
        raise ConfigurationError(
            "the acme store needs the setting 'region', an Acme region such as 'eu-west' "
            '(USER_ENGINE_ACME__REGION=eu-west, or region = "eu-west" under [acme])',
            code="configuration.missing_setting",
        )
    store = AcmeStore(region)
    if settings.get("migrate", True):
        store.migrate()
    return store


@hookimpl
def user_engine_register_stores(register: Register) -> None:
    """Register the Acme store as ``acme``."""
    register("acme", create_store)
