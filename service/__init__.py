"""tgwatch: real-time monitoring of Telegram channels."""

__version__ = "0.1.0"
