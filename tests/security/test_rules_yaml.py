"""Finding 6 (rules files): aliases, tags and deep nesting are refused, and every loader error —
YAML or not — is one ``file:line`` problem, never a traceback or a blown-up process."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from click.testing import CliRunner

from service.core.rules import RulesError, load_rules, parse_rules

# The 576-byte "billion laughs" of the issue: nine levels of nine aliases (9^9 strings).
BOMB = "\n".join(
    ["subscriptions:", "  - id: a", "    query: x", '    notify: &l0 ["lol"]']
    + [f"  - id: b{i}\n    query: x\n    notify: &l{i} [{', '.join([f'*l{i - 1}'] * 9)}]"
       for i in range(1, 10)]
)  # fmt: skip


def _problems(text: str) -> list[str]:
    with pytest.raises(RulesError) as caught:
        parse_rules(text, "rules.yaml")
    return [str(problem) for problem in caught.value.problems]


def test_a_small_alias_expansion_is_refused_with_its_line() -> None:
    text = 'subscriptions:\n  - id: a\n    query: &q "lavrov"\n  - id: b\n    query: *q\n'
    problems = _problems(text)
    assert any(p.startswith("line 3:") and "anchor" in p for p in problems), problems
    assert any(p.startswith("line 5:") and "alias" in p for p in problems), problems


def test_the_alias_bomb_is_refused_in_a_process_capped_at_512_mib(tmp_path: Path) -> None:
    path = tmp_path / "bomb.yaml"
    path.write_text(BOMB, encoding="utf-8")
    assert len(BOMB.encode()) < 1024
    script = textwrap.dedent(
        f"""
        import resource, sys
        resource.setrlimit(resource.RLIMIT_AS, (512 << 20, 512 << 20))
        from service.core.rules import RulesError, load_rules
        try:
            load_rules(__import__("pathlib").Path({str(path)!r}))
        except RulesError as exc:
            print(exc.problems[0])
            sys.exit(3)
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 3, done.stderr[-2000:]
    assert "anchor" in done.stdout or "alias" in done.stdout


@pytest.mark.parametrize(
    ("text", "line", "fragment"),
    [
        ("subscriptions:\n  - id: a\n    query: !!python/object:os.system echo\n", 3, "tag"),
        ("subscriptions:\n  - id: a\n    query: !!binary aGVsbG8=\n", 3, "tag"),
        ("subscriptions:\n  - id: a\n    query: !custom x\n", 3, "tag"),
        ("subscriptions: !!set {a, b}\n", 1, "tag"),
        ("subscriptions:\n  - id: a\n    query: x\n    paused: " + "[" * 5000 + "\n", 4, "deep"),
        ("subscriptions:\n  - id: a\n    query: x\n    notify: " + "{a: " * 3000 + "\n", 4, "deep"),
        ("subscriptions:\n  - id: a\n    query: x\n  - id: b\n    query: 'x\x07'\n", 5, "YAML"),
        ("subscriptions:\n  - id: a\n    query: [unclosed\n", 4, "YAML"),
        ("subscriptions:\n  - id: a\n    query: x\n    paused: 2001-12-40\n", 4, "cannot be read"),
        ("subscriptions:\n  - id: a\n    query: x\n  - id: b\n    query: '\ud800'\n", 5, "lone"),
    ],
)
def test_loader_errors_are_problems_with_a_line(text: str, line: int, fragment: str) -> None:
    problems = _problems(text)
    assert problems and problems[0].startswith(f"line {line}:"), problems
    assert fragment.lower() in problems[0].lower(), problems


def test_undecodable_file_names_its_line(tmp_path: Path) -> None:
    path = tmp_path / "rules.yaml"
    path.write_bytes(b"subscriptions:\n  - id: a\n    query: \xff\xfe\n")
    with pytest.raises(RulesError) as caught:
        load_rules(path)
    assert str(caught.value.problems[0]).startswith("line 3:")


def test_rules_check_prints_file_line_and_exits_1(tmp_path: Path) -> None:
    from service.commands.rules import rules

    path = tmp_path / "rules.yaml"
    path.write_text(BOMB, encoding="utf-8")
    result = CliRunner().invoke(rules, ["check", str(path)])
    assert result.exit_code == 1
    first = result.stderr.splitlines()[0]
    assert first.startswith(f"{path}:4: ") and "Traceback" not in result.output
