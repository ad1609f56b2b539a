-- 0004: an adjustment entry (reconciliation with policy 'adjust') carries the price it is valued
-- at: the average cost of the position in that asset when it was written (NULL when none, e.g.
-- the quote asset itself). History is never rewritten; a drift is corrected by a new entry.
ALTER TABLE journal ADD COLUMN price numeric;
