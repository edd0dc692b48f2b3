-- The audit trail (C6) when it is kept in the store. Each row is one line of a tenant's audit
-- stream (a record or a signed checkpoint) in its canonical encoding, numbered by `position`
-- in write order; the other columns are copies for lookups. Rows are only ever inserted. There
-- is no reference to `tenants`: the trail outlives a deleted tenant.

CREATE TABLE audit_log (
    tenant_id  TEXT NOT NULL,
    position   INTEGER NOT NULL,
    seq        INTEGER NOT NULL,
    kind       TEXT NOT NULL,
    ts_us      INTEGER NOT NULL,
    actor      TEXT NOT NULL DEFAULT '',
    action     TEXT NOT NULL DEFAULT '',
    outcome    TEXT NOT NULL DEFAULT '',
    trace_id   TEXT NOT NULL DEFAULT '',
    line       TEXT NOT NULL,
    PRIMARY KEY (tenant_id, position)
);

CREATE INDEX audit_log_by_time ON audit_log (tenant_id, ts_us);
CREATE INDEX audit_log_by_trace ON audit_log (tenant_id, trace_id);

-- Append-only in SQLite too, as far as SQLite can say it.
CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
BEGIN
    SELECT RAISE(ABORT, 'the audit log is append-only');
END;
CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
BEGIN
    SELECT RAISE(ABORT, 'the audit log is append-only');
END;
