-- 0011: corrections of one bot's position (issue 19, docs/strategies.md "Position check"):
-- a position check that adopted what the account holds beyond the bot's position (at the
-- current price) or wrote off what it no longer holds (at average cost), and an average
-- price set by hand. They attribute holdings to a bot; the account's balances (journal) do
-- not move. A bot's ledger position in a base asset is its fills plus these rows' qty.
CREATE TABLE bot_adjustments (
    id           bigserial PRIMARY KEY,
    account_id   text NOT NULL REFERENCES accounts (id),
    user_id      text NOT NULL,
    source       text NOT NULL,
    symbol       text NOT NULL,
    asset        text NOT NULL,
    kind         text NOT NULL CHECK (kind IN ('adopt', 'reduce', 'average')),
    qty          numeric NOT NULL,
    price        numeric,
    old_average  numeric,
    new_average  numeric,
    held         numeric,
    actor        text NOT NULL,
    ref          text NOT NULL,
    ts           bigint NOT NULL,
    UNIQUE (account_id, ref)
);
CREATE INDEX bot_adjustments_by_source ON bot_adjustments (account_id, source, id);
