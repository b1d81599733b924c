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
# A live post waits at most this long for company (the Enqueuer adapts: the first post after a
# quiet spell goes at once, a flood fills batches); short, because alerts must arrive within
# ~100 ms, and long enough to hold a steady stream to ~50 jobs a second.
BATCH_MAX_WAIT_SECONDS = 0.02

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

# --- Live sources: bot listener and preview poller ----------------------------------------------
# The bot listener asks only for channel posts; other update types would be fetched and dropped.
BOT_ALLOWED_UPDATES = ("channel_post", "edited_channel_post")
# getUpdates long-poll wait: Telegram answers as soon as an update arrives, so this only bounds
# how long an idle request stays open (well under the HTTP session's 60 s timeout).
BOT_POLL_TIMEOUT_SECONDS = 25
# Album items arrive as separate updates within milliseconds of each other; an album is emitted
# once no new item of it has arrived for this long.
BOT_ALBUM_WAIT_SECONDS = 1.0
# After a failed getUpdates, wait this long, doubling per failure up to the cap: a Bot API outage
# must not turn into a tight retry loop, and recovery should be noticed within a minute.
BOT_RETRY_MIN_SECONDS = 1.0
BOT_RETRY_MAX_SECONDS = 60.0
# On stop, one short getUpdates confirms the last offset so a restart does not replay the batch;
# bounded because shutdown must not hang on an unreachable Bot API.
BOT_CONFIRM_TIMEOUT_SECONDS = 5.0
# A Retry-After larger than this is treated as this: a bogus header must not park a channel for
# days, and an hour is far beyond any rate limit t.me has been seen to ask for.
PREVIEW_RETRY_AFTER_MAX_SECONDS = 3600.0
# Content hashes kept per channel for edit detection. The preview shows ~20 newest ids (more with
# backfill); hashes of posts far below the watermark are never compared again.
PREVIEW_HASHES_KEPT = 500
# A live source's per-channel state (watermark, health) is one hash ``source:<channel>`` plus
# ``source:<channel>:hashes`` (message id -> text hash), and a set lists the channels so
# `tgwatch status` reads them without SCAN. Apart from the post store's ``channel:`` keys: those
# say what was stored, these what a source saw and how its polling goes.
SOURCE_CHANNELS_KEY = KEY_PREFIX + "sources"
SOURCE_STATE_PREFIX = KEY_PREFIX + "source:"

