"""One router per module; ``service.bot.app`` joins them in one place."""
