-- Uploads per user per minute, for the HTTP API's PHOTOPIPE_UPLOADS_PER_MINUTE: one row per
-- user and minute on the user's shard, counted by every serve process alike.
CREATE TABLE upload_counts (
    user_id  bigint NOT NULL,
    minute   bigint NOT NULL,
    n        integer NOT NULL,
    PRIMARY KEY (user_id, minute)
);
