-- Every statistics query: who asked what, and how much came back. Append-only.

CREATE TABLE access_trail (
    id         INTEGER PRIMARY KEY,
    at         INTEGER NOT NULL,                        -- Unix milliseconds
    member     TEXT    NOT NULL,
    method     TEXT    NOT NULL,
    request    TEXT    NOT NULL,                        -- the query as asked, JSON
    tree_size  INTEGER NOT NULL,                        -- the log size the answer reflects
    rows       INTEGER NOT NULL,
    suppressed INTEGER NOT NULL
);

CREATE TRIGGER access_trail_append_only_u BEFORE UPDATE ON access_trail BEGIN SELECT RAISE(ABORT, 'the access trail is append-only'); END;
CREATE TRIGGER access_trail_append_only_d BEFORE DELETE ON access_trail BEGIN SELECT RAISE(ABORT, 'the access trail is append-only'); END;

-- Statistics read observations in store order.
CREATE INDEX checkpoints_by_time ON checkpoints (signed_at);
