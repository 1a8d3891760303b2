-- The tool registry: what each scope's tools are, as their upstreams define them, shared by every
-- instance. Definitions are stored once by their SHA-256 (of the canonical JSON, RFC 8785);
-- `tool_registry` holds one row per scope/tool (never deleted: a tool no longer configured or
-- offered is `active = false`); `tool_history` keeps every event with its time.
CREATE TABLE IF NOT EXISTS tool_definitions (
    sha256      text PRIMARY KEY,
    definition  jsonb NOT NULL,
    first_seen  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS tool_registry (
    scope         text NOT NULL,
    tool          text NOT NULL,
    active        boolean NOT NULL DEFAULT true,
    current_sha   text,
    approved_sha  text,
    approved_by   text,
    approved_at   timestamptz,
    first_seen    timestamptz NOT NULL DEFAULT now(),
    last_seen     timestamptz NOT NULL DEFAULT now(),
    changed_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (scope, tool)
);

CREATE TABLE IF NOT EXISTS tool_history (
    id        bigserial PRIMARY KEY,
    scope     text NOT NULL,
    tool      text NOT NULL,
    at        timestamptz NOT NULL DEFAULT now(),
    event     text NOT NULL,
    sha256    text,
    actor     text NOT NULL
);

CREATE INDEX IF NOT EXISTS tool_history_tool ON tool_history (scope, tool, id);