# --- Rule engine: queries, the compiled index, match state -----------------------------------
# A query longer than this is a mistake or an abuse: 2000 characters hold an OR list of ~150 names.
QUERY_MAX_LENGTH = 2000
# Parentheses nest at most this deep: nobody writes deeper by hand, and parsing stays shallow.
QUERY_MAX_NESTING = 20
# Terms per query: past 100 a subscription should be split; bounds the cost of one rule's check.
QUERY_MAX_TERMS = 100
# A prefix shorter than this (`a*`) would match most tokens of every post.
QUERY_PREFIX_MIN_LENGTH = 2
# A user regex is at most this long, and RE2 may spend at most this much memory on its automaton:
# a pattern like `.{1000}x` blows up, and 1 MiB each keeps a few hundred regexes under ~300 MB.
REGEX_MAX_LENGTH = 500
REGEX_MAX_MEM = 1 << 20
# A regex is refused when one scan of a 4,096-character post it does not match costs more than
# this (service.core.query.budget; TGWATCH_LIMIT_REGEX_MS): ordinary regexes cost ~0.02 ms,
# `/.{500}x/` ~15-30 ms, and fifty of those made every post take two seconds.
REGEX_COST_MAX_MS = 1.0
# Highlights kept per match: every hit of a long post, yet a bounded alert payload.
HIGHLIGHTS_MAX = 50
# Rules live in Redis so every worker sees the same set: one hash of subscriptions (id -> JSON),
# one of watched entities, and a counter bumped on every change that workers poll cheaply.
RULES_SUBSCRIPTIONS_KEY = KEY_PREFIX + "rules:subscriptions"
RULES_ENTITIES_KEY = KEY_PREFIX + "rules:entities"
RULES_VERSION_KEY = KEY_PREFIX + "rules:version"
# A rules file is the operator's setup, not a data dump: larger than this is a mistake.
RULES_FILE_MAX_BYTES = 10 * 1024 * 1024
# Rules files nest three levels (subscriptions > item > notify > webhook); deeper is an attack on
# the recursive YAML composer, refused before it runs.
RULES_YAML_MAX_DEPTH = 20
# A broken file reports at most this many problems: enough to fix it, bounded for a hostile one.
RULES_PROBLEMS_MAX = 100
# Workers GET the version at most this often: one cheap command a second, and a change is live
# within the 2 s the rule engine promises (plus the time to compile it).
RULES_CHECK_INTERVAL_SECONDS = 1.0
# Per post (channel/id): the subscriptions any version matched, so an edit alerts only for new
# ones. Edits come within hours or days; a month bounds the keys.
MATCHED_POST_PREFIX = KEY_PREFIX + "matched:"
MATCHED_POST_TTL_SECONDS = 30 * 24 * 3600
# Per (subscription, normalized-text hash): the post that first alerted it, so forwarded copies
# are suppressed as duplicates. Copies spread within days; a week bounds the keys.
ALERTED_TEXT_PREFIX = KEY_PREFIX + "alerted:"
ALERTED_TEXT_TTL_SECONDS = 7 * 24 * 3600
# Alerts that go out, for delivery; capped (approximately, which is cheap) so Redis stays flat.
ALERTS_STREAM = KEY_PREFIX + "alerts"
ALERTS_STREAM_MAXLEN = 100_000
# Each owner's alerts again, in a stream of its own, so GET /v1/alerts is one bounded read
# whatever everyone else's alerts hold; capped like the main stream, for one subscriber.
OWNER_ALERTS_PREFIX = KEY_PREFIX + "owner-alerts:"
OWNER_ALERTED_PREFIX = KEY_PREFIX + "owner-alerted:"
OWNER_ALERTS_MAXLEN = 10_000

# --- Delivery ---------------------------------------------------------------------------------
# Every key the delivery workers write starts with this, so `SCAN tgwatch:delivery:*` shows them.
DELIVERY_KEY_PREFIX = KEY_PREFIX + "delivery:"
# A deactivated target (403 blocked/kicked, webhook 410) is recorded under this prefix and gets
# no more deliveries until the record is deleted (the bot's /start or the API re-enables it).
TARGET_DISABLED_PREFIX = KEY_PREFIX + "target:disabled:"
# The last "chat not found" (and other permanent 400s) per target, for `status` and the API.
TARGET_PROBLEM_PREFIX = KEY_PREFIX + "target:problem:"
# "Sent" markers (alert id + target -> message id) outlive any redelivery an operator might
# trigger; the same window as post dedupe, after which the post itself would not alert again.
DELIVERY_SENT_TTL_SECONDS = SEEN_TTL_SECONDS
# A send claims its delivery for at most this long, so two copies of a job never send at once.
# It must outlast the slowest honest attempt: a webhook timeout (15 s) or a Telegram send with
# its longest in-process wait (10 s) plus a retried request. A claim whose worker died is taken
# over at once (its alive key is gone), so this bounds only a hung, still living worker.
DELIVERY_LEASE_SECONDS = 60
# RQ kills a delivery job running longer than its claim: it is then recovered like a crash.
DELIVERY_JOB_TIMEOUT_SECONDS = DELIVERY_LEASE_SECONDS

