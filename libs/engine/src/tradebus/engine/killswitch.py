"""The kill switch's state: which switches are engaged, and why (pure).

One global switch and one per account, independent of each other. While a
switch covering an account is engaged, its new orders are refused with
``kill_switch`` (:mod:`.vetting`); cancels still pass. Engaging, releasing and
keeping them across restarts is the execution service's
(``tradebus.execution.killswitch``).
"""

from __future__ import annotations

from tradebus.common.ids import AccountId
from tradebus.common.messages import KillSwitchReply


class KillSwitch:
    """Which switches are engaged, and why."""

    def __init__(self) -> None:
        self.global_reason: str | None = None
        self.accounts: dict[AccountId, str] = {}

    def blocking(self, account: AccountId) -> str | None:
        """Why ``account`` may not place orders now (None if it may)."""
        if self.global_reason is not None:
            return f"global kill switch engaged: {self.global_reason}"
        if account in self.accounts:
            return f"kill switch of {account} engaged: {self.accounts[account]}"
        return None

    def set(self, account: AccountId | None, reason: str | None) -> None:
        """Engage (``reason`` set) or release (None) the global or an account's switch."""
        if account is None:
            self.global_reason = reason
        elif reason is None:
            self.accounts.pop(account, None)
        else:
            self.accounts[account] = reason

    def reply(self, canceled: int = 0) -> KillSwitchReply:
        """The state as a reply."""
        return KillSwitchReply(
            global_reason=self.global_reason, accounts=dict(self.accounts), canceled=canceled
        )
