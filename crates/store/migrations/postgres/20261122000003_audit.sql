-- The audit trail (C6) when it is kept in the store. Each row is one line of a tenant's audit
-- stream (a record or a signed checkpoint) in its canonical encoding, numbered by `position`
-- in write order; the other columns are copies for lookups. The service role may insert and
-- read, never update or delete; row-level security isolates tenants as everywhere else. There
-- is no reference to `tenants`: the trail outlives a deleted tenant.

CREATE TABLE audit_log (
    tenant_id  text NOT NULL CHECK (tenant_id ~ '^[a-zA-Z0-9-]{3,32}$'),
    position   bigint NOT NULL,
    seq        bigint NOT NULL,
    kind       text NOT NULL,
    ts_us      bigint NOT NULL,
    actor      text NOT NULL DEFAULT '',
    action     text NOT NULL DEFAULT '',
    outcome    text NOT NULL DEFAULT '',
    trace_id   text NOT NULL DEFAULT '',
    line       text NOT NULL,
    PRIMARY KEY (tenant_id, position)
);

CREATE INDEX audit_log_by_time ON audit_log (tenant_id, ts_us);
CREATE INDEX audit_log_by_trace ON audit_log (tenant_id, trace_id);

ALTER TABLE audit_log ENABLE ROW LEVEL SECURITY;
ALTER TABLE audit_log FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON audit_log
    USING (tenant_id = NULLIF(current_setting('app.tenant_id', true), ''))
    WITH CHECK (tenant_id = NULLIF(current_setting('app.tenant_id', true), ''));
GRANT SELECT, INSERT ON audit_log TO portcullis_service;