# --- Workers: liveness, recovery, scheduling -------------------------------------------------
# A worker process says it is alive every WORKER_HEARTBEAT_SECONDS (from a thread, whatever its
# job does) on a key that lapses after WORKER_ALIVE_TTL_SECONDS: a worker killed mid-job is
# known dead within that time, and its held jobs are back on their queues one tick later — an
# abandoned post batch or delivery is picked up within ~20 s (the goal is 30 s).
WORKER_HEARTBEAT_SECONDS = 3.0
WORKER_ALIVE_TTL_SECONDS = 15
# A worker's maintenance tick (recovery of dead workers' jobs, due retries and delayed jobs,
# due digest flushes) runs this often.
WORKER_TICK_SECONDS = 2
# An idle worker blocks on the posts queue this long, then looks at the others again: the
# longest an idle worker leaves a delivery waiting.
WORKER_IDLE_WAIT_SECONDS = 0.5
# The scheduler's lock (one process enqueues due retries at a time) lapses this soon after its
# holder stops renewing it on its ticks: a dead holder stalls retries for seconds, not minutes.
SCHEDULER_LOCK_SECONDS = 3 * WORKER_TICK_SECONDS
# Reconnecting to Redis after an outage: capped exponential backoff with jitter, so a fleet of
# processes does not hammer a Redis that is coming back.
REDIS_RETRY_MIN_SECONDS = 0.5
REDIS_RETRY_MAX_SECONDS = 10.0
# A supervisor (`tgwatch run`, `tgwatch worker -n N`) restarts a dead worker process after a
# backoff from this to the cap; a child that lived this long resets the backoff.
RESTART_MIN_SECONDS = 1.0
RESTART_MAX_SECONDS = 60.0
RESTART_RESET_AFTER_SECONDS = 60.0
# Deliveries that used up their retries (or failed for good) wait in one list until an operator
# redelivers or deletes them: dropping them would lose alerts, so the list is never trimmed.
DELIVERY_DEAD_KEY = DELIVERY_KEY_PREFIX + "dead"

# --- Telegram delivery ------------------------------------------------------------------------
# Telegram's documented bot limits: ~30 messages/s overall, 1 message/s in one chat, 20
# messages/min in one group. The limiter keeps a 10% margin on the global window because the
# server counts arrival times, which jitter after our clock granted the slot.
TELEGRAM_GLOBAL_PER_SECOND = 30
TELEGRAM_PER_CHAT_INTERVAL_SECONDS = 1.0
TELEGRAM_GROUP_PER_MINUTE = 20
TELEGRAM_LIMIT_MARGIN = 0.1
# A sender sleeps in-process for a limiter slot at most this long; a longer wait (a group's
# minute window, a long 429) gives the job back to the queue to run later instead of holding
# a worker and outliving its lease.
TELEGRAM_MAX_INLINE_WAIT_SECONDS = 10.0
# Network errors and 5xx from the Bot API are retried after these delays (seconds), then the
# alert goes to the dead-letter list.
TELEGRAM_RETRY_SCHEDULE = (2, 10, 30, 120, 600, 1800)
# The excerpt of a post in a Telegram alert: enough context to judge a match, short enough to
# scan a chat full of alerts. The whole message stays under TELEGRAM_MESSAGE_LIMIT regardless.
TELEGRAM_EXCERPT_CHARS = 1000
# Telegram refuses callback_data longer than 64 bytes; buttons whose data would not fit are left
# out rather than sent truncated.
TELEGRAM_CALLBACK_DATA_LIMIT = 64
# "Mute this subscription" from an alert's button lasts this long.
MUTE_BUTTON_SECONDS = 3600

