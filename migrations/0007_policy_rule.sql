-- The grant with a condition that decided a request (allowed or refused it): its rule in the
-- policy file and its condition, never a value of the request.
ALTER TABLE audit_log ADD COLUMN IF NOT EXISTS policy_rule text;
