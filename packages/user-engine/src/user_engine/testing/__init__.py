"""In-process fakes for the ports that are not storage: clock, ids, secrets, verifier."""

from user_engine.testing.fakes import (
    FixedClock,
    InMemorySecretStore,
    RecordingMembershipExporter,
    SequentialIds,
    TrustingIdentityVerifier,
)

__all__ = [
    "FixedClock",
    "InMemorySecretStore",
    "RecordingMembershipExporter",
    "SequentialIds",
    "TrustingIdentityVerifier",
]
