-- 0002: journal entries of kind 'realized_pnl' (perpetual fills book their realized P&L in the
-- quote asset; the position itself is journaled in a pseudo-asset such as 'BTCUSDT-PERP').
-- 0001 declared the check inline, so PostgreSQL named it journal_kind_check.
ALTER TABLE journal DROP CONSTRAINT journal_kind_check;
ALTER TABLE journal ADD CONSTRAINT journal_kind_check
    CHECK (kind IN ('deposit', 'withdrawal', 'fill', 'fee', 'realized_pnl', 'adjustment'));
