-- Fencing of racing renders and the transactional outbox.
-- generation: bumped by every request to render the photo; a job carries the one it is for.
-- lease: bumped by every start of a render; only the current lease may finish or fail it.
-- last_error_*: why the latest attempt ended, even when it is retried.
ALTER TABLE photos
    ADD COLUMN generation bigint NOT NULL DEFAULT 0,
    ADD COLUMN lease bigint NOT NULL DEFAULT 0,
    ADD COLUMN last_error_code text,
    ADD COLUMN last_error_message text;

-- Jobs written in the same transaction as their photo row, published by the relay.
CREATE TABLE outbox (
    id          bigserial PRIMARY KEY,
    photo_id    bigint NOT NULL,
    generation  bigint NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX outbox_photo ON outbox (photo_id);
