-- What decided a request beyond its grant: the grant with a condition that allowed or refused it
-- (its rule in the policy file and its condition), and the guards' hits (detector, direction,
-- action, count). Never a value of the request or of its result.
ALTER TABLE audit_log ADD COLUMN IF NOT EXISTS policy_rule text;
ALTER TABLE audit_log ADD COLUMN IF NOT EXISTS guard_hits text;
