"""Translation of psycopg and pool errors into user-engine's typed errors.

Messages name the operation, the SQLSTATE and (for constraint violations) the constraint:
never a parameter value, so no secret can reach a message through here. The driver error
stays available as ``__cause__`` for debugging.
"""

from __future__ import annotations

import psycopg
import psycopg.errors as pg_errors
import psycopg_pool
from user_engine.errors import (
    ConflictError,
    NotFoundError,
    NotReadyError,
    StoreUnavailableError,
    UserEngineError,
    ValidationError,
)

__all__ = ["translate"]

_SCHEMA_MISSING = (
    pg_errors.UndefinedTable,
    pg_errors.UndefinedFunction,
    pg_errors.UndefinedColumn,
    pg_errors.InvalidSchemaName,
)


def translate(error: BaseException, operation: str) -> UserEngineError:
    """The core error for a driver error raised while doing ``operation``."""
    if isinstance(error, UserEngineError):
        return error
    if isinstance(error, psycopg_pool.PoolTimeout):
        return StoreUnavailableError(
            f"{operation}: no database connection became free in time; the pool is exhausted "
            "or the server is unreachable (raise max_pool_size or check the server)",
            code="store.unavailable",
            details={"operation": operation},
        )
    if isinstance(error, psycopg_pool.PoolClosed):
        return StoreUnavailableError(
            f"{operation}: the store is closed",
            code="store.closed",
            details={"operation": operation},
        )
    if isinstance(error, UnicodeError):
        return ValidationError(
            f"{operation}: a text value cannot be encoded as UTF-8 (unpaired surrogate?)",
            code="validation.encoding",
            details={"operation": operation},
        )
    if not isinstance(error, psycopg.Error):
        return StoreUnavailableError(
            f"{operation} failed: {type(error).__name__}",
            code="store.failed",
            details={"operation": operation},
        )
    state = error.sqlstate or ""
    where = {"operation": operation, "sqlstate": state}
    constraint = error.diag.constraint_name if error.diag else None
    if constraint:
        where["constraint"] = constraint
    if isinstance(error, psycopg.errors.PipelineAborted | pg_errors.InFailedSqlTransaction):
        return ConflictError(
            f"{operation}: not run, because an earlier statement of this transaction failed; "
            "the transaction rolls back (catch failures inside a savepoint to go on)",
            code="store.rolled_back",
            details=where,
        )
    if isinstance(error, _SCHEMA_MISSING):
        return NotReadyError(
            f"{operation}: the database schema is missing or behind the code; run "
            "`user-engine migrate`",
            code="schema.behind",
            details=where,
        )
    if isinstance(error, pg_errors.InsufficientPrivilege):
        if "row-level security" in (error.diag.message_primary or ""):
            return NotFoundError(
                f"{operation}: the row is outside the transaction's tenant scope",
                code="tenant.out_of_scope",
                details=where,
            )
        return StoreUnavailableError(
            f"{operation}: the database role lacks a privilege ({state}); the runtime role "
            "needs the grants of the migrations (docs/postgres.md, 'Roles')",
            code="store.permission_denied",
            details=where,
        )
    if isinstance(error, pg_errors.UniqueViolation):
        return ConflictError(
            f"{operation}: a row with that key already exists", code="conflict", details=where
        )
    if isinstance(error, pg_errors.IntegrityError):
        return ValidationError(
            f"{operation}: the database rejected the row ({state})",
            code="validation.store_rejected",
            details=where,
        )
    if isinstance(error, psycopg.DataError):
        return ValidationError(
            f"{operation}: the database rejected a value ({state or 'client-side'}): text may "
            "not contain NUL characters and numbers must fit their column",
            code="validation.store_rejected",
            details=where,
        )
    if isinstance(error, pg_errors.SerializationFailure | pg_errors.DeadlockDetected):
        return ConflictError(
            f"{operation}: the transaction collided with a concurrent one ({state}); retry it",
            code="store.retry",
            details=where,
        )
    if isinstance(error, pg_errors.QueryCanceled):
        return StoreUnavailableError(
            f"{operation}: the statement was cancelled (timeout?)",
            code="store.timeout",
            details=where,
        )
    if isinstance(error, psycopg.OperationalError | psycopg.InterfaceError):
        return StoreUnavailableError(
            f"{operation}: the database is unreachable or the connection broke; retry later",
            code="store.unavailable",
            details=where,
        )
    return StoreUnavailableError(
        f"{operation}: unexpected database error ({type(error).__name__}, {state})",
        code="store.failed",
        details=where,
    )
