-- `infragenius serve` (issue 16): who may call it, with which keys, and what they called.

-- An owner of API keys and the rate-limit tier their keys share.
CREATE TABLE users (
    owner       TEXT        PRIMARY KEY,
    tier        TEXT        NOT NULL DEFAULT 'free',
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- API keys: only a SHA-256 of the secret part is kept; key_id is the public part the key starts with.
CREATE TABLE api_keys (
    key_id      TEXT        PRIMARY KEY,
    owner       TEXT        NOT NULL REFERENCES users (owner) ON DELETE CASCADE,
    hash        BYTEA       NOT NULL,
    scopes      TEXT[]      NOT NULL,
    namespaces  TEXT[]      NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    expires_at  TIMESTAMPTZ,
    revoked_at  TIMESTAMPTZ,
    CHECK (scopes <@ ARRAY['read', 'run']::TEXT[])
);
CREATE INDEX api_keys_owner ON api_keys (owner);

-- One row per call to the server (the audit trail). `requests` already holds the operator's runs,
-- hence the name. Argument values are never stored: only the operation and its namespace.
CREATE TABLE api_requests (
    id          BIGSERIAL   PRIMARY KEY,
    at          TIMESTAMPTZ NOT NULL,
    principal   TEXT        NOT NULL,
    auth        TEXT        NOT NULL,
    face        TEXT        NOT NULL,
    operation   TEXT        NOT NULL,
    namespace   TEXT,
    outcome     TEXT        NOT NULL,
    latency_ms  DOUBLE PRECISION NOT NULL,
    bytes       INTEGER     NOT NULL DEFAULT 0
);
CREATE INDEX api_requests_at ON api_requests (at);
CREATE INDEX api_requests_principal ON api_requests (principal, at DESC);
