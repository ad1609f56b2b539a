-- 0009: journal entries of kind 'funding': what a perpetual position paid (negative) or
-- received at the end of a funding interval, in the quote asset, as the venue reports it
-- (Backpack: GET /wapi/v1/history/funding). Execution books each payment once: its ref is
-- 'funding:<symbol>:<interval end, ms>', unique per account.
ALTER TABLE journal DROP CONSTRAINT journal_kind_check;
ALTER TABLE journal ADD CONSTRAINT journal_kind_check
    CHECK (kind IN ('deposit', 'withdrawal', 'fill', 'fee', 'realized_pnl', 'adjustment',
                    'funding'));
CREATE UNIQUE INDEX journal_funding_once ON journal (account_id, ref) WHERE kind = 'funding';
