-- 0012: each user's notification settings saved through the gateway (issue 20,
-- PUT /api/v1/me/notifications). The channels are Apprise URLs holding tokens: they are
-- stored only sealed to the notifier's public key (libsodium sealed box, as exchange keys
-- are sealed to execution's); the gateway cannot read them back, the notifier opens them.
-- channel_services names each channel's service (Telegram, JSON, ...) for display.
CREATE TABLE notification_settings (
    user_id           text PRIMARY KEY REFERENCES users (id),
    sealed_channels   bytea,
    channel_services  text[] NOT NULL DEFAULT '{}',
    mute              text[] NOT NULL DEFAULT '{}',
    mute_bots         text[] NOT NULL DEFAULT '{}',
    updated_ns        bigint NOT NULL
);
