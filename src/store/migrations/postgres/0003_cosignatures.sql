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
