-- user-engine PostgreSQL schema, version 1: every record kind, the audit log, the outbox.
--
-- Applied by the owner (migration) role, inside one transaction, by the migrator of
-- user_engine_store_postgres (which created schema user_engine, the version table and the
-- NOLOGIN group role user_engine_runtime beforehand). Never edit this file once released:
-- the migrator refuses a database whose applied checksum differs. Add 0002_... instead.
--
-- Design notes (docs/postgres.md has the long form):
-- * Typed tables, one per record kind: uniqueness is enforced by primary keys and unique
--   indexes (racing writers get exactly one winner), and every query the store runs is
--   served by one of the indexes below (tests EXPLAIN each of them).
-- * Text keys use the "C" collation: byte order, which for UTF-8 is code-point order, the
--   order the reference store sorts in, and the cheapest comparison for index lookups.
-- * No foreign keys: the store port does not require referential integrity (the service
--   checks existence before writing), and the reference store accepts rows whose parents are
--   absent; foreign keys would change observable behaviour and add a lookup to every write.
-- * Tenant isolation: row-level security, enabled and FORCED (the owner too) on every table
--   holding tenant rows, keyed on two transaction-local settings the store sets at the start
--   of every transaction with set_config(..., true):
--     user_engine.scope      'platform' (every tenant), 'tenant' (one tenant + platform
--                            rows), 'global' (platform rows only); unset: nothing at all
--     user_engine.tenant_id  the tenant, when scope = 'tenant'
--   Being transaction-local, they end with the transaction: a pooled connection never
--   carries one checkout's tenant into the next.
-- * The runtime role (members of user_engine_runtime) owns nothing, has no DDL rights and
--   cannot update, delete or truncate audit records.

REVOKE ALL ON SCHEMA user_engine FROM PUBLIC;
GRANT USAGE ON SCHEMA user_engine TO user_engine_runtime;
GRANT SELECT ON user_engine.schema_migrations TO user_engine_runtime;

-- The scope check every policy uses. A plain SQL function is inlined by the planner, so the
-- policies stay simple filters next to the index conditions of each query.
CREATE FUNCTION user_engine.scope_allows(row_tenant text) RETURNS boolean
LANGUAGE sql STABLE PARALLEL SAFE
AS $$
    SELECT CASE current_setting('user_engine.scope', true)
        WHEN 'platform' THEN true
        WHEN 'tenant' THEN row_tenant IS NULL
            OR row_tenant = current_setting('user_engine.tenant_id', true)
        WHEN 'global' THEN row_tenant IS NULL
        ELSE false
    END
$$;

-- -- tenants --------------------------------------------------------------------------------
CREATE TABLE user_engine.tenants (
    id          text COLLATE "C" PRIMARY KEY,
    name        text COLLATE "C" NOT NULL,
    status      text COLLATE "C" NOT NULL,
    created_at  timestamptz NOT NULL,
    version     integer NOT NULL
);
ALTER TABLE user_engine.tenants ENABLE ROW LEVEL SECURITY;
ALTER TABLE user_engine.tenants FORCE ROW LEVEL SECURITY;
CREATE POLICY tenants_scope ON user_engine.tenants
    USING (user_engine.scope_allows(id)) WITH CHECK (user_engine.scope_allows(id));
GRANT SELECT, INSERT, UPDATE ON user_engine.tenants TO user_engine_runtime;

-- -- users and accounts (platform-scoped: visible in every scope) --------------------------
CREATE TABLE user_engine.users (
    id            text COLLATE "C" PRIMARY KEY,
    display_name  text COLLATE "C" NOT NULL,
    status        text COLLATE "C" NOT NULL,
    created_at    timestamptz NOT NULL,
    updated_at    timestamptz NOT NULL,
    version       integer NOT NULL
);
GRANT SELECT, INSERT, UPDATE ON user_engine.users TO user_engine_runtime;

