-- Batch reprocessing: the spec each photo was rendered with, the run that last asked for its
-- render, and the runs themselves (durable: selection, changes, cursor, counts, state).
ALTER TABLE photos ADD COLUMN spec text, ADD COLUMN run_id bigint;
CREATE INDEX photos_run ON photos (run_id, status) WHERE run_id IS NOT NULL;

CREATE TABLE reprocess_runs (
    id          bigserial PRIMARY KEY,
    key         text NOT NULL,
    selection   text NOT NULL,
    changes     text NOT NULL,
    mode        text NOT NULL,
    state       text NOT NULL CHECK (state IN ('running', 'done', 'cancelled')),
    cursor      bigint NOT NULL DEFAULT 0,
    enqueued    bigint NOT NULL DEFAULT 0,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX reprocess_runs_key ON reprocess_runs (key, state);
