-- Portcullis store, SQLite (the embedded default). SQLite has no row-level security: tenant
-- isolation rests on every statement filtering by tenant_id, which the store guarantees by
-- construction and the statement audit checks in tests.

CREATE TABLE tenants (
    tenant_id      TEXT PRIMARY KEY NOT NULL,
    status         TEXT NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'suspended')),
    domain         TEXT,
    data_revision  INTEGER NOT NULL DEFAULT 1,
    active_bundle  INTEGER,
    created_at_us  INTEGER NOT NULL,
    updated_at_us  INTEGER NOT NULL
);

CREATE TABLE bundles (
    tenant_id      TEXT NOT NULL REFERENCES tenants (tenant_id) ON DELETE CASCADE,
    version        INTEGER NOT NULL,
    revision       TEXT NOT NULL,
    files          TEXT NOT NULL,
    uploaded_by    TEXT NOT NULL,
    uploaded_at_us INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, version)
);

CREATE TABLE principals (
    tenant_id      TEXT NOT NULL REFERENCES tenants (tenant_id) ON DELETE CASCADE,
    principal_id   TEXT NOT NULL,
    kind           TEXT NOT NULL DEFAULT 'user',
    attributes     TEXT NOT NULL DEFAULT '{}',
    created_at_us  INTEGER NOT NULL,
    updated_at_us  INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, principal_id)
);

CREATE TABLE role_assignments (
    tenant_id      TEXT NOT NULL REFERENCES tenants (tenant_id) ON DELETE CASCADE,
    principal_id   TEXT NOT NULL,
    role           TEXT NOT NULL,
    resource       TEXT NOT NULL DEFAULT '*',
    created_at_us  INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, principal_id, role, resource)
);
