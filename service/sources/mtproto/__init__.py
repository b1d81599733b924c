"""The MTProto user-account source: real-time posts of channels read through user accounts.

``client`` is the one narrow interface the source uses to talk to Telegram, ``telethon_client``
its implementation over Telethon (imported only by processes that run this source), ``mapping``
turns Telethon's messages into posts, ``pool`` shares the watch list between accounts through
leases in Redis, ``account`` runs one account, and ``listener`` is what `tgwatch listen --source
mtproto` starts. Nothing in this package imports Telethon at import time except the two modules
that are about Telethon itself.
"""
