-- Notifications, written in the same transaction as the run that caused them (so a run is recorded with
-- its notifications or not at all), and drained by the operator's dispatcher: at most once per
-- (run, sink, message) by construction, retried with backoff while the sink fails.
CREATE TABLE notification_outbox (
    id              BIGSERIAL PRIMARY KEY,
    request_id      BIGINT      NOT NULL REFERENCES requests (id) ON DELETE CASCADE,
    resource_uid    TEXT        NOT NULL,
    namespace       TEXT        NOT NULL,
    analysis        TEXT        NOT NULL,
    sink            TEXT        NOT NULL,
    sink_config     JSONB       NOT NULL,
    message_key     TEXT        NOT NULL,
    message         JSONB       NOT NULL,
    state           TEXT        NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'sent', 'failed', 'suppressed')),
    attempts        INTEGER     NOT NULL DEFAULT 0,
    next_attempt_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    lease_until     TIMESTAMPTZ,
    last_status     INTEGER,
    last_error      TEXT,
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    sent_at         TIMESTAMPTZ,
    UNIQUE (request_id, sink, message_key)
);
CREATE INDEX notification_outbox_due ON notification_outbox (next_attempt_at) WHERE state = 'pending';
CREATE INDEX notification_outbox_resource ON notification_outbox (resource_uid, sink, state);
