"""The gateway: the only part of tradebus that speaks HTTP to people.

A Litestar application (OpenAPI 3.1 from the code, interactive docs at
``/api/docs``) served by uvicorn. It talks to the rest of tradebus the way the
CLI does: NATS request/reply (``ctl.*``), JetStream streams and KV, and
read-only ledger queries; it writes only its own tables (users, sessions,
account configurations, the audit log). It never holds an exchange key in
clear text: keys are sealed to execution's public key.
"""
