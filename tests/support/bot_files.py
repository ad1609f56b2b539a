"""Bot files shared by the tests of ``bots apply`` (CLI, audit): two versions of one
file, the second changing one user's bot, removing one and adding one."""

LADDER = (
    'symbol: BTCUSDT, total_quote: "1000", order_count: 4, max_drop_pct: "1", '
    'take_profit_pct: "0.5"'
)
VOLUME = (
    'symbol: ETHUSDT, single_trade_quote: "100", trade_interval_seconds: "5", '
    'buy_offset_pct: "0.01", sell_profit_pct: "0.02", target_volume: "5000"'
)
BOTS_V1 = f"""
defaults: {{venue: binance}}
strategies:
  btc: {{strategy: ladder, {LADDER}}}
  vol: {{strategy: volume, {VOLUME}}}
users:
  - {{user: alice, account: alice-paper, strategies: {{btc: {{}}}}}}
  - {{user: bob, account: bob-paper, strategies: {{vol: {{}}}}}}
  - {{user: carol, account: carol-paper, strategies: {{btc: {{order_count: 2}}}}}}
"""
# alice unchanged, bob's bot changed, carol's removed, dave's added
BOTS_V2 = f"""
defaults: {{venue: binance}}
strategies:
  btc: {{strategy: ladder, {LADDER}}}
  vol: {{strategy: volume, {VOLUME}}}
users:
  - {{user: alice, account: alice-paper, strategies: {{btc: {{}}}}}}
  - {{user: bob, account: bob-paper, strategies: {{vol: {{trade_interval_seconds: "9"}}}}}}
  - {{user: dave, account: dave-paper, strategies: {{vol: {{}}}}}}
"""
