-- Relationship tuples (C3) and their change log. A tuple is identified by object, relation
-- and user; its condition (name and stored context) is data, not identity, as in OpenFGA.
-- `tuple_changes` keeps every write and delete in order, keyed by the data revision of the
-- transaction that made it, so nodes and clients can read changes since a revision.

CREATE TABLE tuples (
    tenant_id         TEXT NOT NULL REFERENCES tenants (tenant_id) ON DELETE CASCADE,
    object_type       TEXT NOT NULL,
    object_id         TEXT NOT NULL,
    relation          TEXT NOT NULL,
    user_key          TEXT NOT NULL,
    condition_name    TEXT NOT NULL DEFAULT '',
    condition_context TEXT,
    revision          INTEGER NOT NULL,
    created_at_us     INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, object_type, object_id, relation, user_key)
);

CREATE INDEX tuples_by_user ON tuples (tenant_id, user_key, relation, object_type);

CREATE TABLE tuple_changes (
    tenant_id         TEXT NOT NULL REFERENCES tenants (tenant_id) ON DELETE CASCADE,
    revision          INTEGER NOT NULL,
    position          INTEGER NOT NULL,
    operation         TEXT NOT NULL CHECK (operation IN ('write', 'delete')),
    object_type       TEXT NOT NULL,
    object_id         TEXT NOT NULL,
    relation          TEXT NOT NULL,
    user_key          TEXT NOT NULL,
    condition_name    TEXT NOT NULL DEFAULT '',
    condition_context TEXT,
    changed_at_us     INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, revision, position)
);
