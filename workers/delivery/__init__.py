"""Delivery: alerts leave the post stage as jobs on the deliveries queue and reach Telegram chats
and signed webhooks here, within Telegram's limits, retried, and never shown twice.

One module per concept: ``settings`` (what can be tuned), ``ledger`` (sent markers, claims,
dead letters, disabled targets), ``journal`` (leases that recover deliveries of a dead worker),
``ratelimit`` (Telegram limits shared through Redis), ``telegram`` and ``webhook`` (the
senders), ``digest`` (held alerts flushed as one message), ``context`` (the per-process
clients), ``jobs`` (thin RQ entry points) and ``worker`` (the composition root).
"""
