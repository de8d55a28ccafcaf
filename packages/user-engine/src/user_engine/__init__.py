"""user-engine: a headless, multi-tenant user, account and profile engine."""

__version__ = "0.1.0"
