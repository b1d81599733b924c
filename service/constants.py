"""Every queue name, Redis key prefix, TTL and limit in one place, each with its reason."""

from __future__ import annotations

# --- Redis keys -------------------------------------------------------------------------------
# One prefix for every key, so tgwatch can share a Redis with other applications and a user can
# find (or delete) everything it wrote with SCAN tgwatch:*.
KEY_PREFIX = "tgwatch:"

# --- Queues -----------------------------------------------------------------------------------
# Posts from every source go to one queue; deliveries get their own so a slow webhook never
# delays matching.
POSTS_QUEUE = "tgwatch-posts"
DELIVERIES_QUEUE = "tgwatch-deliveries"

# --- Batching ---------------------------------------------------------------------------------
# An RQ job costs ~57 Redis commands and ~4 ms of worker CPU; 100 posts per job makes that
# overhead ~40 us a post while a ~1 KB post batch stays ~100 KB of job data.
BATCH_MAX_POSTS = 100
# A live post waits at most this long for its batch to fill: alerts must arrive within seconds.
BATCH_MAX_WAIT_SECONDS = 0.25

# --- Jobs -------------------------------------------------------------------------------------
# A failed batch is retried this many times (intervals below) before it stays in RQ's failed
# registry with its traceback, where `tgwatch status` shows it.
JOB_RETRY_MAX = 3
JOB_RETRY_INTERVALS = (5, 30, 120)
# Long enough for a 100-post batch with NER switched on, short enough to notice a stuck job.
JOB_TIMEOUT_SECONDS = 300
# Results are not read by anyone; keep them briefly for debugging only.
JOB_RESULT_TTL_SECONDS = 60
# Failed jobs stay for a week so an operator can inspect and requeue them.
JOB_FAILURE_TTL_SECONDS = 7 * 24 * 3600

# --- Dedupe -----------------------------------------------------------------------------------
# A post version (channel, id, text hash) seen within this window is not enqueued again: long
# enough to cover a preview poller and a bot seeing the same post, or a file replayed the next
# day; short enough that the keys do not grow without bound.
SEEN_TTL_SECONDS = 14 * 24 * 3600

# --- Store ------------------------------------------------------------------------------------
# Recent posts kept per channel (all versions of each); enough for /test and `tgwatch posts`,
# bounded so Redis memory stays flat whatever the channel's volume.
RECENT_POSTS_PER_CHANNEL = 1000
# Versions kept per post: edits beyond this are rare and the newest ones matter.
VERSIONS_PER_POST = 20

# --- Set-aside input --------------------------------------------------------------------------
# Malformed items are kept (capped) so they can be inspected with `tgwatch status`/redis-cli.
REJECTS_MAX = 10_000

# --- Telegram ---------------------------------------------------------------------------------
TELEGRAM_API_URL = "https://api.telegram.org"
TELEGRAM_WEB_URL = "https://t.me"
# Telegram refuses messages longer than this many characters.
TELEGRAM_MESSAGE_LIMIT = 4096

# --- Preview poller ---------------------------------------------------------------------------
PREVIEW_DEFAULT_INTERVAL_SECONDS = 60.0
# Spread polls so many channels do not hit t.me in lockstep.
PREVIEW_JITTER_FRACTION = 0.2
# Gap fill pages back at most this many pages per poll, so one huge gap cannot stall a channel.
PREVIEW_MAX_GAP_PAGES = 5
PREVIEW_MAX_CONCURRENCY = 4
PREVIEW_BACKOFF_MAX_SECONDS = 900.0
PREVIEW_TIMEOUT_SECONDS = 20.0
# A preview page is ~50-100 KB; anything far larger is not a preview page.
PREVIEW_MAX_PAGE_BYTES = 5 * 1024 * 1024
