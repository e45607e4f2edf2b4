-- Findings followed across the runs of one Analysis: each finding row carries its lifecycle, and every
-- state change is a row of its own (trends: open findings over time, mean time to resolve, recurrences).
ALTER TABLE findings
    ADD COLUMN state       TEXT,
    ADD COLUMN first_seen  TIMESTAMPTZ,
    ADD COLUMN occurrences INTEGER,
    ADD COLUMN silenced    BOOLEAN NOT NULL DEFAULT FALSE;

CREATE TABLE finding_transitions (
    id            BIGSERIAL PRIMARY KEY,
    request_id    BIGINT      NOT NULL REFERENCES requests (id) ON DELETE CASCADE,
    resource_uid  TEXT        NOT NULL,
    finding_id    TEXT        NOT NULL,
    from_state    TEXT,
    to_state      TEXT        NOT NULL CHECK (to_state IN ('New', 'Reopened', 'Flapping', 'Resolved')),
    detector      TEXT        NOT NULL,
    severity      TEXT        NOT NULL CHECK (severity IN ('critical', 'warning', 'info')),
    resource      TEXT        NOT NULL,
    title         TEXT        NOT NULL,
    first_seen    TIMESTAMPTZ,
    silenced      BOOLEAN     NOT NULL DEFAULT FALSE,
    at            TIMESTAMPTZ NOT NULL,
    UNIQUE (request_id, finding_id)
);
CREATE INDEX finding_transitions_finding ON finding_transitions (resource_uid, finding_id, at DESC);
CREATE INDEX finding_transitions_state ON finding_transitions (to_state, at DESC);
