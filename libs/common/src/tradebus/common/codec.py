"""Encoders and the one typed decoder per kind of subject, built once.

Every payload on the bus is JSON made by :data:`encode`. Decoders are typed
by the union a subject may carry, so decoding validates as it parses and a
``match`` on the result dispatches (DESIGN.md, "Messages").

Raises
------
msgspec.DecodeError / msgspec.ValidationError
    From the ``decode_*`` functions when a payload is not valid JSON or not
    one of the union's members.
"""

from __future__ import annotations

from typing import Any

import msgspec

from tradebus.common.messages import (
    AccountHalted,
    AccountsSync,
    AccountsSyncReply,
    AdjustReply,
    AdjustRequest,
    AuditEvent,
    BalancesQuery,
    BalancesReply,
    BotAdjustment,
    BotAdjustReply,
    BotCommand,
    BotCommandReply,
    BotSetAverage,
    BotsQuery,
    BotsReply,
    BotStatusChanged,
    DryRunRecord,
    ErrorReply,
    FeedStatus,
    Intent,
    KillSwitchCommand,
    KillSwitchReply,
    MarketEvent,
    MarketsQuery,
    MarketsReply,
    OrderEvent,
    PaperAdjust,
    ReconReport,
    ReconRunReply,
    ReconRunRequest,
)

_encoder = msgspec.json.Encoder(decimal_format="string")


def encode(message: Any) -> bytes:
    """Encode any message (or plain JSON-able value) to JSON bytes."""
    return _encoder.encode(message)


_market: msgspec.json.Decoder[MarketEvent] = msgspec.json.Decoder(MarketEvent)
_feed_status = msgspec.json.Decoder(FeedStatus)
_intent: msgspec.json.Decoder[Intent] = msgspec.json.Decoder(Intent)
_event: msgspec.json.Decoder[OrderEvent] = msgspec.json.Decoder(OrderEvent)
_exec_alert = msgspec.json.Decoder(AccountHalted)
_killswitch_command = msgspec.json.Decoder(KillSwitchCommand)
_killswitch_reply: msgspec.json.Decoder[KillSwitchReply | ErrorReply] = msgspec.json.Decoder(
    KillSwitchReply | ErrorReply
)
_adjust_request = msgspec.json.Decoder(AdjustRequest)
_adjust_reply: msgspec.json.Decoder[AdjustReply | ErrorReply] = msgspec.json.Decoder(
    AdjustReply | ErrorReply
)
_paper_adjust = msgspec.json.Decoder(PaperAdjust)
_bot_adjustment = msgspec.json.Decoder(BotAdjustment)
_bot_adjust_reply: msgspec.json.Decoder[BotAdjustReply | ErrorReply] = msgspec.json.Decoder(
    BotAdjustReply | ErrorReply
)
_bot_set_average = msgspec.json.Decoder(BotSetAverage)
_markets_query = msgspec.json.Decoder(MarketsQuery)
_markets_reply: msgspec.json.Decoder[MarketsReply | ErrorReply] = msgspec.json.Decoder(
    MarketsReply | ErrorReply
)
_balances_query = msgspec.json.Decoder(BalancesQuery)
_balances_reply: msgspec.json.Decoder[BalancesReply | ErrorReply] = msgspec.json.Decoder(
    BalancesReply | ErrorReply
)
_recon_report = msgspec.json.Decoder(ReconReport)
_recon_run_request = msgspec.json.Decoder(ReconRunRequest)
_recon_run_reply: msgspec.json.Decoder[ReconRunReply | ErrorReply] = msgspec.json.Decoder(
    ReconRunReply | ErrorReply
)
_accounts_sync = msgspec.json.Decoder(AccountsSync)
_accounts_sync_reply: msgspec.json.Decoder[AccountsSyncReply | ErrorReply] = msgspec.json.Decoder(
    AccountsSyncReply | ErrorReply
)
_audit_event = msgspec.json.Decoder(AuditEvent)
_bot_status_changed = msgspec.json.Decoder(BotStatusChanged)
_dry_run_record = msgspec.json.Decoder(DryRunRecord)
_bots_query = msgspec.json.Decoder(BotsQuery)
_bots_reply: msgspec.json.Decoder[BotsReply | ErrorReply] = msgspec.json.Decoder(
    BotsReply | ErrorReply
)
_bot_command = msgspec.json.Decoder(BotCommand)
_bot_command_reply: msgspec.json.Decoder[BotCommandReply | ErrorReply] = msgspec.json.Decoder(
    BotCommandReply | ErrorReply
)

decode_market = _market.decode
"""``bytes -> QuoteTick | TradeTick`` for ``md.*`` subjects."""
decode_feed_status = _feed_status.decode
"""``bytes -> FeedStatus`` for ``feed.status.*`` subjects."""
decode_intent = _intent.decode
"""``bytes -> PlaceOrder | CancelOrder | CancelAll`` for ``intent.*`` subjects."""
decode_event = _event.decode
"""``bytes -> OrderEvent`` for ``exec.evt.*`` subjects."""
decode_exec_alert = _exec_alert.decode
"""``bytes -> AccountHalted`` for ``exec.alert.*`` subjects."""
decode_killswitch_command = _killswitch_command.decode
decode_killswitch_reply = _killswitch_reply.decode
decode_adjust_request = _adjust_request.decode
decode_adjust_reply = _adjust_reply.decode
decode_paper_adjust = _paper_adjust.decode
decode_bot_adjustment = _bot_adjustment.decode
decode_bot_adjust_reply = _bot_adjust_reply.decode
decode_bot_set_average = _bot_set_average.decode
decode_markets_query = _markets_query.decode
decode_markets_reply = _markets_reply.decode
decode_balances_query = _balances_query.decode
decode_balances_reply = _balances_reply.decode
decode_recon_report = _recon_report.decode
decode_recon_run_request = _recon_run_request.decode
decode_recon_run_reply = _recon_run_reply.decode
decode_accounts_sync = _accounts_sync.decode
decode_accounts_sync_reply = _accounts_sync_reply.decode
decode_audit_event = _audit_event.decode
"""``bytes -> AuditEvent`` for ``audit.*`` subjects."""
decode_dry_run_record = _dry_run_record.decode
"""``bytes -> DryRunRecord`` for ``dryrun.*`` subjects."""
decode_bot_status_changed = _bot_status_changed.decode
"""``bytes -> BotStatusChanged`` for ``bot.status.*`` subjects."""
decode_bots_query = _bots_query.decode
decode_bots_reply = _bots_reply.decode
decode_bot_command = _bot_command.decode
decode_bot_command_reply = _bot_command_reply.decode
