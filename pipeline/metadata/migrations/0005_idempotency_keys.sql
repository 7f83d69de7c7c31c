-- The HTTP API's Idempotency-Key: a retried upload names the photo the first one created.
-- Written in the transaction that creates the photo, on its shard (the user's).
CREATE TABLE idempotency_keys (
    user_id     bigint NOT NULL,
    key         text NOT NULL,
    photo_id    bigint NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, key)
);
