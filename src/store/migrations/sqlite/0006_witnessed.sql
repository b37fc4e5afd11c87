-- The checkpoints a quorum of the policy's witnesses cosigned, and when the hub learnt it: where
-- the witnessed checkpoint is looked for, without scanning every cosignature. Append-only.

CREATE TABLE witnessed (
    size INTEGER PRIMARY KEY REFERENCES checkpoints (size),
    at   INTEGER NOT NULL                                  -- Unix milliseconds
);

CREATE TRIGGER witnessed_append_only_u BEFORE UPDATE ON witnessed BEGIN SELECT RAISE(ABORT, 'witnessed checkpoints are never changed'); END;
CREATE TRIGGER witnessed_append_only_d BEFORE DELETE ON witnessed BEGIN SELECT RAISE(ABORT, 'witnessed checkpoints are never deleted'); END;