-- handle_key is the handle case-folded by the store (Python str.casefold, the reference
-- store's rule), so uniqueness matches it exactly, not PostgreSQL's lower().
CREATE TABLE user_engine.accounts (
    id          text COLLATE "C" PRIMARY KEY,
    user_id     text COLLATE "C" NOT NULL,
    handle      text COLLATE "C" NOT NULL,
    handle_key  text COLLATE "C" NOT NULL CONSTRAINT accounts_handle_key UNIQUE,
    status      text COLLATE "C" NOT NULL,
    created_at  timestamptz NOT NULL,
    version     integer NOT NULL
);
CREATE INDEX accounts_by_user ON user_engine.accounts (user_id, id);
GRANT SELECT, INSERT, UPDATE ON user_engine.accounts TO user_engine_runtime;

-- -- tenant accounts and memberships --------------------------------------------------------
CREATE TABLE user_engine.tenant_accounts (
    tenant_id   text COLLATE "C" NOT NULL,
    user_id     text COLLATE "C" NOT NULL,
    status      text COLLATE "C" NOT NULL,
    roles       text[] NOT NULL,
    created_at  timestamptz NOT NULL,
    updated_at  timestamptz NOT NULL,
    version     integer NOT NULL,
    PRIMARY KEY (tenant_id, user_id)
);
CREATE INDEX tenant_accounts_by_user ON user_engine.tenant_accounts (user_id, tenant_id);
ALTER TABLE user_engine.tenant_accounts ENABLE ROW LEVEL SECURITY;
ALTER TABLE user_engine.tenant_accounts FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_accounts_scope ON user_engine.tenant_accounts
    USING (user_engine.scope_allows(tenant_id)) WITH CHECK (user_engine.scope_allows(tenant_id));
GRANT SELECT, INSERT, UPDATE ON user_engine.tenant_accounts TO user_engine_runtime;

CREATE TABLE user_engine.memberships (
    tenant_id   text COLLATE "C" NOT NULL,
    user_id     text COLLATE "C" NOT NULL,
    group_name  text COLLATE "C" NOT NULL,
    created_at  timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, user_id, group_name)
);
ALTER TABLE user_engine.memberships ENABLE ROW LEVEL SECURITY;
ALTER TABLE user_engine.memberships FORCE ROW LEVEL SECURITY;
CREATE POLICY memberships_scope ON user_engine.memberships
    USING (user_engine.scope_allows(tenant_id)) WITH CHECK (user_engine.scope_allows(tenant_id));
GRANT SELECT, INSERT, DELETE ON user_engine.memberships TO user_engine_runtime;

-- -- external identities and factors (platform-scoped) --------------------------------------
-- The primary key is the invariant "an (issuer, subject) is linked to at most one user":
-- racing INSERTs of one pair serialise on the index entry, and exactly one wins.
CREATE TABLE user_engine.external_identities (
    issuer     text COLLATE "C" NOT NULL,
    subject    text COLLATE "C" NOT NULL,
    user_id    text COLLATE "C" NOT NULL,
    linked_at  timestamptz NOT NULL,
    PRIMARY KEY (issuer, subject)
);
CREATE INDEX external_identities_by_user
    ON user_engine.external_identities (user_id, issuer, subject);
GRANT SELECT, INSERT, DELETE ON user_engine.external_identities TO user_engine_runtime;

CREATE TABLE user_engine.factors (
    id          text COLLATE "C" PRIMARY KEY,
    user_id     text COLLATE "C" NOT NULL,
    kind        text COLLATE "C" NOT NULL,
    label       text COLLATE "C" NOT NULL,
    secret_ref  text COLLATE "C" NOT NULL,
    created_at  timestamptz
);
CREATE INDEX factors_by_user ON user_engine.factors (user_id, id);
GRANT SELECT, INSERT, DELETE ON user_engine.factors TO user_engine_runtime;

