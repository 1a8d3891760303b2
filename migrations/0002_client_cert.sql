-- The subject of the verified TLS client certificate a request came with (mTLS listeners).
ALTER TABLE audit_log ADD COLUMN IF NOT EXISTS client_cert text;
