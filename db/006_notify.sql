-- Notification channels: where messages go besides the inbox, who receives
-- which channel at which address, and one delivery row per (event,
-- recipient, channel) that levee-notify sends, retries with backoff and
-- dead-letters. Secrets (HMAC keys, SMTP passwords) are never stored here:
-- a channel names where to read its secret (env:NAME or file:PATH).

CREATE TABLE notify_channel (
    channel_id text PRIMARY KEY
               CHECK (channel_id ~ '^[a-z0-9][a-z0-9_-]{0,31}$' AND channel_id <> 'inbox'),
    kind       text NOT NULL CHECK (kind IN ('webhook', 'email')),
    url        text NOT NULL,   -- http(s)://... for a webhook, smtp(s)://host:port for email
    sender     text,            -- email: the From address
    username   text,            -- email: the SMTP login
    secret_ref text CHECK (secret_ref ~ '^(env:[A-Z_][A-Z0-9_]*|file:/.+)$'),
    rate_per_s int CHECK (rate_per_s BETWEEN 1 AND 1000),  -- NULL: the notify config's default
    created_ms bigint NOT NULL,
    CHECK (kind <> 'webhook' OR secret_ref IS NOT NULL),
    CHECK (kind <> 'email' OR sender IS NOT NULL)
);

-- recipient is exact (town:620521001) or a prefix ending in * (household:*,
-- village:620521*); the most specific subscription of a recipient for a
-- channel wins. address '@phone' means the household head's phone.
CREATE TABLE notify_subscription (
    recipient  text NOT NULL,
    channel_id text NOT NULL REFERENCES notify_channel ON DELETE CASCADE,
    address    text NOT NULL,
    created_ms bigint NOT NULL,
    PRIMARY KEY (recipient, channel_id)
);

-- subject and body are rendered and masked when the event is consumed;
-- address is kept whole because an SMS gateway needs the full number.
CREATE TABLE notify_delivery (
    delivery_id     text PRIMARY KEY,     -- deterministic for (event, recipient, channel)
    event_id        text NOT NULL,
    recipient       text NOT NULL,
    channel_id      text NOT NULL,
    county          char(6) NOT NULL,
    kind            text NOT NULL,        -- the event's kind
    household_id    text,
    case_id         text,
    address         text NOT NULL,
    subject         text NOT NULL,
    body            text NOT NULL,
    status          text NOT NULL CHECK (status IN ('pending', 'sent', 'dead')),
    attempts        int NOT NULL DEFAULT 0,
    next_attempt_ms bigint NOT NULL,
    last_attempt_ms bigint,
    last_error      text,
    created_ms      bigint NOT NULL,
    sent_ms         bigint,
    UNIQUE (event_id, recipient, channel_id)
);
CREATE INDEX notify_delivery_due ON notify_delivery (channel_id, next_attempt_ms)
    WHERE status = 'pending';
CREATE INDEX notify_delivery_status ON notify_delivery (status, created_ms);
