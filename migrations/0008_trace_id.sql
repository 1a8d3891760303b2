-- The request's OpenTelemetry trace (`tracing:`): the row of a call and its spans are found by
-- the same id.
ALTER TABLE audit_log ADD COLUMN IF NOT EXISTS trace_id text;
CREATE INDEX IF NOT EXISTS audit_log_trace_id ON audit_log (trace_id) WHERE trace_id IS NOT NULL;
