-- Cosignatures witnesses returned for the log's checkpoints (C2SP tlog-cosignature), kept
-- beside the checkpoint they sign: one per checkpoint and witness key. Append-only.

CREATE TABLE cosignatures (
    size        INTEGER NOT NULL REFERENCES checkpoints (size),
    witness     TEXT    NOT NULL,                           -- the witness key's name
    signature   TEXT    NOT NULL,                           -- its signature line, as in the note
    received_at INTEGER NOT NULL,                           -- Unix milliseconds
    PRIMARY KEY (size, witness)
) WITHOUT ROWID;

CREATE TRIGGER cosignatures_append_only_u BEFORE UPDATE ON cosignatures BEGIN SELECT RAISE(ABORT, 'cosignatures are never changed'); END;
CREATE TRIGGER cosignatures_append_only_d BEFORE DELETE ON cosignatures BEGIN SELECT RAISE(ABORT, 'cosignatures are never deleted'); END;
