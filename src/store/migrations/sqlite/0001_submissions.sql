-- Submissions and their observations. Append-only: rows are never deleted, and the only
-- update ever made is marking a revision superseded when a newer one arrives.

CREATE TABLE submissions (
    seq               INTEGER PRIMARY KEY,           -- arrival order
    id                TEXT    NOT NULL UNIQUE,       -- REF_AREA.DATAFLOW.TIME_PERIOD.rREVISION
    member            TEXT    NOT NULL,              -- sender's member id, from its certificate
    dataflow          TEXT    NOT NULL,
    ref_area          TEXT    NOT NULL,
    freq              TEXT    NOT NULL,
    time_period       TEXT    NOT NULL,
    period_start      TEXT    NOT NULL,              -- YYYY-MM-DD, first day of the period
    period_end        TEXT    NOT NULL,              -- YYYY-MM-DD, last day of the period
    revision          INTEGER NOT NULL CHECK (revision >= 1),
    is_current        INTEGER NOT NULL CHECK (is_current IN (0, 1)),
    received_at       INTEGER NOT NULL,              -- Unix milliseconds
    payload_digest    BLOB    NOT NULL UNIQUE,       -- SHA-256 of the signed payload: idempotency key
    envelope_digest   BLOB    NOT NULL,              -- SHA-256 of `envelope`
    envelope          BLOB    NOT NULL,              -- the SignedEnvelope as stored
    signing_cert      BLOB    NOT NULL,              -- DER of the certificate that signed it
    receipt           BLOB    NOT NULL,              -- the Receipt returned, encoded
    observation_count INTEGER NOT NULL,
    UNIQUE (ref_area, dataflow, time_period, revision)
);

CREATE UNIQUE INDEX submissions_one_current ON submissions (ref_area, dataflow, time_period) WHERE is_current = 1;
CREATE INDEX submissions_by_member ON submissions (member, seq);

CREATE TABLE observations (
    submission_seq   INTEGER NOT NULL REFERENCES submissions (seq),
    idx              INTEGER NOT NULL,               -- position in the submission
    drug             TEXT    NOT NULL,
    transport_mode   TEXT,
    origin_area      TEXT,
    departure_area   TEXT,
    transit_area     TEXT,                           -- ';'-separated, in travel order
    destination_area TEXT,
    unit_measure     TEXT,
    n_seizures       INTEGER,
    quantity         INTEGER,                        -- millionths of unit_measure
    obs_status       TEXT    NOT NULL,
    conf_status      TEXT    NOT NULL,
    embargo_time     INTEGER,                        -- Unix milliseconds
    comment          TEXT,
    PRIMARY KEY (submission_seq, idx)
) WITHOUT ROWID;

CREATE TRIGGER submissions_never_deleted BEFORE DELETE ON submissions
BEGIN
    SELECT RAISE(ABORT, 'submissions are never deleted');
END;

CREATE TRIGGER submissions_only_superseded BEFORE UPDATE ON submissions
WHEN NOT (OLD.is_current = 1 AND NEW.is_current = 0
          AND NEW.seq IS OLD.seq AND NEW.id IS OLD.id AND NEW.envelope IS OLD.envelope
          AND NEW.receipt IS OLD.receipt AND NEW.revision IS OLD.revision
          AND NEW.payload_digest IS OLD.payload_digest AND NEW.received_at IS OLD.received_at)
BEGIN
    SELECT RAISE(ABORT, 'a submission can only be marked superseded');
END;

CREATE TRIGGER observations_never_changed BEFORE UPDATE ON observations
BEGIN
    SELECT RAISE(ABORT, 'observations are never changed');
END;

CREATE TRIGGER observations_never_deleted BEFORE DELETE ON observations
BEGIN
    SELECT RAISE(ABORT, 'observations are never deleted');
END;
