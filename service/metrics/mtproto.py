"""The MTProto user-account source's metrics (``Metrics.mtproto``): per account (connected,
channels leased, flood waits, unusable) and per channel (source, lag, post intervals)."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import suppress
from datetime import UTC, datetime

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

# Seconds from an update's arrival to its post being in the enqueuer (claimed, batched).
UPDATE_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


class MtprotoMetrics:
    """Per-account and per-channel metrics of the MTProto source (``Metrics.mtproto``).

    ``account`` labels are the account names of `tgwatch accounts` (a handful); ``channel`` labels
    go through the same bound as every channel label. Gauges of an account or channel this
    process no longer runs are removed, so a dead series never fires an alert.
    """

    def __init__(
        self,
        registry: CollectorRegistry,
        bounded: Callable[[str, str, str], str],
        set_lag: Callable[[str, datetime], None] | None = None,
    ) -> None:
        r = registry
        self._bounded = bounded
        self._set_lag = set_lag  # the shared tgwatch_source_lag_seconds, per channel
        self._unusable: dict[str, str] = {}  # account -> the reason its series carries
        self._sources: dict[str, str] = {}  # channel label -> the source its series carries
        self.account_connected = Gauge(
            "tgwatch_mtproto_account_connected", "1 while the account is connected.",
            ["account"], registry=r, multiprocess_mode="max",
        )  # fmt: skip
        self.account_channels = Gauge(
            "tgwatch_mtproto_account_channels", "Channels the account holds a lease on.",
            ["account"], registry=r, multiprocess_mode="max",
        )  # fmt: skip
        self.account_flood_wait = Gauge(
            "tgwatch_mtproto_account_flood_wait_seconds",
            "The flood wait the account is serving now (0: none).",
            ["account"], registry=r, multiprocess_mode="max",
        )  # fmt: skip
        self.flood_waits = Counter(
            "tgwatch_mtproto_flood_waits", "FLOOD_WAIT answers by account and operation.",
            ["account", "operation"], registry=r,
        )  # fmt: skip
        self.account_last_update = Gauge(
            "tgwatch_mtproto_account_last_update_timestamp_seconds",
            "When the account last received an update.",
            ["account"], registry=r, multiprocess_mode="max",
        )  # fmt: skip
        self.account_unusable = Gauge(
            "tgwatch_mtproto_account_unusable",
            "1 when the account is banned, deactivated or logged out (reason).",
            ["account", "reason"], registry=r, multiprocess_mode="max",
        )  # fmt: skip
        self.update_latency = Histogram(
            "tgwatch_mtproto_update_to_enqueue_seconds",
            "From an update's arrival to its post handed to the queue.",
            buckets=UPDATE_BUCKETS, registry=r,
        )  # fmt: skip
        self.deleted = Counter(
            "tgwatch_mtproto_deleted", "Deleted posts recorded as deleted versions.", registry=r
        )
        self.channel_last_post = Gauge(
            "tgwatch_channel_last_post_timestamp_seconds",
            "Date of the newest post of the channel.",
            ["channel"], registry=r, multiprocess_mode="max",
        )  # fmt: skip
        self.channel_interval = Gauge(
            "tgwatch_channel_usual_interval_seconds",
            "The channel's usual time between posts (moving average).",
            ["channel"], registry=r, multiprocess_mode="max",
        )  # fmt: skip
        self.channel_source = Gauge(
            "tgwatch_channel_source",
            "1 for the source reading the channel (mtproto, or preview as a fallback).",
            ["channel", "source"], registry=r, multiprocess_mode="max",
        )  # fmt: skip

    def _channel(self, channel: str) -> str:
        return self._bounded("mtproto_channel", "channel", channel)

    def connected(self, account: str, up: bool) -> None:
        self.account_connected.labels(account).set(1 if up else 0)

    def channels(self, account: str, count: int) -> None:
        self.account_channels.labels(account).set(count)

    def flood(self, account: str, operation: str, seconds: float) -> None:
        self.flood_waits.labels(account, operation).inc()
        self.account_flood_wait.labels(account).set(seconds)

    def flood_over(self, account: str) -> None:
        self.account_flood_wait.labels(account).set(0)

    def updated(self, account: str, at: float) -> None:
        self.account_last_update.labels(account).set(at)

    def unusable(self, account: str, reason: str | None) -> None:
        """Set the account's unusable reason (None: usable again)."""
        previous = self._unusable.pop(account, None)
        if previous is not None and previous != reason:
            self.account_unusable.remove(account, previous)
        if reason is not None:
            self._unusable[account] = reason
            self.account_unusable.labels(account, reason).set(1)

    def forget_account(self, account: str) -> None:
        """The process stopped running the account: drop its live gauges."""
        for gauge in (self.account_connected, self.account_channels, self.account_flood_wait,
                      self.account_last_update):  # fmt: skip
            with suppress(KeyError):
                gauge.remove(account)

    def lag(self, channel: str, newest_post: float) -> None:
        """The channel was read just now and its newest post is dated ``newest_post``."""
        if self._set_lag is not None:
            self._set_lag(channel, datetime.fromtimestamp(newest_post, UTC))

    def post(self, channel: str, date: float, interval: float | None) -> None:
        label = self._channel(channel)
        self.channel_last_post.labels(label).set(date)
        if interval is not None:
            self.channel_interval.labels(label).set(interval)

    def source(self, channel: str, source: str | None) -> None:
        """The source reading the channel now (None: this process no longer reads it)."""
        label = self._channel(channel)
        previous = self._sources.pop(label, None)
        if previous is not None and previous != source:
            self.channel_source.remove(label, previous)
        if source is None:
            for gauge in (self.channel_last_post, self.channel_interval):
                with suppress(KeyError):
                    gauge.remove(label)
        else:
            self._sources[label] = source
            self.channel_source.labels(label, source).set(1)

    def enqueued_after(self, seconds: float) -> None:
        self.update_latency.observe(max(0.0, seconds))

    def deleted_recorded(self, count: int = 1) -> None:
        self.deleted.inc(count)
