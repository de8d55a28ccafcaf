-- user-engine PostgreSQL schema, version 2: user_engine.profile_inputs, a profile resolution's
-- reads as one statement.
--
-- Applied by the owner (migration) role, like 0001. Never edit this file once released.
--
-- Resolving a profile reads the current catalog of every application and the user's values
-- of every layer, under the transaction's access scope. Sent as SQL that is two statements
-- after the scope's set_config (one more Parse/Bind/Execute each, and the client's work per
-- statement). This function does all of it in one call, in this order:
--
-- 1. set the transaction-local scope settings the row-level-security policies read. A
--    PL/pgSQL function runs its statements one after the other, so the scope is in place
--    before any protected row is read. (Within one plain SQL statement the evaluation order
--    of a set_config next to the query is not defined: never do that.)
-- 2. return one JSON value: [catalogs, values].
--    catalogs: what the store's current-catalogs read returns (_transaction._CURRENT_CATALOGS,
--      keep the two in step): per application, by id, [application_id, version,
--      published_at, published_by, attributes], attributes NULL for the versions in
--      cached_catalogs ('<application>:<version>', the ones the store has parsed already);
--      the whole value is NULL when cached_catalogs is NULL (no catalogs wanted).
--    values: every value that can resolve the profile, from four ranges of the
--      profile_values key: [part, layer, application_id, attribute, value, version,
--      catalog_version, written_by, written_at], where part says which range the row came
--      from and thereby its tenant and user (0: the user's own, no tenant; 1: application
--      defaults; 2: the user's in the tenant; 3: the tenant's defaults), so the two ids are
--      not repeated in every row. NULL when there is none. With resolving_tenant NULL,
--      ranges 2 and 3 match nothing.
--
-- SECURITY INVOKER (the default, spelled out): it runs with the caller's rights and under
-- the caller's row-level security, so it lets the runtime role do nothing it could not do
-- with the two statements it replaces. No SET clause either: a function's SET clause would
-- also undo, at the function's exit, the set_config calls made inside it.
-- VOLATILE: it changes settings. Its one query takes one snapshot, so catalogs and values
-- are read as of the same moment.

CREATE FUNCTION user_engine.profile_inputs(
    scope_name text,
    scope_tenant text,
    cached_catalogs text[],
    resolving_user text,
    resolving_tenant text
) RETURNS json
LANGUAGE plpgsql VOLATILE SECURITY INVOKER
AS $$
BEGIN
    PERFORM set_config('user_engine.scope', scope_name, true),
            set_config('user_engine.tenant_id', scope_tenant, true);
    RETURN json_build_array(
        CASE WHEN cached_catalogs IS NOT NULL THEN (
            SELECT json_agg(json_build_array(c.application_id, c.version, c.published_at,
                       c.published_by,
                       CASE WHEN (c.application_id || ':' || c.version) = ANY(cached_catalogs)
                            THEN NULL ELSE c.attributes END)
                   ORDER BY c.application_id)
            FROM (SELECT DISTINCT ON (application_id) application_id, version, published_at,
                         published_by, attributes
                  FROM user_engine.catalog_versions
                  ORDER BY application_id DESC, version DESC) c
        ) END,
        (SELECT json_agg(json_build_array(v.part, v.layer, v.application_id, v.attribute,
                    v.value, v.version, v.catalog_version, v.written_by, v.written_at))
         FROM (SELECT 0 AS part, p.* FROM user_engine.profile_values p
               WHERE p.user_id = resolving_user AND p.tenant_id IS NULL
               UNION ALL
               SELECT 1, p.* FROM user_engine.profile_values p
               WHERE p.user_id IS NULL AND p.tenant_id IS NULL
               UNION ALL
               SELECT 2, p.* FROM user_engine.profile_values p
               WHERE p.user_id = resolving_user AND p.tenant_id = resolving_tenant
               UNION ALL
               SELECT 3, p.* FROM user_engine.profile_values p
               WHERE p.user_id IS NULL AND p.tenant_id = resolving_tenant) v)
    );
END
$$;

REVOKE ALL ON FUNCTION user_engine.profile_inputs(text, text, text[], text, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION user_engine.profile_inputs(text, text, text[], text, text)
    TO user_engine_runtime;
