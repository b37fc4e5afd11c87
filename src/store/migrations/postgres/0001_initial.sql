-- The PostgreSQL store: the same tables as the SQLite store, append-only by triggers.
-- Dates are 'YYYY-MM-DD' text and times Unix milliseconds, as in SQLite, so that both stores
-- hold the same values and `focalgate store copy` moves them unchanged.

CREATE TABLE submissions (
    seq               BIGSERIAL PRIMARY KEY,          -- arrival order (allocated under the log lock)
    id                TEXT    NOT NULL UNIQUE,        -- REF_AREA.DATAFLOW.TIME_PERIOD.rREVISION
    member            TEXT    NOT NULL,
    dataflow          TEXT    NOT NULL,
    ref_area          TEXT    NOT NULL,
    freq              TEXT    NOT NULL,
    time_period       TEXT    NOT NULL,
    period_start      TEXT    NOT NULL,
    period_end        TEXT    NOT NULL,
    revision          INTEGER NOT NULL CHECK (revision >= 1),
    is_current        BOOLEAN NOT NULL,
    received_at       BIGINT  NOT NULL,
    payload_digest    BYTEA   NOT NULL UNIQUE,
    envelope_digest   BYTEA   NOT NULL,
    envelope          BYTEA   NOT NULL,
    signing_cert      BYTEA   NOT NULL,
    receipt           BYTEA   NOT NULL,
    observation_count INTEGER NOT NULL,
    log_index         BIGINT,
    UNIQUE (ref_area, dataflow, time_period, revision)
);
CREATE UNIQUE INDEX submissions_one_current ON submissions (ref_area, dataflow, time_period) WHERE is_current;
CREATE INDEX submissions_by_member ON submissions (member, seq);
CREATE UNIQUE INDEX submissions_by_log_index ON submissions (log_index) WHERE log_index IS NOT NULL;

CREATE TABLE observations (
    submission_seq   BIGINT  NOT NULL REFERENCES submissions (seq),
    idx              INTEGER NOT NULL,
    drug             TEXT    NOT NULL,
    transport_mode   TEXT,
    origin_area      TEXT,
    departure_area   TEXT,
    transit_area     TEXT,
    destination_area TEXT,
    unit_measure     TEXT,
    n_seizures       BIGINT,
    quantity         BIGINT,                          -- millionths of unit_measure
    obs_status       TEXT    NOT NULL,
    conf_status      TEXT    NOT NULL,
    embargo_time     BIGINT,
    comment          TEXT,
    PRIMARY KEY (submission_seq, idx)
);

CREATE TABLE log_entries (
    idx       BIGINT PRIMARY KEY,
    entry     BYTEA  NOT NULL,
    leaf_hash BYTEA  NOT NULL
);
CREATE INDEX log_entries_by_leaf_hash ON log_entries (leaf_hash);

CREATE TABLE log_nodes (
    level INTEGER NOT NULL,
    idx   BIGINT  NOT NULL,
    hash  BYTEA   NOT NULL,
    PRIMARY KEY (level, idx)
);

CREATE TABLE checkpoints (
    size      BIGINT PRIMARY KEY,
    note      TEXT   NOT NULL,
    signed_at BIGINT NOT NULL
);
CREATE INDEX checkpoints_by_time ON checkpoints (signed_at);

CREATE TABLE log_meta (
    name  TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

CREATE TABLE access_trail (
    id         BIGSERIAL PRIMARY KEY,
    at         BIGINT  NOT NULL,
    member     TEXT    NOT NULL,
    method     TEXT    NOT NULL,
    request    TEXT    NOT NULL,
    tree_size  BIGINT  NOT NULL,
    rows       INTEGER NOT NULL,
    suppressed INTEGER NOT NULL
);

CREATE FUNCTION focalgate_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% is append-only', TG_TABLE_NAME;
END $$;

CREATE FUNCTION focalgate_submission_update() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NOT (NEW.seq = OLD.seq AND NEW.id = OLD.id AND NEW.envelope = OLD.envelope
            AND NEW.receipt = OLD.receipt AND NEW.revision = OLD.revision
            AND NEW.payload_digest = OLD.payload_digest AND NEW.received_at = OLD.received_at
            AND ((OLD.is_current AND NOT NEW.is_current AND NEW.log_index IS NOT DISTINCT FROM OLD.log_index)
                 OR (NEW.is_current = OLD.is_current AND OLD.log_index IS NULL AND NEW.log_index IS NOT NULL))) THEN
        RAISE EXCEPTION 'a submission can only be marked superseded or given its log index';
    END IF;
    RETURN NEW;
END $$;

CREATE TRIGGER submissions_update BEFORE UPDATE ON submissions
    FOR EACH ROW EXECUTE FUNCTION focalgate_submission_update();
CREATE TRIGGER submissions_never_deleted BEFORE DELETE ON submissions
    FOR EACH ROW EXECUTE FUNCTION focalgate_append_only();
CREATE TRIGGER observations_append_only BEFORE UPDATE OR DELETE ON observations
    FOR EACH ROW EXECUTE FUNCTION focalgate_append_only();
CREATE TRIGGER log_entries_append_only BEFORE UPDATE OR DELETE ON log_entries
    FOR EACH ROW EXECUTE FUNCTION focalgate_append_only();
CREATE TRIGGER log_nodes_append_only BEFORE UPDATE OR DELETE ON log_nodes
    FOR EACH ROW EXECUTE FUNCTION focalgate_append_only();
CREATE TRIGGER checkpoints_append_only BEFORE UPDATE OR DELETE ON checkpoints
    FOR EACH ROW EXECUTE FUNCTION focalgate_append_only();
CREATE TRIGGER log_meta_fixed BEFORE UPDATE OR DELETE ON log_meta
    FOR EACH ROW EXECUTE FUNCTION focalgate_append_only();
CREATE TRIGGER access_trail_append_only BEFORE UPDATE OR DELETE ON access_trail
    FOR EACH ROW EXECUTE FUNCTION focalgate_append_only();
CREATE TRIGGER no_truncate BEFORE TRUNCATE ON submissions
    FOR EACH STATEMENT EXECUTE FUNCTION focalgate_append_only();
CREATE TRIGGER no_truncate BEFORE TRUNCATE ON observations
    FOR EACH STATEMENT EXECUTE FUNCTION focalgate_append_only();
CREATE TRIGGER no_truncate BEFORE TRUNCATE ON log_entries
    FOR EACH STATEMENT EXECUTE FUNCTION focalgate_append_only();
CREATE TRIGGER no_truncate BEFORE TRUNCATE ON log_nodes
    FOR EACH STATEMENT EXECUTE FUNCTION focalgate_append_only();
CREATE TRIGGER no_truncate BEFORE TRUNCATE ON checkpoints
    FOR EACH STATEMENT EXECUTE FUNCTION focalgate_append_only();
CREATE TRIGGER no_truncate BEFORE TRUNCATE ON access_trail
    FOR EACH STATEMENT EXECUTE FUNCTION focalgate_append_only();
