-- 0007: what the history and P&L reports (tradebus.ledger.reports) read by, newest first.
--
-- Every page is a keyset page: rows in a unique order, the next page starting after the last
-- row seen (never OFFSET). Orders are ordered by (created_ns, client_order_id), which is unique
-- because client_order_id is; fills by (ts_event, seq), seq being their booking order.
--
-- A fill belongs to the user and source (bot id or 'manual') of the order it fills. The fill
-- carries both, so that one user's or one bot's fills are an index range, not a join over every
-- order they ever placed. The ledger's only fill writer (tradebus.ledger.store.Ledger.record_fill)
-- copies them from the order in the INSERT itself; the UPDATE below does it once for the fills
-- booked before this migration. Orders never change owner or source, so the copies never go
-- stale. A fill whose order cannot be found has no owner: NOT NULL refuses it (as the foreign key
-- on client_order_id always did).

ALTER TABLE fills ADD COLUMN seq bigserial;
ALTER TABLE fills ADD COLUMN user_id text;
ALTER TABLE fills ADD COLUMN source text;

UPDATE fills f SET user_id = o.user_id, source = o.source
    FROM orders o WHERE o.client_order_id = f.client_order_id;

ALTER TABLE fills ALTER COLUMN user_id SET NOT NULL;
ALTER TABLE fills ALTER COLUMN source SET NOT NULL;

-- fills: all users (an admin), one user, one bot of a user, one account
CREATE UNIQUE INDEX fills_history ON fills (ts_event, seq);
CREATE INDEX fills_history_by_user ON fills (user_id, ts_event, seq);
CREATE INDEX fills_history_by_source ON fills (user_id, source, ts_event, seq);
CREATE INDEX fills_history_by_account ON fills (account_id, ts_event, seq);

-- orders: the same four; orders_history_by_source serves every (user_id, source) lookup
-- orders_by_source (0001) served, so that one goes
CREATE INDEX orders_history ON orders (created_ns, client_order_id);
CREATE INDEX orders_history_by_user ON orders (user_id, created_ns, client_order_id);
CREATE INDEX orders_history_by_source ON orders (user_id, source, created_ns, client_order_id);
CREATE INDEX orders_history_by_account ON orders (account_id, created_ns, client_order_id);
DROP INDEX orders_by_source;
