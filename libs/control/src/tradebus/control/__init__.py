"""The control plane on the bus, one implementation for every client.

* :mod:`.botstore`: the bot specs of KV ``bots`` (read, apply a bot file, create,
  update and delete one bot with optimistic concurrency);
* :mod:`.bots`: the ``ctl.bots.*`` client (gather every host's statuses, send a
  command to the host running a bot);
* :mod:`.groups`: a strategy group as a whole (every bot of one block of the bot
  file): group commands composed from the per-bot ones, and the group's status
  (seed 004's ``--status``: target, total, progress, per-user volume);
* :mod:`.audit`: :class:`~tradebus.common.messages.AuditEvent` made and published on
  ``audit.<source>`` (stream ``AUDIT``), for the gateway to write to ``audit_log``.

Used by the strategy hosts, the CLI and the gateway; it imports only
``tradebus.common`` and ``tradebus.strategies`` (``make lint``'s contracts).
"""
