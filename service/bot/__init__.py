"""The subscribers' Telegram bot: aiogram routers (one per module, in ``routers/``) joined in
``app.py``, with access control from ``settings.py`` and HTML replies built by ``replies.py``."""
