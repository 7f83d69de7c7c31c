-- Photos and their renditions, with Instagram's 64-bit ids generated in the database:
-- 41 bits of milliseconds since 2025-01-01, 13 bits of logical shard, 10 bits of sequence.
-- Each logical shard is meant to live in a schema of its own with its own shard number in
-- next_photo_id's default, so ids stay unique and time-ordered when shards move between
-- databases.
CREATE SEQUENCE photo_id_seq;

CREATE FUNCTION next_photo_id(shard_id integer DEFAULT 0) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    epoch_ms   CONSTANT bigint := 1735689600000;  -- 2025-01-01T00:00:00Z
    now_ms     bigint;
    seq        bigint;
BEGIN
    IF shard_id < 0 OR shard_id >= 8192 THEN
        RAISE EXCEPTION 'shard_id % is outside 0..8191', shard_id;
    END IF;
    SELECT nextval('photo_id_seq') % 1024 INTO seq;
    now_ms := floor(extract(epoch FROM clock_timestamp()) * 1000);
    RETURN ((now_ms - epoch_ms) << 23) | (shard_id::bigint << 10) | seq;
END;
$$;

CREATE TABLE photos (
    id              bigint PRIMARY KEY DEFAULT next_photo_id(),
    status          text NOT NULL
                    CHECK (status IN ('queued', 'processing', 'ready', 'failed')),
    source_key      text NOT NULL,
    ladder          text NOT NULL,
    filter          text,
    strength        double precision NOT NULL,
    user_id         bigint,
    attempts        integer NOT NULL DEFAULT 0,
    source_format   text,
    source_width    integer,
    source_height   integer,
    source_bytes    bigint,
    source_frames   integer,
    orientation     smallint,
    error_code      text,
    error_message   text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX photos_status ON photos (status);
CREATE INDEX photos_user ON photos (user_id, id DESC);

CREATE TABLE renditions (
    photo_id    bigint NOT NULL REFERENCES photos (id) ON DELETE CASCADE,
    name        text NOT NULL,
    format      text NOT NULL,
    object_key  text NOT NULL UNIQUE,
    width       integer NOT NULL,
    height      integer NOT NULL,
    bytes       bigint NOT NULL,
    position    smallint NOT NULL,
    PRIMARY KEY (photo_id, name, format)
);
