-- 0003: a fill is keyed by (venue, account_id, trade_id). A venue's trade has two sides; when
-- two tradebus accounts on the same venue trade with each other (a volume group, say), both
-- sides carry the same venue trade id and each must be booked, once, in its own account.
ALTER TABLE fills DROP CONSTRAINT fills_pkey;
ALTER TABLE fills ADD PRIMARY KEY (venue, account_id, trade_id);
