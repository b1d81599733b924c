"""Delivery: alerts leave the post stage as jobs on the deliveries queue and reach Telegram chats
and signed webhooks here, within Telegram's limits, retried, and never shown twice.

One module per concept: ``context`` (stores, senders and clients of a worker process),
``dispatch`` (one delivery from start to settled), ``once`` (claim, send, mark or release, for
every sender), ``telegram`` and ``webhook`` (the senders), ``digest`` (held alerts flushed as one
message) and ``ratelimit`` (Telegram's limits shared through Redis). The delivery state they
keep is in ``service.store`` (deliveries, digests); the jobs' entry points in ``workers.jobs``.
"""
