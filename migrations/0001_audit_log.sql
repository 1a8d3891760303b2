-- The audit trail: one row per JSON-RPC request on a scoped endpoint, refusals included.
CREATE TABLE IF NOT EXISTS audit_log (
    id                  bigserial PRIMARY KEY,
    time                timestamptz NOT NULL,
    request_id          text NOT NULL UNIQUE,
    instance            text NOT NULL,
    user_id             text,
    tenant              text,
    roles               text[] NOT NULL DEFAULT '{}',
    scope               text,
    method              text,
    tool                text,
    jsonrpc_id          text,
    outcome             text NOT NULL,
    reason              text,
    rpc_error_code      integer,
    http_status         integer NOT NULL,
    upstream            text,
    latency_ms          double precision NOT NULL,
    upstream_latency_ms double precision,
    request_bytes       bigint NOT NULL,
    response_bytes      bigint NOT NULL,
    client_addr         text,
    session_hash        text,
    arguments_mode      text NOT NULL DEFAULT 'none',
    arguments           text
);

CREATE INDEX IF NOT EXISTS audit_log_user_time ON audit_log (user_id, time);
CREATE INDEX IF NOT EXISTS audit_log_scope_tool_time ON audit_log (scope, tool, time);
CREATE INDEX IF NOT EXISTS audit_log_time ON audit_log (time);
