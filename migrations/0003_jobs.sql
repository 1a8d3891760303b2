-- Jobs: tool calls the gateway runs in the background (MCP tasks and REST jobs), shared by every
-- instance. `outcome` holds the call's JSON-RPC result or error, sealed with the audit key.
CREATE TABLE IF NOT EXISTS jobs (
    id             text PRIMARY KEY,
    user_id        text NOT NULL,
    tenant         text NOT NULL DEFAULT '',
    scope          text NOT NULL,
    tool           text NOT NULL,
    kind           text NOT NULL,
    status         text NOT NULL,
    status_message text,
    created_at     timestamptz NOT NULL,
    updated_at     timestamptz NOT NULL,
    expires_at     timestamptz NOT NULL,
    ttl_ms         bigint NOT NULL,
    lease_owner    text,
    lease_until    timestamptz,
    outcome        text
);

CREATE INDEX IF NOT EXISTS jobs_owner ON jobs (user_id, tenant, created_at);
CREATE INDEX IF NOT EXISTS jobs_unfinished ON jobs (lease_until) WHERE status IN ('queued', 'working');
CREATE INDEX IF NOT EXISTS jobs_expires ON jobs (expires_at);

-- The job an audit row belongs to: its submission and its completion carry the same id.
ALTER TABLE audit_log ADD COLUMN IF NOT EXISTS job_id text;
CREATE INDEX IF NOT EXISTS audit_log_job ON audit_log (job_id) WHERE job_id IS NOT NULL;
