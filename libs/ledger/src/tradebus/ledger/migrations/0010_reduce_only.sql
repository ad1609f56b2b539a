-- 0010: whether an order may only shrink a perpetual position (the intent's reduce_only, as
-- the venue is told: ccxt reduceOnly). Every order before this migration was not reduce-only.
ALTER TABLE orders ADD COLUMN reduce_only boolean NOT NULL DEFAULT false;
