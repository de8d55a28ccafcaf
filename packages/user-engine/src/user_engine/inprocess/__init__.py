"""In-process event publisher and audit sink: for the demo, tests and single-process apps."""

from user_engine.inprocess.adapters import InProcessAuditSink, InProcessEventPublisher

__all__ = ["InProcessAuditSink", "InProcessEventPublisher"]
