-- user-engine PostgreSQL schema, version 3: the shared profile layers, kept ready with a
-- generation each, and user_engine.profile_snapshot, which sends a store only what its
-- copies lack.
--
-- Applied by the owner (migration) role, like 0001. Never edit this file once released.
--
-- A profile resolution reads the current catalogs, the application defaults, the tenant's
-- defaults and the user's own values. The first three are shared by every user (of a
-- tenant) and change rarely, yet reading, encoding, sending and parsing them again for every
-- resolution was most of its cost. Each of them is now one row of profile_layers, written
-- by the triggers below in the transaction that changes it:
--
--   key 'catalogs'       the current catalog of every application      tenant_id NULL
--   key 'application'    the application defaults                      tenant_id NULL
--   key 'tenant:<id>'    that tenant's defaults                        tenant_id <id>
--
-- with the layer's content as one JSON value, in the form profile_snapshot returns it, and a
-- *generation* drawn from one sequence by every change. A store that holds a copy read
-- with generation g gets the content again only when the generation is no longer g:
-- - numbers are never reused (a sequence does not roll back), so an equal generation means
--   exactly the committed content the copy was read with;
-- - writers of one layer update its one row: the second waits for the first's commit on
--   the row lock, and only then reads the layer to rebuild the content (a statement of its
--   own, with a snapshot taken after the wait), so it sees the first writer's rows;
-- - a layer's row is scoped like the rows it stands for (row-level security on tenant_id):
--   a reader that may not see a tenant's defaults does not see that row either; and a layer
--   with no row has no rows (the triggers add the row with the layer's first row).
-- A process that keeps copies assumes the database does not go back in time under it (a
-- restore from backup): restart the application after one, as for the catalog cache.

CREATE SEQUENCE user_engine.profile_generation;
GRANT USAGE ON SEQUENCE user_engine.profile_generation TO user_engine_runtime;

CREATE TABLE user_engine.profile_layers (
    key         text COLLATE "C" PRIMARY KEY,
    tenant_id   text COLLATE "C",
    generation  bigint NOT NULL,
    content     json NOT NULL,
    CONSTRAINT profile_layers_key CHECK (
        CASE WHEN tenant_id IS NULL THEN key IN ('catalogs', 'application')
             ELSE key = 'tenant:' || tenant_id END)
);
ALTER TABLE user_engine.profile_layers ENABLE ROW LEVEL SECURITY;
ALTER TABLE user_engine.profile_layers FORCE ROW LEVEL SECURITY;
CREATE POLICY profile_layers_scope ON user_engine.profile_layers
    USING (user_engine.scope_allows(tenant_id)) WITH CHECK (user_engine.scope_allows(tenant_id));
GRANT SELECT, INSERT, UPDATE ON user_engine.profile_layers TO user_engine_runtime;

-- Timestamps as ISO 8601 in UTC whatever the writer's session time zone: every reader then
-- parses the same instant in the same zone.
CREATE FUNCTION user_engine.utc_text(moment timestamptz) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$ SELECT to_char(moment AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"+00:00"') $$;

-- The content of a layer, read now. Catalogs: per application, by id, [application_id,
-- version, published_at, published_by, attributes]. Defaults: [part, layer, application_id,
-- attribute, value, version, catalog_version, written_by, written_at], part 1 for an
-- application default and 3 for a tenant default (as in 0002's function).
CREATE FUNCTION user_engine.profile_layer_content(layer_key text, layer_tenant text)
RETURNS json
LANGUAGE sql STABLE SECURITY INVOKER
AS $$
    SELECT CASE layer_key
        WHEN 'catalogs' THEN coalesce((
            SELECT json_agg(json_build_array(c.application_id, c.version,
                       user_engine.utc_text(c.published_at), c.published_by, c.attributes)
                   ORDER BY c.application_id)
            FROM (SELECT DISTINCT ON (application_id) application_id, version, published_at,
                         published_by, attributes
                  FROM user_engine.catalog_versions
                  ORDER BY application_id DESC, version DESC) c), '[]'::json)
        ELSE coalesce((
            SELECT json_agg(json_build_array(CASE WHEN layer_tenant IS NULL THEN 1 ELSE 3 END,
                       p.layer, p.application_id, p.attribute, p.value, p.version,
                       p.catalog_version, p.written_by, user_engine.utc_text(p.written_at))
                   ORDER BY p.application_id, p.attribute, p.layer)
            FROM user_engine.profile_values p
            WHERE p.user_id IS NULL AND p.tenant_id IS NOT DISTINCT FROM layer_tenant), '[]'::json)
    END
$$;

-- A change of one layer: a new generation (taking the row's lock, waiting for a concurrent
-- writer's commit), then the content rebuilt by a later statement, which sees that commit.
-- Runs with the writer's rights and scope, which already passed the same policy for the
-- row it wrote.
CREATE FUNCTION user_engine.profile_layer_changed(layer_key text, layer_tenant text)
RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY INVOKER
AS $$
BEGIN
    INSERT INTO user_engine.profile_layers AS l (key, tenant_id, generation, content)
    VALUES (layer_key, layer_tenant, nextval('user_engine.profile_generation'), '[]')
    ON CONFLICT (key) DO UPDATE SET generation = EXCLUDED.generation;
    UPDATE user_engine.profile_layers
       SET content = user_engine.profile_layer_content(layer_key, layer_tenant)
     WHERE key = layer_key;
END
$$;
REVOKE ALL ON FUNCTION user_engine.profile_layer_changed(text, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION user_engine.profile_layer_changed(text, text) TO user_engine_runtime;

-- Rows with no user are the defaults (application defaults: no tenant either). The WHEN
-- clauses keep the users' own values, the hot write path, free of any extra work.
CREATE FUNCTION user_engine.profile_defaults_written() RETURNS trigger
LANGUAGE plpgsql VOLATILE SECURITY INVOKER
AS $$
BEGIN
    IF TG_OP <> 'INSERT' THEN
        IF OLD.user_id IS NULL THEN
            PERFORM user_engine.profile_layer_changed(
                coalesce('tenant:' || OLD.tenant_id, 'application'), OLD.tenant_id);
        END IF;
    END IF;
    IF TG_OP <> 'DELETE' THEN
        IF NEW.user_id IS NULL THEN
            PERFORM user_engine.profile_layer_changed(
                coalesce('tenant:' || NEW.tenant_id, 'application'), NEW.tenant_id);
        END IF;
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER profile_defaults_inserted AFTER INSERT ON user_engine.profile_values
    FOR EACH ROW WHEN (NEW.user_id IS NULL)
    EXECUTE FUNCTION user_engine.profile_defaults_written();
CREATE TRIGGER profile_defaults_updated AFTER UPDATE ON user_engine.profile_values
    FOR EACH ROW WHEN (OLD.user_id IS NULL OR NEW.user_id IS NULL)
    EXECUTE FUNCTION user_engine.profile_defaults_written();
CREATE TRIGGER profile_defaults_deleted AFTER DELETE ON user_engine.profile_values
    FOR EACH ROW WHEN (OLD.user_id IS NULL)
    EXECUTE FUNCTION user_engine.profile_defaults_written();

-- Catalogs: the runtime role only inserts versions (0001); any change is covered all the
-- same.
CREATE FUNCTION user_engine.catalogs_written() RETURNS trigger
LANGUAGE plpgsql VOLATILE SECURITY INVOKER
AS $$
BEGIN
    PERFORM user_engine.profile_layer_changed('catalogs', NULL);
    RETURN NULL;
END
$$;

CREATE TRIGGER catalogs_written AFTER INSERT OR UPDATE OR DELETE
    ON user_engine.catalog_versions
    FOR EACH STATEMENT EXECUTE FUNCTION user_engine.catalogs_written();

-- TRUNCATE (an operator's, never the runtime role's) empties every layer it touches. Whoever
-- may truncate may also set the platform scope; the caller's scope is put back afterwards.
CREATE FUNCTION user_engine.profile_layers_truncated() RETURNS trigger
LANGUAGE plpgsql VOLATILE SECURITY INVOKER
AS $$
DECLARE
    caller_scope text := current_setting('user_engine.scope', true);
BEGIN
    PERFORM set_config('user_engine.scope', 'platform', true);
    IF TG_TABLE_NAME = 'catalog_versions' THEN
        PERFORM user_engine.profile_layer_changed('catalogs', NULL);
    ELSE
        PERFORM user_engine.profile_layer_changed(l.key, l.tenant_id)
        FROM user_engine.profile_layers l WHERE l.key <> 'catalogs';
    END IF;
    PERFORM set_config('user_engine.scope', coalesce(caller_scope, ''), true);
    RETURN NULL;
END
$$;

CREATE TRIGGER profile_values_truncated AFTER TRUNCATE ON user_engine.profile_values
    FOR EACH STATEMENT EXECUTE FUNCTION user_engine.profile_layers_truncated();
CREATE TRIGGER catalog_versions_truncated AFTER TRUNCATE ON user_engine.catalog_versions
    FOR EACH STATEMENT EXECUTE FUNCTION user_engine.profile_layers_truncated();

-- The layers of what exists already, under the platform scope, set for the rest of this
-- migration's own transaction.
SELECT set_config('user_engine.scope', 'platform', true);
SELECT user_engine.profile_layer_changed('catalogs', NULL);
SELECT user_engine.profile_layer_changed('application', NULL);
SELECT user_engine.profile_layer_changed('tenant:' || t.tenant_id, t.tenant_id)
FROM (SELECT DISTINCT tenant_id FROM user_engine.profile_values
      WHERE user_id IS NULL AND tenant_id IS NOT NULL) t;

-- profile_snapshot replaces profile_inputs (0002): one statement after the scope, as there
-- (see 0002 for why a function), but it returns a shared layer's content only when the
-- caller's copy of it is not current. Arguments: the scope; the user and tenant (NULL: no
-- tenant) to resolve; with_catalogs: whether the catalogs are wanted; known_catalogs,
-- known_application, known_tenant: the generations of the caller's copies (NULL: no copy).
--
-- Returns one JSON value: [layers, the user's values]. layers: [key, generation, content]
-- of each wanted layer that has a row visible in this scope ('catalogs', 'application',
-- 'tenant:<id>'), content NULL when the generation is the known one; a wanted layer not
-- listed has no rows here. The user's values as in 0002, [part, ...] with part 0 (the
-- user's own) or 2 (the user's in the tenant); NULL when there is none.
DROP FUNCTION user_engine.profile_inputs(text, text, text[], text, text);

CREATE FUNCTION user_engine.profile_snapshot(
    scope_name text,
    scope_tenant text,
    resolving_user text,
    resolving_tenant text,
    with_catalogs boolean,
    known_catalogs bigint,
    known_application bigint,
    known_tenant bigint
) RETURNS json
LANGUAGE plpgsql VOLATILE SECURITY INVOKER
AS $$
BEGIN
    PERFORM set_config('user_engine.scope', scope_name, true),
            set_config('user_engine.tenant_id', scope_tenant, true);
    RETURN json_build_array(
        (SELECT json_agg(json_build_array(l.key, l.generation,
                    CASE WHEN l.generation = CASE l.key WHEN 'catalogs' THEN known_catalogs
                                                        WHEN 'application' THEN known_application
                                                        ELSE known_tenant END
                         THEN NULL ELSE l.content END))
         FROM user_engine.profile_layers l
         WHERE l.key = ANY(ARRAY[CASE WHEN with_catalogs THEN 'catalogs' END, 'application',
                                 'tenant:' || resolving_tenant])),
        (SELECT json_agg(json_build_array(CASE WHEN p.tenant_id IS NULL THEN 0 ELSE 2 END,
                    p.layer, p.application_id, p.attribute, p.value, p.version,
                    p.catalog_version, p.written_by, p.written_at))
         FROM user_engine.profile_values p
         WHERE p.user_id = resolving_user
           AND (p.tenant_id IS NULL OR p.tenant_id = resolving_tenant)));
END
$$;

REVOKE ALL ON FUNCTION user_engine.profile_snapshot(
    text, text, text, text, boolean, bigint, bigint, bigint) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION user_engine.profile_snapshot(
    text, text, text, text, boolean, bigint, bigint, bigint) TO user_engine_runtime;
