-- One row per requested run; (resource_uid, generation, run_id) makes every write idempotent.
CREATE TABLE requests (
    id            BIGSERIAL PRIMARY KEY,
    kind          TEXT        NOT NULL,
    namespace     TEXT        NOT NULL,
    name          TEXT        NOT NULL,
    resource_uid  TEXT        NOT NULL,
    generation    BIGINT      NOT NULL,
    run_id        TEXT        NOT NULL,
    trigger       TEXT        NOT NULL DEFAULT '',
    spec          JSONB       NOT NULL DEFAULT '{}',
    requested_at  TIMESTAMPTZ NOT NULL,
    recorded_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    UNIQUE (resource_uid, generation, run_id)
);
CREATE INDEX requests_resource ON requests (namespace, name, requested_at DESC);

-- The analysis itself: outcome, timings and what could not be read.
CREATE TABLE analyses (
    request_id        BIGINT PRIMARY KEY REFERENCES requests (id) ON DELETE CASCADE,
    target_namespace  TEXT        NOT NULL,
    phase             TEXT        NOT NULL,
    started_at        TIMESTAMPTZ,
    completed_at      TIMESTAMPTZ,
    duration_seconds  DOUBLE PRECISION,
    gather_seconds    DOUBLE PRECISION,
    detect_seconds    DOUBLE PRECISION,
    critical          INTEGER     NOT NULL DEFAULT 0,
    warning           INTEGER     NOT NULL DEFAULT 0,
    info              INTEGER     NOT NULL DEFAULT 0,
    summary           TEXT        NOT NULL DEFAULT '',
    missing           JSONB       NOT NULL DEFAULT '[]',
    metadata          JSONB       NOT NULL DEFAULT '{}'
);

-- What the run concluded: every finding (not only those kept in status) and the explanation.
CREATE TABLE results (
    request_id      BIGINT PRIMARY KEY REFERENCES requests (id) ON DELETE CASCADE,
    findings        JSONB       NOT NULL DEFAULT '[]',
    explanation     JSONB,
    recommendations JSONB       NOT NULL DEFAULT '[]',
    confidence      TEXT,
    model           TEXT,
    prompt_version  TEXT,
    cached          BOOLEAN     NOT NULL DEFAULT FALSE
);

-- Findings, one row each, for questions such as "critical findings of deployment X over 30 days".
CREATE TABLE findings (
    id            BIGSERIAL PRIMARY KEY,
    request_id    BIGINT      NOT NULL REFERENCES requests (id) ON DELETE CASCADE,
    finding_id    TEXT        NOT NULL,
    detector      TEXT        NOT NULL,
    severity      TEXT        NOT NULL CHECK (severity IN ('critical', 'warning', 'info')),
    kind          TEXT        NOT NULL,
    namespace     TEXT,
    name          TEXT        NOT NULL,
    owner_kind    TEXT,
    owner_name    TEXT,
    title         TEXT        NOT NULL,
    affected      INTEGER     NOT NULL DEFAULT 1,
    evidence      JSONB       NOT NULL DEFAULT '[]',
    observed_at   TIMESTAMPTZ NOT NULL,
    UNIQUE (request_id, finding_id)
);
CREATE INDEX findings_resource ON findings (namespace, kind, name, observed_at DESC);
CREATE INDEX findings_owner ON findings (namespace, owner_kind, owner_name, observed_at DESC);
CREATE INDEX findings_severity ON findings (severity, observed_at DESC);
CREATE INDEX findings_stable_id ON findings (finding_id, observed_at DESC);
