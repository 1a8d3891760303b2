-- Which of the gateway's credentials a request's upstream got (machine_token, token_exchange,
-- headers), never the credential itself.
ALTER TABLE audit_log ADD COLUMN IF NOT EXISTS upstream_credential text;
