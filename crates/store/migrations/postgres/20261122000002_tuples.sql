-- Relationship tuples (C3) and their change log, isolated like every tenant table. A tuple is
-- identified by object, relation and user; its condition (name and stored context) is data,
-- not identity, as in OpenFGA. `tuple_changes` keeps every write and delete in order, keyed by
-- the data revision of the transaction that made it.

CREATE TABLE tuples (
    tenant_id         text NOT NULL REFERENCES tenants (tenant_id) ON DELETE CASCADE,
    object_type       text NOT NULL,
    object_id         text NOT NULL,
    relation          text NOT NULL,
    user_key          text NOT NULL,
    condition_name    text NOT NULL DEFAULT '',
    condition_context jsonb,
    revision          bigint NOT NULL,
    created_at_us     bigint NOT NULL,
    PRIMARY KEY (tenant_id, object_type, object_id, relation, user_key)
);

CREATE INDEX tuples_by_user ON tuples (tenant_id, user_key, relation, object_type);

CREATE TABLE tuple_changes (
    tenant_id         text NOT NULL REFERENCES tenants (tenant_id) ON DELETE CASCADE,
    revision          bigint NOT NULL,
    position          integer NOT NULL,
    operation         text NOT NULL CHECK (operation IN ('write', 'delete')),
    object_type       text NOT NULL,
    object_id         text NOT NULL,
    relation          text NOT NULL,
    user_key          text NOT NULL,
    condition_name    text NOT NULL DEFAULT '',
    condition_context jsonb,
    changed_at_us     bigint NOT NULL,
    PRIMARY KEY (tenant_id, revision, position)
);

DO $$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['tuples', 'tuple_changes'] LOOP
        EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', t);
        EXECUTE format('ALTER TABLE %I FORCE ROW LEVEL SECURITY', t);
        EXECUTE format(
            'CREATE POLICY tenant_isolation ON %I USING (tenant_id = NULLIF(current_setting(''app.tenant_id'', true), '''')) '
            'WITH CHECK (tenant_id = NULLIF(current_setting(''app.tenant_id'', true), ''''))', t);
    END LOOP;
END
$$;

GRANT SELECT, INSERT, UPDATE, DELETE ON tuples TO portcullis_service;
-- The change log is history: the service appends to it and reads it, and deletes it only
-- together with its tenant; it never updates it.
GRANT SELECT, INSERT, DELETE ON tuple_changes TO portcullis_service;
