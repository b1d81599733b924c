"""Idle memory of a worker, per component: what each part adds to the resident set.

Usage: ``python scripts/bench_memory.py [--rules 1000,100000]``

Each line is measured in a fresh process (resident set from /proc, after a collection), adding
one component at a time the way a worker builds them: the interpreter with the worker's imports,
lingua's language models (``TGWATCH_LANGUAGE_ACCURACY`` high and low), pymorphy's dictionaries,
the topic model, and a compiled rule set of each size (``bench_common.sample_rules``).
"""

from __future__ import annotations

import argparse
import gc
import json
import subprocess
import sys
from pathlib import Path

STEPS = ("imports", "language high", "language low", "morphology", "topics", "rules")


def rss_mb() -> float:
    gc.collect()
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def measure(step: str, rules: int) -> dict[str, float]:
    """Run in a child: the resident set before and after the component ``step``."""
    import workers.context  # noqa: F401 - the worker's imports (no aiogram without a token)

    found = {"before": rss_mb()}
    if step == "language high":
        from service.core.enrich.language import LanguageDetector

        LanguageDetector(accuracy="high")
    elif step == "language low":
        from service.core.enrich.language import LanguageDetector

        LanguageDetector(accuracy="low")
    elif step == "morphology":
        from service.core.morphology import lemmas

        lemmas("санкции")
        lemmas("україни")
    elif step == "topics":
        from service.core.enrich.topic_model import load_default_model
        from service.core.enrich.topics import TopicClassifier, load_taxonomy

        TopicClassifier(load_taxonomy(None), load_default_model())
    elif step == "rules":
        from bench_common import sample_rules

        from service.core.morphology import lemmas
        from service.core.query.index import RuleIndex

        lemmas("санкции")  # both dictionaries loaded: they are the line above, not the rules'
        lemmas("україни")
        ruleset = sample_rules(rules)
        found["before"] = rss_mb()
        index = RuleIndex.build(ruleset)
        found["after"] = rss_mb()
        del index
        return found
    found["after"] = rss_mb()
    return found


def child(step: str, rules: int) -> dict[str, float]:
    command = [sys.executable, __file__, "--child", step, "--rules", str(rules)]
    done = subprocess.run(command, capture_output=True, text=True, check=True)
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rules", default="1000,100000")
    parser.add_argument("--child", default=None)
    args = parser.parse_args()
    if args.child is not None:
        print(json.dumps(measure(args.child, int(args.rules))))
        return
    imports = child("imports", 0)
    print(f"interpreter and a worker's imports: {imports['before']:.0f} MB")
    for step in STEPS[1:-1]:
        try:
            found = child(step, 0)
        except subprocess.CalledProcessError:  # a version without this component or option
            print(f"{step}: not available")
            continue
        print(f"{step}: +{found['after'] - found['before']:.0f} MB")
    for size in (int(part) for part in args.rules.split(",")):
        found = child("rules", size)
        added = found["after"] - found["before"]
        print(f"{size:,} rules compiled: +{added:.0f} MB ({added / size * 1000:.2f} MB per 1k)")


if __name__ == "__main__":
    main()
