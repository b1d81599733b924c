"""Metric names: those the dashboard and alert rules query, those tgwatch defines or exports.

A test helper: the deploy-file tests check every queried name is defined in service/metrics/,
and an end-to-end test can check that a running service exports them all, with
``missing_from_exposition(scraped_text)``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
METRICS_PACKAGE = ROOT / "service" / "metrics"
DASHBOARDS_DIR = ROOT / "deploy" / "grafana" / "dashboards"
ALERT_RULES = ROOT / "deploy" / "prometheus" / "alerts.yml"

NAME = re.compile(r"\btgwatch_[a-z0-9_]*[a-z0-9]")
# A quoted metric name in service/metrics/, e.g. "tgwatch_posts_seen".
DEFINED = re.compile(r"\"(tgwatch_[a-z0-9_]+)\"")
# Sample names derived from a family name, by metric type.
SUFFIXES = ("_total", "_bucket", "_count", "_sum", "_created")


def _walk_exprs(node: Any) -> Iterator[str]:
    """Every PromQL string in a dashboard: targets' ``expr`` and query variables' queries."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ("expr", "definition", "query") and isinstance(value, str):
                yield value
            else:
                yield from _walk_exprs(value)
    elif isinstance(node, list):
        for item in node:
            yield from _walk_exprs(item)


def dashboard_expressions() -> list[str]:
    exprs: list[str] = []
    for path in sorted(DASHBOARDS_DIR.glob("*.json")):
        exprs.extend(_walk_exprs(json.loads(path.read_text(encoding="utf-8"))))
    return exprs


def alert_expressions() -> list[str]:
    rules = yaml.safe_load(ALERT_RULES.read_text(encoding="utf-8"))
    return [rule["expr"] for group in rules["groups"] for rule in group["rules"]]


def metric_names_used_by_dashboards_and_alerts() -> set[str]:
    """Sample names as written in the queries (``tgwatch_poll_duration_seconds_bucket``...)."""
    names: set[str] = set()
    for expr in dashboard_expressions() + alert_expressions():
        names.update(NAME.findall(expr))
    return names


def defined_metric_families() -> set[str]:
    """Family names defined in service/metrics/ (counters without their ``_total``)."""
    return {
        name
        for module in sorted(METRICS_PACKAGE.glob("*.py"))
        for name in DEFINED.findall(module.read_text(encoding="utf-8"))
    }


def family_of(sample_name: str, families: set[str]) -> str | None:
    """The family a sample name belongs to, accepting the _total/_bucket/_count/_sum suffixes."""
    if sample_name in families:
        return sample_name
    for suffix in SUFFIXES:
        if sample_name.endswith(suffix) and sample_name.removesuffix(suffix) in families:
            return sample_name.removesuffix(suffix)
    return None


def undefined_names(used: set[str] | None = None) -> set[str]:
    """Queried names that service/metrics/ does not define."""
    families = defined_metric_families()
    used = metric_names_used_by_dashboards_and_alerts() if used is None else used
    return {name for name in used if family_of(name, families) is None}


def exported_sample_names(exposition: str) -> set[str]:
    """Names of the samples in a Prometheus text exposition (lines with values only)."""
    names: set[str] = set()
    for line in exposition.splitlines():
        if line and not line.startswith("#"):
            match = re.match(r"[a-zA-Z_:][a-zA-Z0-9_:]*", line)
            if match:
                names.add(match.group(0))
    return names


def declared_sample_names(exposition: str) -> set[str]:
    """Sample names a text exposition declares with ``# TYPE``, with or without samples."""
    names: set[str] = set()
    for match in re.finditer(r"^# TYPE (\S+) (\S+)$", exposition, re.MULTILINE):
        name, kind = match.groups()
        if kind in ("histogram", "summary"):
            names.update(name + suffix for suffix in ("_bucket", "_count", "_sum"))
        names.add(name)
    return names


def missing_from_exposition(exposition: str, *, strict: bool = True) -> set[str]:
    """Names the dashboard and alerts query that ``exposition`` does not export.

    Strict: a family declared (``# TYPE``) but without any sample yet counts as missing, since a
    query over it returns nothing (a labelled counter such as ``tgwatch_source_errors_total``
    has no sample until the first error). Not strict: declared is enough.
    """
    exported = exported_sample_names(exposition)
    if not strict:
        exported |= declared_sample_names(exposition)
    return metric_names_used_by_dashboards_and_alerts() - exported


# --- label values ------------------------------------------------------------------------------
# Labels whose values are data (a channel, a host), not codes the code chooses from a list.
FREE_LABELS = frozenset({"channel", "job", "instance", "le", "version", "python", "quantile"})
MATCHER = re.compile(r"(tgwatch_[a-z0-9_]+)\{([^}]*)\}")
LABEL = re.compile(r'(\w+)\s*(=~|!~|!=|=)\s*"([^"]*)"')
SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)")


def samples(exposition: str) -> list[tuple[str, dict[str, str], float]]:
    """Every sample of a text exposition: name, labels, value."""
    found = []
    for line in exposition.splitlines():
        match = SAMPLE.match(line)
        if match is None or line.startswith("#"):
            continue
        name, raw, value = match.groups()
        labels = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', raw or ""))
        try:
            found.append((name, labels, float(value)))
        except ValueError:
            continue
    return found


def queried_label_values() -> list[tuple[str, str, str, str]]:
    """(metric, label, operator, value) of every label matcher with a fixed code value in the
    dashboard and alert queries (Grafana variables and data labels left out)."""
    found = []
    for expr in dashboard_expressions() + alert_expressions():
        for metric, inside in MATCHER.findall(expr):
            for label, op, value in LABEL.findall(inside):
                if label not in FREE_LABELS and "$" not in value and op in ("=", "=~"):
                    found.append((metric, label, op, value))
    return found


def promtool_input_series() -> list[tuple[str, dict[str, str]]]:
    """The input series of the promtool rule tests: name and labels (job/instance dropped)."""
    path = ALERT_RULES.parent / "alerts_test.yml"
    document = yaml.safe_load(path.read_text(encoding="utf-8"))
    found = []
    for test in document["tests"]:
        for item in test.get("input_series", []):
            match = re.match(r"([a-z_:][a-z0-9_:]*)(?:\{(.*)\})?$", item["series"])
            assert match is not None, item["series"]
            labels = dict(re.findall(r'(\w+)="([^"]*)"', match.group(2) or ""))
            found.append(
                (match.group(1), {k: v for k, v in labels.items() if k not in FREE_LABELS})
            )
    return found
