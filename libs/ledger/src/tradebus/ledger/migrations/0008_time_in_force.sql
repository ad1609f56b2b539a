-- 0008: an order's time in force, as the intent asked and the venue was told.
--
-- 'gtc' rests until filled or canceled; 'ioc' takes what it can at once and the venue expires
-- the rest (tradebus.common.messages.TimeInForce).
-- Every order before this migration was sent as good-till-canceled.

ALTER TABLE orders ADD COLUMN time_in_force text NOT NULL DEFAULT 'gtc'
    CHECK (time_in_force IN ('gtc', 'ioc'));
