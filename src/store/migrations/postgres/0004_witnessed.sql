-- The checkpoints a quorum of the policy's witnesses cosigned, and when the hub learnt it: where
-- the witnessed checkpoint is looked for, without scanning every cosignature. Append-only.

CREATE TABLE witnessed (
    size BIGINT PRIMARY KEY REFERENCES checkpoints (size),
    at   BIGINT NOT NULL
);

CREATE TRIGGER witnessed_append_only BEFORE UPDATE OR DELETE ON witnessed
    FOR EACH ROW EXECUTE FUNCTION focalgate_append_only();