# --- Webhook delivery -------------------------------------------------------------------------
# Versioned payload schema: receivers switch on it; a breaking change gets a new version.
WEBHOOK_SCHEMA = "tgwatch.alert.v1"
# A receiver should answer fast and work asynchronously; 15 s covers a slow one without letting
# a dead endpoint hold a worker.
WEBHOOK_TIMEOUT_SECONDS = 15.0
# Retry delays (seconds) after each failed attempt, ~10 h in all, so an endpoint down for an
# afternoon still gets everything; then the alert goes to the dead-letter list.
WEBHOOK_RETRY_SCHEDULE = (5, 30, 120, 600, 1800, 3600, 10800, 21600)
# Each delay is spread by up to this fraction so retries of many alerts do not arrive together.
WEBHOOK_RETRY_JITTER = 0.2
# Attempts kept in each endpoint's delivery log: enough to debug a day of trouble, bounded.
WEBHOOK_LOG_MAX = 1000
# No retry waits longer than this, whatever a schedule or a Retry-After header says: a bogus
# `Retry-After: inf` (or a typo'd schedule) must not park a delivery forever. A day is far beyond
# any real rate limit, and the last webhook retry is 6 h after the one before.
RETRY_DELAY_MAX_SECONDS = 24 * 3600.0
# A delivery job payload claims at most this many attempts: every schedule is far shorter, and a
# payload claiming more is not one we wrote.
DELIVERY_ATTEMPTS_MAX = 100
# Receivers reject signatures whose timestamp is further than this from their clock (replays).
WEBHOOK_TIMESTAMP_TOLERANCE_SECONDS = 300

# --- Digest and quiet hours -------------------------------------------------------------------
# A "daily" digest is flushed at this local time of the subscriber's time zone.
DIGEST_DAILY_AT = "09:00"
# A digest message lists at most this many alerts; the rest are counted ("and N more").
DIGEST_MAX_ITEMS = 30

# --- Subscribers, bot and HTTP API ------------------------------------------------------------
# A subscriber (``tg:<chat id>`` or ``api:<client>``) is one hash under this prefix, with a set
# of the subscription ids it owns at ``<prefix><id>:subs``; the set below lists them all so an
# operator can enumerate subscribers without SCAN.
SUBSCRIBER_PREFIX = KEY_PREFIX + "subscriber:"
SUBSCRIBERS_KEY = KEY_PREFIX + "subscribers"
# Per Telegram chat, the subscriptions delivering to it: /digest and /quiet re-merge the chat's
# settings into exactly those records instead of scanning every subscription.
SUBSCRIBER_CHAT_SUBS_PREFIX = KEY_PREFIX + "chat-subs:"
# A subscription in "digest" mode for a chat whose /digest is off is still digested, hourly: the
# subscriber asked for a digest of it, and an hour is the middle of the choices.
SUBSCRIPTION_DIGEST_FALLBACK = "1h"
# The preview poller's dynamic channel list (/add_channel, the API), beside TGWATCH_CHANNELS.
POLLER_CHANNELS_KEY = KEY_PREFIX + "poller:channels"
# A chat agrees to an API tenant's alerts by sending the bot a one-time code the tenant got from
# the API: good for an hour (long enough to pass it on, short enough not to linger), 18 random
# bytes (24 characters, fit for a /start deep link), only its SHA-256 stored. Links are a set of
# chats per owner (``subscriber:<owner>:chats``) and a set of owners per chat.
LINK_CODE_PREFIX = KEY_PREFIX + "link-code:"
CHAT_LINKS_PREFIX = KEY_PREFIX + "chat-links:"
LINK_CODE_TTL_SECONDS = 3600
LINK_CODE_BYTES = 18
LINK_CODE_MAX_CHARS = 64
# API keys: hash key id -> JSON {name, owner, admin, sha256, created_at}; the key itself is
# never stored, only its SHA-256 (a random 32-byte key needs no slow hash).
API_KEYS_KEY = KEY_PREFIX + "apikeys"
API_KEY_BYTES = 32
# /test and POST /v1/test look at this many recent posts per channel, across at most this many
# channels: enough to tune a query, bounded so one request stays well under a second.
TEST_POSTS_PER_CHANNEL = 200
TEST_MAX_CHANNELS = 50
# Hits shown by /test (the API returns up to TEST_API_MAX_HITS): a chat message stays readable.
TEST_BOT_MAX_HITS = 5
TEST_API_MAX_HITS = 100
# Pages of GET /v1/alerts and of the delivery log: at most this many items per request.
API_PAGE_MAX = 500
# Request bodies of the API are small JSON documents; anything larger is refused (413).
API_MAX_BODY_BYTES = 256 * 1024
# A request body nests a subscription's targets three levels deep; deeper is refused (422).
API_JSON_MAX_DEPTH = 32
# Names and other free text of a request: a name is for people to read.
API_TEXT_MAX_CHARS = 1000
# Targets of one subscription: a few chats and endpoints; one alert makes a job per target.
SUBSCRIPTION_TARGETS_MAX = 20
# One redelivery request enqueues at most this many dead letters (call again for more), so it
# stays one bounded request.
REDELIVER_MAX = 1000
# --- Budgets per owner (TGWATCH_LIMIT_*) -------------------------------------------------------
# Subscriptions one owner (an API key's owner, a bot chat) may have: far more than a person
# tends, few enough that listing and re-merging them stays one cheap request.
OWNER_SUBSCRIPTIONS_MAX = 500
# Regex terms across one owner's subscriptions: each is measured under REGEX_COST_MAX_MS, so an
# owner's regexes cost at most this many times that per post.
OWNER_REGEXES_MAX = 20
# Query tests (`/test`, POST /v1/test) one API key or chat may start per minute, how long one may
# run before it answers with what it has, and how many posts it may scan: eight parallel tests
# once stalled the API for 14 s.
TEST_PER_MINUTE = 20
TEST_SECONDS_MAX = 2.0
TEST_POSTS_MAX = 5000
# Request budgets (service/store/quotas.py): one counter per budget, caller and minute.
RATE_PREFIX = KEY_PREFIX + "rate:"
# Query tests run on a pool of their own, this many at a time, so the API's other handlers keep
# the shared default pool.
TEST_THREADS = 2
# A mute from an alert's button lasts at most a week: callback data comes from the client and
# could ask for any length.
MUTE_MAX_SECONDS = 7 * 24 * 3600

