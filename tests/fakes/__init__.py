"""Local stand-ins for parties the tests cannot reach (Telegram's servers)."""
