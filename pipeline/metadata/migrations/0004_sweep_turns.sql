-- The stuck sweep (pipeline.sweep): one sweeper at a time across the fleet, each holding its
-- turn for a while (a row per kind of sweep; an expired turn is anyone's to take).
CREATE TABLE sweep_turns (
    name    text PRIMARY KEY,
    holder  text NOT NULL,
    until   timestamptz NOT NULL
);