-- -- applications, bindings, catalogs -------------------------------------------------------
CREATE TABLE user_engine.applications (
    id          text COLLATE "C" PRIMARY KEY,
    name        text COLLATE "C" NOT NULL,
    created_at  timestamptz NOT NULL
);
GRANT SELECT, INSERT ON user_engine.applications TO user_engine_runtime;

CREATE TABLE user_engine.application_bindings (
    application_id      text COLLATE "C" NOT NULL,
    tenant_id           text COLLATE "C" NOT NULL,
    user_id             text COLLATE "C" NOT NULL,
    granted_attributes  text[] NOT NULL,
    created_at          timestamptz NOT NULL,
    PRIMARY KEY (application_id, tenant_id, user_id)
);
CREATE INDEX application_bindings_by_user
    ON user_engine.application_bindings (user_id, application_id, tenant_id);
ALTER TABLE user_engine.application_bindings ENABLE ROW LEVEL SECURITY;
ALTER TABLE user_engine.application_bindings FORCE ROW LEVEL SECURITY;
CREATE POLICY application_bindings_scope ON user_engine.application_bindings
    USING (user_engine.scope_allows(tenant_id)) WITH CHECK (user_engine.scope_allows(tenant_id));
GRANT SELECT, INSERT, UPDATE, DELETE ON user_engine.application_bindings TO user_engine_runtime;

-- Published versions are immutable: the runtime role may insert and read, never update.
CREATE TABLE user_engine.catalog_versions (
    application_id  text COLLATE "C" NOT NULL,
    version         integer NOT NULL,
    attributes      jsonb NOT NULL,
    published_at    timestamptz NOT NULL,
    published_by    text COLLATE "C" NOT NULL,
    PRIMARY KEY (application_id, version)
);
GRANT SELECT, INSERT ON user_engine.catalog_versions TO user_engine_runtime;

-- -- profile values -------------------------------------------------------------------------
-- One row per (layer, application, attribute, tenant, user); tenant and user are NULL where
-- the layer has none, and NULLS NOT DISTINCT makes those NULLs collide in the key. The key
-- leads with (user_id, tenant_id) so resolving a profile reads four index ranges: the user's
-- rows (tenant NULL or the tenant), the tenant defaults (user NULL), the application defaults.
CREATE TABLE user_engine.profile_values (
    layer            text COLLATE "C" NOT NULL,
    application_id   text COLLATE "C" NOT NULL,
    attribute        text COLLATE "C" NOT NULL,
    tenant_id        text COLLATE "C",
    user_id          text COLLATE "C",
    value            jsonb NOT NULL,
    version          integer NOT NULL,
    catalog_version  integer NOT NULL,
    written_by       text COLLATE "C" NOT NULL,
    written_at       timestamptz NOT NULL,
    CONSTRAINT profile_values_key
        UNIQUE NULLS NOT DISTINCT (user_id, tenant_id, application_id, attribute, layer)
);
ALTER TABLE user_engine.profile_values ENABLE ROW LEVEL SECURITY;
ALTER TABLE user_engine.profile_values FORCE ROW LEVEL SECURITY;
CREATE POLICY profile_values_scope ON user_engine.profile_values
    USING (user_engine.scope_allows(tenant_id)) WITH CHECK (user_engine.scope_allows(tenant_id));
GRANT SELECT, INSERT, UPDATE, DELETE ON user_engine.profile_values TO user_engine_runtime;

