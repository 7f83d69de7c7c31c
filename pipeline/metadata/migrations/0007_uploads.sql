-- Resumable (tus) uploads of the HTTP API, by the photo id each will become, on its shard
-- (the user's). The state is the uploads use case's own (JSON); version makes each change a
-- compare-and-set, so any serve process may continue an upload another one started.
CREATE TABLE uploads (
    photo_id  bigint PRIMARY KEY,
    user_id   bigint NOT NULL,
    expires   double precision NOT NULL,
    version   bigint NOT NULL,
    state     text NOT NULL
);
CREATE INDEX uploads_expires ON uploads (expires);
