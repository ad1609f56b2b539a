-- 0001: accounts, orders, fills, journal, rejected intents, reconciliation reports, audit log.
-- Money is NUMERIC (exact); times are BIGINT nanoseconds since the epoch.

CREATE TABLE accounts (
    id          text PRIMARY KEY,
    user_id     text NOT NULL,
    venue       text NOT NULL,
    created_ns  bigint NOT NULL
);

-- Venue client order ids. Backpack's clientId is a uint32, so the range is capped.
CREATE SEQUENCE client_order_id_seq AS bigint MINVALUE 1 MAXVALUE 4294967295 NO CYCLE;

-- An order is keyed by (user_id, intent_id): intent ids are chosen by users, so one user's
-- ids can never collide with (or pre-empt) another's.
CREATE TABLE orders (
    user_id          text NOT NULL,
    intent_id        text NOT NULL,
    account_id       text NOT NULL REFERENCES accounts (id),
    source           text NOT NULL,
    client_order_id  bigint NOT NULL UNIQUE DEFAULT nextval('client_order_id_seq'),
    venue_order_id   text,
    symbol           text NOT NULL,
    side             text NOT NULL CHECK (side IN ('buy', 'sell')),
    order_type       text NOT NULL CHECK (order_type IN ('limit', 'market')),
    price            numeric,
    qty              numeric NOT NULL CHECK (qty > 0),
    filled_qty       numeric NOT NULL DEFAULT 0,
    status           text NOT NULL CHECK (status IN
                       ('new', 'accepted', 'partially_filled', 'filled', 'canceled', 'rejected', 'unknown')),
    reason           text,
    trigger_ts       bigint,
    stream_seq       bigint,
    created_ns       bigint NOT NULL,
    updated_ns       bigint NOT NULL,
    PRIMARY KEY (user_id, intent_id)
);
CREATE INDEX orders_open ON orders (account_id)
    WHERE status IN ('new', 'accepted', 'partially_filled', 'unknown');
CREATE INDEX orders_by_source ON orders (user_id, source);

CREATE TABLE fills (
    venue        text NOT NULL,
    trade_id     text NOT NULL,
    client_order_id bigint NOT NULL REFERENCES orders (client_order_id),
    account_id   text NOT NULL REFERENCES accounts (id),
    symbol       text NOT NULL,
    side         text NOT NULL CHECK (side IN ('buy', 'sell')),
    price        numeric NOT NULL,
    qty          numeric NOT NULL CHECK (qty > 0),
    fee          numeric NOT NULL,
    fee_asset    text NOT NULL,
    liquidity    text NOT NULL CHECK (liquidity IN ('maker', 'taker')),
    ts_event     bigint NOT NULL,
    recorded_ns  bigint NOT NULL,
    PRIMARY KEY (venue, trade_id)
);
CREATE INDEX fills_by_order ON fills (client_order_id);

-- The balance of an asset is the sum of its journal entries.
CREATE TABLE journal (
    id          bigserial PRIMARY KEY,
    account_id  text NOT NULL REFERENCES accounts (id),
    asset       text NOT NULL,
    amount      numeric NOT NULL,
    kind        text NOT NULL CHECK (kind IN ('deposit', 'withdrawal', 'fill', 'fee', 'adjustment')),
    ref         text NOT NULL,
    ts          bigint NOT NULL
);
CREATE INDEX journal_by_account_asset ON journal (account_id, asset, id);

CREATE TABLE rejected_intents (
    id          bigserial PRIMARY KEY,
    stream_seq  bigint UNIQUE,
    subject     text NOT NULL,
    user_id     text,
    source      text,
    intent_id   text,
    account_id  text,
    reason      text NOT NULL,
    message     text NOT NULL,
    payload     bytea NOT NULL,
    ts          bigint NOT NULL
);
CREATE INDEX rejected_intents_by_intent ON rejected_intents (user_id, intent_id);

CREATE TABLE recon_reports (
    id                bigserial PRIMARY KEY,
    account_id        text NOT NULL,
    status            text NOT NULL CHECK (status IN ('ok', 'drift')),
    ledger_watermark  bigint NOT NULL,
    rows              jsonb NOT NULL,
    ts                bigint NOT NULL
);
CREATE INDEX recon_reports_by_account ON recon_reports (account_id, id);

CREATE TABLE audit_log (
    id       bigserial PRIMARY KEY,
    ts       bigint NOT NULL,
    actor    text NOT NULL,
    action   text NOT NULL,
    details  jsonb NOT NULL DEFAULT '{}'
);