-- -- audit log ------------------------------------------------------------------------------
-- Append-only: the runtime role may only insert and read (no UPDATE, DELETE or TRUNCATE
-- grant), and with FORCE ROW LEVEL SECURITY and no UPDATE/DELETE policy not even the owner
-- can change a row. Reads are filtered by scope here; read_audit narrows a tenant scope
-- further to that tenant's own records (the port's audit isolation).
CREATE TABLE user_engine.audit_records (
    sequence     bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id           text COLLATE "C" NOT NULL,
    occurred_at  timestamptz NOT NULL,
    tenant_id    text COLLATE "C",
    actor_id     text COLLATE "C" NOT NULL,
    actor_kind   text COLLATE "C" NOT NULL,
    action       text COLLATE "C" NOT NULL,
    target_kind  text COLLATE "C" NOT NULL,
    target_id    text COLLATE "C" NOT NULL,
    outcome      text COLLATE "C" NOT NULL,
    reason_code  text COLLATE "C" NOT NULL,
    request_id   text COLLATE "C" NOT NULL,
    details      jsonb NOT NULL
);
CREATE INDEX audit_records_by_tenant ON user_engine.audit_records (tenant_id, sequence);
CREATE INDEX audit_records_by_actor ON user_engine.audit_records (actor_id, sequence);
CREATE INDEX audit_records_by_action ON user_engine.audit_records (action, sequence);
ALTER TABLE user_engine.audit_records ENABLE ROW LEVEL SECURITY;
ALTER TABLE user_engine.audit_records FORCE ROW LEVEL SECURITY;
CREATE POLICY audit_records_read ON user_engine.audit_records FOR SELECT
    USING (user_engine.scope_allows(tenant_id));
CREATE POLICY audit_records_append ON user_engine.audit_records FOR INSERT
    WITH CHECK (user_engine.scope_allows(tenant_id));
GRANT SELECT, INSERT ON user_engine.audit_records TO user_engine_runtime;

-- -- transactional outbox -------------------------------------------------------------------
-- sequence is drawn at INSERT, after the writer took a transaction-level advisory lock on
-- the aggregate (see the store's append_event): two transactions writing one aggregate are
-- serialised, so that aggregate's sequences follow commit order.
-- The partial indexes hold only pending (resp. dead) rows, so the relay's scans stay small
-- however many events were ever written (acknowledged rows are deleted).
CREATE TABLE user_engine.outbox_events (
    id                text COLLATE "C" PRIMARY KEY,
    sequence          bigint GENERATED ALWAYS AS IDENTITY,
    event_type        text COLLATE "C" NOT NULL,
    aggregate_type    text COLLATE "C" NOT NULL,
    aggregate_id      text COLLATE "C" NOT NULL,
    tenant_id         text COLLATE "C",
    occurred_at       timestamptz NOT NULL,
    payload           jsonb NOT NULL,
    attempts          integer NOT NULL DEFAULT 0,
    last_error        text COLLATE "C" NOT NULL DEFAULT '',
    available_at      timestamptz,
    status            text COLLATE "C" NOT NULL DEFAULT 'pending',
    lease_token       text COLLATE "C",
    lease_expires_at  timestamptz
);
CREATE UNIQUE INDEX outbox_events_pending
    ON user_engine.outbox_events (sequence) WHERE status = 'pending';
CREATE INDEX outbox_events_pending_by_aggregate
    ON user_engine.outbox_events (aggregate_id, sequence) WHERE status = 'pending';
CREATE UNIQUE INDEX outbox_events_dead
    ON user_engine.outbox_events (sequence) WHERE status = 'dead';
-- Pending events that are, or were, leased or put back for a retry: the only ones that can
-- block their aggregate. A claim looks for blockers here, among few rows, not among all
-- pending ones.
CREATE INDEX outbox_events_may_block
    ON user_engine.outbox_events (aggregate_id, sequence)
    WHERE status = 'pending' AND (lease_token IS NOT NULL OR available_at IS NOT NULL);
ALTER TABLE user_engine.outbox_events ENABLE ROW LEVEL SECURITY;
ALTER TABLE user_engine.outbox_events FORCE ROW LEVEL SECURITY;
CREATE POLICY outbox_events_scope ON user_engine.outbox_events
    USING (user_engine.scope_allows(tenant_id)) WITH CHECK (user_engine.scope_allows(tenant_id));
GRANT SELECT, INSERT, UPDATE, DELETE ON user_engine.outbox_events TO user_engine_runtime;
