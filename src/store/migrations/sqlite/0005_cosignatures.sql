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

-- What the hub last learnt of each witness: the size it holds, when it last cosigned, the last
-- error. One row per witness, replaced on each round.
CREATE TABLE witness_state (
    witness     TEXT    PRIMARY KEY,                        -- its name in the policy
    size        INTEGER NOT NULL,
    cosigned_at INTEGER,                                    -- Unix milliseconds
    last_error  TEXT,
    updated_at  INTEGER NOT NULL
) WITHOUT ROWID;
