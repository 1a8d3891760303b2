-- Users' own logins at upstreams (auth: per_user_oauth): one row per (user, tenant, upstream).
-- `sealed` holds the access and refresh tokens and the client they belong to, encrypted with
-- AES-256-GCM under MCP_GATEWAY_SECRETS_KEY and bound to the row's user, tenant and upstream;
-- the other columns say when, never what. Times are Unix seconds.
CREATE TABLE IF NOT EXISTS upstream_logins (
    user_id     text    NOT NULL,
    tenant      text    NOT NULL DEFAULT '',
    upstream    text    NOT NULL,
    sealed      text    NOT NULL,
    refreshable boolean NOT NULL,
    expires_at  bigint  NOT NULL,
    created_at  bigint  NOT NULL,
    updated_at  bigint  NOT NULL,
    PRIMARY KEY (user_id, tenant, upstream)
);
