-- 0006: people who sign in (the gateway), their sessions, the accounts they add at run time,
-- and an audit log that says who changed what, from where, before and after.

-- A user id is a subject token (intent.<user>.>); passwords are argon2id hashes (PHC strings);
-- nats_account is the public key of the person's own NATS account (operator mode).
CREATE TABLE users (
    id             text PRIMARY KEY CHECK (id ~ '^[A-Za-z0-9_-]{1,64}$'),
    role           text NOT NULL CHECK (role IN ('user', 'admin')),
    password_hash  text NOT NULL,
    nats_account   text UNIQUE,
    created_by     text NOT NULL,
    created_ns     bigint NOT NULL,
    updated_ns     bigint NOT NULL,
    disabled_ns    bigint
);

-- Refresh tokens are stored as SHA-256 hashes only. A family is one sign-in: a refresh token
-- is used once (rotated), and using a spent one revokes the whole family (token theft).
CREATE TABLE refresh_tokens (
    token_hash   bytea PRIMARY KEY,
    user_id      text NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    family       text NOT NULL,
    created_ns   bigint NOT NULL,
    expires_ns   bigint NOT NULL,
    used_ns      bigint,
    revoked_ns   bigint
);
CREATE INDEX refresh_tokens_by_user ON refresh_tokens (user_id);
CREATE INDEX refresh_tokens_by_family ON refresh_tokens (family);

-- Accounts added at run time (the gateway): the account's settings as the accounts file would
-- hold them (never a key), and its API credentials sealed to execution's public key (libsodium
-- sealed box): only execution can open them. deleted_ns marks an account unloaded for good;
-- its ledger rows (orders, fills, journal) stay.
CREATE TABLE account_configs (
    account_id          text PRIMARY KEY CHECK (account_id ~ '^[A-Za-z0-9_-]{1,64}$'),
    user_id             text NOT NULL,
    spec                jsonb NOT NULL,
    sealed_credentials  bytea,
    created_ns          bigint NOT NULL,
    updated_ns          bigint NOT NULL,
    deleted_ns          bigint
);
CREATE INDEX account_configs_by_user ON account_configs (user_id);

-- The audit log of 0001 gains what a reader needs: the event's own id (written once), where
-- it came from, what it acted on, whose that is, and the values before and after.
ALTER TABLE audit_log ADD COLUMN event_id text;
ALTER TABLE audit_log ADD COLUMN source text NOT NULL DEFAULT '';
ALTER TABLE audit_log ADD COLUMN target text NOT NULL DEFAULT '';
ALTER TABLE audit_log ADD COLUMN user_id text;
ALTER TABLE audit_log ADD COLUMN before jsonb;
ALTER TABLE audit_log ADD COLUMN after jsonb;
ALTER TABLE audit_log ADD CONSTRAINT audit_log_event_id_key UNIQUE (event_id);
CREATE INDEX audit_log_by_user ON audit_log (user_id, id);
CREATE INDEX audit_log_by_ts ON audit_log (ts);
