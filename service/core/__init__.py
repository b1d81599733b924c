"""The pure core: plain data in, plain data out. Imports no aiogram, redis, rq or httpx."""
