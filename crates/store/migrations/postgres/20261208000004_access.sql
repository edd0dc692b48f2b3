-- Temporary access (C9): requests for break-glass access and their approvals. A request is
-- pending until enough different people approve it (approved) or one rejects it (rejected);
-- an approved request can be revoked; a request whose window has ended is expired. The
-- primary key of access_approvals is what makes one person's second approval of a request
-- impossible, on every node at once.

CREATE TABLE access_requests (
    tenant_id          text NOT NULL REFERENCES tenants (tenant_id) ON DELETE CASCADE,
    request_id         text NOT NULL,
    requester          text NOT NULL,
    action             text NOT NULL,
    resource           text NOT NULL,
    reason             text NOT NULL,
    not_before_us      bigint NOT NULL,
    not_after_us       bigint NOT NULL CHECK (not_after_us > not_before_us),
    cert               text,
    networks           jsonb NOT NULL DEFAULT '[]',
    approvals_required bigint NOT NULL CHECK (approvals_required IN (1, 2)),
    status             text NOT NULL DEFAULT 'pending'
                       CHECK (status IN ('pending', 'approved', 'rejected', 'revoked', 'expired')),
    closed_by          text,
    closed_at_us       bigint,
    closing_note       text,
    created_at_us      bigint NOT NULL,
    updated_at_us      bigint NOT NULL,
    PRIMARY KEY (tenant_id, request_id)
);

CREATE INDEX access_requests_live ON access_requests (tenant_id, status, not_after_us);

CREATE TABLE access_approvals (
    tenant_id      text NOT NULL,
    request_id     text NOT NULL,
    approver       text NOT NULL,
    comment        text,
    approved_at_us bigint NOT NULL,
    PRIMARY KEY (tenant_id, request_id, approver),
    FOREIGN KEY (tenant_id, request_id) REFERENCES access_requests (tenant_id, request_id) ON DELETE CASCADE
);

DO $$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['access_requests', 'access_approvals'] LOOP
        EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', t);
        EXECUTE format('ALTER TABLE %I FORCE ROW LEVEL SECURITY', t);
        EXECUTE format(
            'CREATE POLICY tenant_isolation ON %I USING (tenant_id = NULLIF(current_setting(''app.tenant_id'', true), '''')) '
            'WITH CHECK (tenant_id = NULLIF(current_setting(''app.tenant_id'', true), ''''))', t);
        EXECUTE format('GRANT SELECT, INSERT, UPDATE, DELETE ON %I TO portcullis_service', t);
    END LOOP;
END
$$;
