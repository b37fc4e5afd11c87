-- The transparency log: entries, the stored complete subtrees of its Merkle tree, and every
-- checkpoint the gateway signed. All append-only.

ALTER TABLE submissions ADD COLUMN log_index INTEGER;      -- its entry in log_entries
CREATE UNIQUE INDEX submissions_by_log_index ON submissions (log_index) WHERE log_index IS NOT NULL;

CREATE TABLE log_entries (
    idx       INTEGER PRIMARY KEY,                          -- leaf index: 0, 1, 2, … without gaps
    entry     BLOB    NOT NULL,                             -- the exact entry bytes (leaf input)
    leaf_hash BLOB    NOT NULL                              -- SHA-256(0x00 || entry)
);
CREATE INDEX log_entries_by_leaf_hash ON log_entries (leaf_hash);

CREATE TABLE log_nodes (                                    -- complete subtrees, merkle::NodeId
    level INTEGER NOT NULL,
    idx   INTEGER NOT NULL,
    hash  BLOB    NOT NULL,
    PRIMARY KEY (level, idx)
) WITHOUT ROWID;

CREATE TABLE checkpoints (
    size      INTEGER PRIMARY KEY,                          -- tree size
    note      TEXT    NOT NULL,                             -- the signed checkpoint
    signed_at INTEGER NOT NULL                              -- Unix milliseconds
);

CREATE TABLE log_meta (                                     -- the log's identity (origin)
    name  TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

CREATE TRIGGER log_entries_append_only_u BEFORE UPDATE ON log_entries BEGIN SELECT RAISE(ABORT, 'the log is append-only'); END;
CREATE TRIGGER log_entries_append_only_d BEFORE DELETE ON log_entries BEGIN SELECT RAISE(ABORT, 'the log is append-only'); END;
CREATE TRIGGER log_nodes_append_only_u BEFORE UPDATE ON log_nodes BEGIN SELECT RAISE(ABORT, 'the log is append-only'); END;
CREATE TRIGGER log_nodes_append_only_d BEFORE DELETE ON log_nodes BEGIN SELECT RAISE(ABORT, 'the log is append-only'); END;
CREATE TRIGGER checkpoints_append_only_u BEFORE UPDATE ON checkpoints BEGIN SELECT RAISE(ABORT, 'checkpoints are never changed'); END;
CREATE TRIGGER checkpoints_append_only_d BEFORE DELETE ON checkpoints BEGIN SELECT RAISE(ABORT, 'checkpoints are never deleted'); END;
CREATE TRIGGER log_meta_fixed_u BEFORE UPDATE ON log_meta BEGIN SELECT RAISE(ABORT, 'the log identity is fixed'); END;

-- A submission may now also receive its log index, once (submissions accepted before the log
-- existed are logged at the next start).
DROP TRIGGER submissions_only_superseded;
CREATE TRIGGER submissions_only_superseded_or_logged BEFORE UPDATE ON submissions
WHEN NOT (NEW.seq IS OLD.seq AND NEW.id IS OLD.id AND NEW.envelope IS OLD.envelope
          AND NEW.receipt IS OLD.receipt AND NEW.revision IS OLD.revision
          AND NEW.payload_digest IS OLD.payload_digest AND NEW.received_at IS OLD.received_at
          AND ((OLD.is_current = 1 AND NEW.is_current = 0 AND NEW.log_index IS OLD.log_index)
               OR (NEW.is_current IS OLD.is_current AND OLD.log_index IS NULL AND NEW.log_index IS NOT NULL)))
BEGIN
    SELECT RAISE(ABORT, 'a submission can only be marked superseded or given its log index');
END;
