-- Cosignatures witnesses returned for the log's checkpoints (C2SP tlog-cosignature), kept
-- beside the checkpoint they sign: one per checkpoint and witness key. Append-only.

CREATE TABLE cosignatures (
    size        BIGINT NOT NULL REFERENCES checkpoints (size),
    witness     TEXT   NOT NULL,
    signature   TEXT   NOT NULL,
    received_at BIGINT NOT NULL,
    PRIMARY KEY (size, witness)
);

CREATE TRIGGER cosignatures_append_only BEFORE UPDATE OR DELETE ON cosignatures
    FOR EACH ROW EXECUTE FUNCTION focalgate_append_only();

-- What the hub last learnt of each witness: the size it holds, when it last cosigned, the last
-- error. One row per witness, replaced on each round.
CREATE TABLE witness_state (
    witness     TEXT   PRIMARY KEY,
    size        BIGINT NOT NULL,
    cosigned_at BIGINT,
    last_error  TEXT,
    updated_at  BIGINT NOT NULL
);
