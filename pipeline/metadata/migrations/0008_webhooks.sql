-- Webhooks: the ending of a photo (ready, failed, deleted), written in the transaction that
-- records it (an outbox, as for jobs), taken by the workers' senders (next_at is also their
-- lease), removed once delivered, refused for good (410) or given up on.
CREATE TABLE webhooks (
    id          bigserial PRIMARY KEY,
    photo_id    bigint NOT NULL,
    user_id     bigint,
    generation  bigint NOT NULL,
    event       text NOT NULL,
    attempts    integer NOT NULL DEFAULT 0,
    last_error  text,
    created_at  timestamptz NOT NULL DEFAULT now(),
    next_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX webhooks_due ON webhooks (next_at);
CREATE INDEX webhooks_photo ON webhooks (photo_id, generation, id);
