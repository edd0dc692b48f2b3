-- Temporary access (C9): requests for break-glass access and their approvals (see the
-- PostgreSQL migration of the same name for the life of a request).

CREATE TABLE access_requests (
    tenant_id          TEXT NOT NULL REFERENCES tenants (tenant_id) ON DELETE CASCADE,
    request_id         TEXT NOT NULL,
    requester          TEXT NOT NULL,
    action             TEXT NOT NULL,
    resource           TEXT NOT NULL,
    reason             TEXT NOT NULL,
    not_before_us      INTEGER NOT NULL,
    not_after_us       INTEGER NOT NULL CHECK (not_after_us > not_before_us),
    cert               TEXT,
    networks           TEXT NOT NULL DEFAULT '[]',
    approvals_required INTEGER NOT NULL CHECK (approvals_required IN (1, 2)),
    status             TEXT NOT NULL DEFAULT 'pending'
                       CHECK (status IN ('pending', 'approved', 'rejected', 'revoked', 'expired')),
    closed_by          TEXT,
    closed_at_us       INTEGER,
    closing_note       TEXT,
    created_at_us      INTEGER NOT NULL,
    updated_at_us      INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, request_id)
);

CREATE INDEX access_requests_live ON access_requests (tenant_id, status, not_after_us);

CREATE TABLE access_approvals (
    tenant_id      TEXT NOT NULL,
    request_id     TEXT NOT NULL,
    approver       TEXT NOT NULL,
    comment        TEXT,
    approved_at_us INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, request_id, approver),
    FOREIGN KEY (tenant_id, request_id) REFERENCES access_requests (tenant_id, request_id) ON DELETE CASCADE
);