# --- Quick-start demo ---------------------------------------------------------------------------
# The bundled sample replays in about a second; a demo that has not finished by then is stuck and
# says so rather than hanging a new user's terminal.
DEMO_TIMEOUT_SECONDS = 60.0

# --- Preview channels added at run time -----------------------------------------------------------
# Channels added from the bot or the API are picked up this often by a running poller: one cheap
# SMEMBERS, and a new channel starts within seconds of /add_channel.
PREVIEW_CHANNELS_REFRESH_SECONDS = 5.0

# --- Post stage ---------------------------------------------------------------------------------
# Alerts decided for a post version, kept so a retried batch hands the same alerts to delivery
# instead of deciding again (by then the match state would call them edits). A day covers every
# retry of a job (the last is minutes after the first) with room for an operator's requeue.
DECIDED_PREFIX = KEY_PREFIX + "decided:"
DECIDED_TTL_SECONDS = 24 * 3600

# --- MTProto source -----------------------------------------------------------------------------
# One account follows at most this many channels by default: Telegram lets a user join 500
# channels (1000 with Premium), and an account near that limit gets CHANNELS_TOO_MUCH on joins.
MTPROTO_CHANNELS_PER_ACCOUNT = 500
# A lease on a channel (and on an account) lasts this long unless renewed; a listener that dies
# loses its channels to others within this plus one round. Renewed every third of it, so two
# missed renewals in a row (a Redis hiccup, a stalled loop) still do not lose it.
MTPROTO_LEASE_SECONDS = 30.0
# Catch-up after a restart or a disconnect reads at most this many pages of history per channel:
# a gap longer than that (days of a busy channel) is given up, logged, rather than stalling the
# account's other channels; the newest posts are read first.
MTPROTO_CATCHUP_PAGES = 10
# Messages per history request: Telegram's own maximum for messages.getHistory.
MTPROTO_PAGE_SIZE = 100
# Every channel is re-read from its watermark this often even without a disconnect: Telegram does
# not push every update of big channels reliably, and a history request that finds nothing new
# costs one call. 500 channels every 10 minutes is under one request a second per account.
MTPROTO_RESYNC_SECONDS = 600.0
# A flood wait on resolving or joining longer than this hands the account's channels that still
# wait for it to other accounts instead of leaving them unread that long.
MTPROTO_FLOOD_HANDOFF_SECONDS = 60.0
