-- Portcullis store, PostgreSQL. Run by the owner role (the one that runs migrations); the
-- service connects as `portcullis_service`, which owns nothing and cannot bypass row-level
-- security. Every tenant table has RLS enabled and forced, with one policy that lets a
-- transaction see and write only the rows of the tenant it set with
-- set_config('app.tenant_id', <id>, true).

DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'portcullis_service') THEN
        CREATE ROLE portcullis_service LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE;
    END IF;
END
$$;

CREATE TABLE tenants (
    tenant_id      text PRIMARY KEY CHECK (tenant_id ~ '^[a-zA-Z0-9-]{3,32}$'),
    status         text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'suspended')),
    domain         text,
    data_revision  bigint NOT NULL DEFAULT 1,
    active_bundle  bigint,
    created_at_us  bigint NOT NULL,
    updated_at_us  bigint NOT NULL
);

CREATE TABLE bundles (
    tenant_id      text NOT NULL REFERENCES tenants (tenant_id) ON DELETE CASCADE,
    version        bigint NOT NULL,
    revision       text NOT NULL,
    files          jsonb NOT NULL,
    uploaded_by    text NOT NULL,
    uploaded_at_us bigint NOT NULL,
    PRIMARY KEY (tenant_id, version)
);

CREATE TABLE principals (
    tenant_id      text NOT NULL REFERENCES tenants (tenant_id) ON DELETE CASCADE,
    principal_id   text NOT NULL,
    kind           text NOT NULL DEFAULT 'user',
    attributes     jsonb NOT NULL DEFAULT '{}',
    created_at_us  bigint NOT NULL,
    updated_at_us  bigint NOT NULL,
    PRIMARY KEY (tenant_id, principal_id)
);

CREATE TABLE role_assignments (
    tenant_id      text NOT NULL REFERENCES tenants (tenant_id) ON DELETE CASCADE,
    principal_id   text NOT NULL,
    role           text NOT NULL,
    resource       text NOT NULL DEFAULT '*',
    created_at_us  bigint NOT NULL,
    PRIMARY KEY (tenant_id, principal_id, role, resource)
);

DO $$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['tenants', 'bundles', 'principals', 'role_assignments'] LOOP
        EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', t);
        EXECUTE format('ALTER TABLE %I FORCE ROW LEVEL SECURITY', t);
        EXECUTE format(
            'CREATE POLICY tenant_isolation ON %I USING (tenant_id = NULLIF(current_setting(''app.tenant_id'', true), '''')) '
            'WITH CHECK (tenant_id = NULLIF(current_setting(''app.tenant_id'', true), ''''))', t);
        EXECUTE format('GRANT SELECT, INSERT, UPDATE, DELETE ON %I TO portcullis_service', t);
    END LOOP;
END
$$;

-- The one read across tenants the service needs: which tenants exist and their revisions, so
-- a node can load them and notice changes. It runs with the owner's rights and exposes only
-- these columns; it cannot read or write any tenant's data.
CREATE FUNCTION portcullis_directory()
RETURNS TABLE (tenant_id text, status text, domain text, data_revision bigint)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp
AS $$ SELECT tenant_id, status, domain, data_revision FROM tenants ORDER BY tenant_id $$;

REVOKE ALL ON FUNCTION portcullis_directory() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION portcullis_directory() TO portcullis_service;
