"""Parse a subscription query into a tree, or fail with a QueryError naming the position.

Grammar (NOT binds tighter than AND, AND — also implicit between terms — tighter than OR)::

    query    := or_expr END
    or_expr  := and_expr ("OR" and_expr)*
    and_expr := not_expr ("AND"? not_expr)*
    not_expr := ("NOT" | "-")* primary
    primary  := "(" or_expr ")" | term
    term     := word | word* | =word | "phrase" | =“phrase” | /regex/ | /regex/i
              | #tag | $TICKER | @name | domain:host | channel:name | lang:xx | topic:id | entity:id

Words are normalized and tokenized exactly as post text is (``service.core.text``), so a word
that the tokenizer splits (``cessez-le-feu``, ``China's``) becomes a phrase of its tokens.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import re2

from service import constants
from service.core.memory import BoundedCache
from service.core.query.tree import And, Field, Node, Not, Or, Phrase, Prefix, Regex, Term, Word
from service.core.text import normalize, normalize_host, words

__all__ = [
    "And",
    "Field",
    "Node",
    "Not",
    "Or",
    "Phrase",
    "Prefix",
    "QueryError",
    "Regex",
    "Term",
    "Word",
    "compile_regex",
    "describe",
    "parse",
    "render",
    "sigil_value",
    "terms",
]


class QueryError(ValueError):
    """A query that does not parse: ``message`` says what was expected, ``position`` where."""

    def __init__(self, message: str, position: int) -> None:
        super().__init__(f"{message} at {position}")
        self.message = message
        self.position = position


# Field names as written before ":" (lower case), and the sigils of entity fields.
FIELDS = ("domain", "channel", "lang", "topic", "entity")
SIGILS = {"#": "tag", "$": "cashtag", "@": "mention"}
OPERATORS = ("AND", "OR", "NOT")
_QUOTES = {'"': '"', "«": "»", "“": "”", "„": "“"}
_RUN_RE = re.compile(r'[^\s()"«“„]+')
_FIELD_NAME_RE = re.compile(r"[A-Za-z]+")
_SIGIL_VALUE_RE = re.compile(r"[^\W]+")  # letters, digits and "_", as Telegram's entities allow
_LANG_RE = re.compile(r"[a-z]{2,3}")
_ID_RE = re.compile(r"[\w.\-]+")
_HOST_RE = re.compile(r"[\w.\-]+")


@dataclass(frozen=True, slots=True)
class _Tok:
    kind: str  # "(", ")", "AND", "OR", "NOT", "TERM", "END"
    position: int
    term: Term | None = None
    text: str = ""


def compile_regex(pattern: str, ignore_case: bool) -> Any:
    """Compile a query regex with RE2 under the memory limit; re2.error when RE2 refuses it."""
    return _compile_regex(pattern, ignore_case)


def _compile_regex(pattern: str, ignore_case: bool) -> Any:
    key = (pattern, ignore_case)
    found = _REGEXES.get(key)
    if found is None:
        found = _REGEXES.put(key, _new_regex(pattern, ignore_case))
    return found


# Compiled regexes kept per process, bounded in bytes: RE2 allots each up to REGEX_MAX_MEM for
# its program and the DFA it builds while matching, so each is charged that much.
REGEX_CACHE_BYTES = 64 * constants.REGEX_MAX_MEM
_REGEXES: BoundedCache[tuple[str, bool], Any] = BoundedCache(
    REGEX_CACHE_BYTES, lambda key, _regex: constants.REGEX_MAX_MEM
)


def _new_regex(pattern: str, ignore_case: bool) -> Any:
    options = re2.Options()
    options.max_mem = constants.REGEX_MAX_MEM
    options.case_sensitive = not ignore_case
    options.log_errors = False
    return re2.compile(pattern.encode("utf-8"), options)


def _regex_error(exc: Exception) -> str:
    detail = exc.args[0] if exc.args else ""
    if isinstance(detail, bytes):
        detail = detail.decode("utf-8", "replace")
    return str(detail) or "not a valid pattern"


class _Lexer:
    def __init__(self, text: str) -> None:
        self.text = text
        self.i = 0

    def tokens(self) -> list[_Tok]:
        out: list[_Tok] = []
        while True:
            tok = self._next()
            out.append(tok)
            if tok.kind == "END":
                return out

    def _next(self) -> _Tok:
        text = self.text
        while self.i < len(text) and text[self.i].isspace():
            self.i += 1
        start = self.i
        if start >= len(text):
            return _Tok("END", start)
        char = text[start]
        if char in "()":
            self.i += 1
            return _Tok(char, start, text=char)
        if char == "-" and start + 1 < len(text) and not text[start + 1].isspace():
            self.i += 1
            return _Tok("NOT", start, text="-")
        if char in _QUOTES:
            return _Tok("TERM", start, self._phrase(start, exact=False))
        if char == "/":
            return _Tok("TERM", start, self._regex(start))
        if char == "=":
            self.i += 1
            if self.i < len(text) and text[self.i] in _QUOTES:
                return _Tok("TERM", start, self._phrase(self.i, exact=True))
            raw = self._run()
            if not raw:
                raise QueryError('expected a word or a phrase after "="', self.i)
            return _Tok("TERM", start, self._word(raw, start, exact=True))
        raw = self._run()
        if raw in OPERATORS:
            return _Tok(raw, start, text=raw)
        if char in SIGILS:
            return _Tok("TERM", start, self._sigil(raw, start))
        return _Tok("TERM", start, self._word(raw, start, exact=False))

    def _run(self) -> str:
        """Read up to whitespace, a parenthesis or a quote."""
        found = _RUN_RE.match(self.text, self.i)
        run = found.group() if found else ""
        self.i += len(run)
        return run

    def _phrase(self, start: int, exact: bool) -> Phrase:
        close = self.text.find(_QUOTES[self.text[start]], start + 1)
        if close < 0:
            raise QueryError(f"unterminated phrase: no closing {_QUOTES[self.text[start]]}", start)
        self.i = close + 1
        words = _norms(self.text[start + 1 : close])
        if not words:
            raise QueryError("empty phrase: it has no letters or digits", start)
        return Phrase(words, exact=exact, position=start)

    def _regex(self, start: int) -> Regex:
        text = self.text
        i = start + 1
        chars: list[str] = []
        while i < len(text) and text[i] != "/":
            if text[i] == "\\" and i + 1 < len(text) and text[i + 1] == "/":
                chars.append("/")
                i += 2
                continue
            if text[i] == "\\" and i + 1 < len(text):
                chars.append(text[i : i + 2])
                i += 2
                continue
            chars.append(text[i])
            i += 1
        if i >= len(text):
            raise QueryError("unterminated regex: no closing /", start)
        pattern = "".join(chars)
        self.i = i + 1
        flags = self._run()
        if flags not in ("", "i"):
            raise QueryError(f'unknown regex flag "{flags}" (only "i")', i + 1)
        if not pattern:
            raise QueryError("empty regex", start)
        if len(pattern) > constants.REGEX_MAX_LENGTH:
            raise QueryError(
                f"regex too long: {len(pattern)} characters, at most {constants.REGEX_MAX_LENGTH}",
                start,
            )
        try:
            compile_regex(pattern, flags == "i")
        except re2.error as exc:
            raise QueryError(f"regex refused by RE2: {_regex_error(exc)}", start) from None
        return Regex(pattern, ignore_case=flags == "i", position=start)

    def _sigil(self, raw: str, start: int) -> Field:
        name = SIGILS[raw[0]]
        body = raw[1:]
        if not body or not _SIGIL_VALUE_RE.fullmatch(sigil_value(body)):
            raise QueryError(f'expected letters, digits or "_" after "{raw[0]}"', start + 1)
        return Field(name, sigil_value(body), position=start)

    def _word(self, raw: str, start: int, exact: bool) -> Term:
        name, colon, value = raw.partition(":")
        if colon and _FIELD_NAME_RE.fullmatch(name) and value:
            return _field(name.lower(), value, start)
        if raw.endswith("*"):
            body = raw[:-1]
            if "*" in body:
                raise QueryError('"*" may only end a word', start + raw.index("*"))
            norms = _norms(body)
            if len(norms) != 1:
                raise QueryError("a prefix must be a single word before *", start)
            if len(norms[0]) < constants.QUERY_PREFIX_MIN_LENGTH:
                raise QueryError(
                    f"prefix too short: at least {constants.QUERY_PREFIX_MIN_LENGTH} letters "
                    "before *",
                    start,
                )
            return Prefix(norms[0], position=start)
        if "*" in raw:
            raise QueryError('"*" may only end a word', start + raw.index("*"))
        words = _norms(raw)
        if not words:
            raise QueryError(f'nothing to match in "{raw}": no letters or digits', start)
        if len(words) == 1:
            return Word(words[0], exact=exact, position=start)
        return Phrase(words, exact=exact, position=start)


def _norms(text: str) -> tuple[str, ...]:
    """The normalized tokens of query text, exactly as ``tokenize`` gives them for post text."""
    return tuple(words(text))


def sigil_value(body: str) -> str:
    """The normalized value of a #tag, $TICKER or @name (query and entity side alike)."""
    return normalize(body)


def _field(name: str, value: str, start: int) -> Field:
    at = start + len(name) + 1
    if name not in FIELDS:
        known = ", ".join(f"{field}:" for field in FIELDS)
        raise QueryError(f'unknown field "{name}:" (known: {known})', start)
    if name == "domain":
        host = normalize_host(value.removeprefix("*."))
        if not _HOST_RE.fullmatch(host) or "." not in host.strip("."):
            raise QueryError('expected a host name like example.com after "domain:"', at)
        return Field(name, host, position=start)
    if name == "channel":
        channel = value.removeprefix("@").lower()
        if not _ID_RE.fullmatch(channel.replace("/", "")):
            raise QueryError('expected a channel username after "channel:"', at)
        return Field(name, channel, position=start)
    if name == "lang":
        lang = value.lower()
        if not _LANG_RE.fullmatch(lang):
            raise QueryError('expected a 2-letter language code (en, ru) after "lang:"', at)
        return Field(name, lang, position=start)
    if not _ID_RE.fullmatch(value):
        raise QueryError(f'expected an id (letters, digits, "_", "-", ".") after "{name}:"', at)
    return Field(name, value.casefold() if name == "topic" else value, position=start)


class _Parser:
    def __init__(self, tokens: list[_Tok]) -> None:
        self.tokens = tokens
        self.k = 0
        self.depth = 0
        self.terms = 0

    @property
    def tok(self) -> _Tok:
        return self.tokens[self.k]

    def parse(self) -> Node:
        node = self._or()
        if self.tok.kind == ")":
            raise QueryError('unbalanced ")"', self.tok.position)
        if self.tok.kind != "END":  # pragma: no cover - every other token starts a term
            raise QueryError(f'unexpected "{self.tok.text}"', self.tok.position)
        return node

    def _or(self) -> Node:
        children = [self._and()]
        while self.tok.kind == "OR":
            self.k += 1
            children.append(self._and(after="OR"))
        return children[0] if len(children) == 1 else Or(tuple(children))

    def _and(self, after: str | None = None) -> Node:
        children = [self._not(after)]
        while self.tok.kind in ("AND", "NOT", "(", "TERM"):
            if self.tok.kind == "AND":
                self.k += 1
                children.append(self._not("AND"))
            else:
                children.append(self._not(None))
        return children[0] if len(children) == 1 else And(tuple(children))

    def _not(self, after: str | None) -> Node:
        negations = 0
        while self.tok.kind == "NOT":
            after = self.tok.text
            negations += 1
            self.k += 1
        node = self._primary(after)
        # NOT NOT x is x; the loop above keeps long chains of "-" from recursing.
        return Not(node) if negations % 2 else node

    def _primary(self, after: str | None) -> Node:
        tok = self.tok
        if tok.kind == "(":
            self.depth += 1
            if self.depth > constants.QUERY_MAX_NESTING:
                raise QueryError(
                    f"nesting too deep: at most {constants.QUERY_MAX_NESTING} parentheses",
                    tok.position,
                )
            self.k += 1
            if self.tok.kind == ")":
                raise QueryError('empty parentheses: expected a term after "("', tok.position)
            node = self._or()
            if self.tok.kind != ")":
                raise QueryError('unbalanced "("', tok.position)
            self.k += 1
            self.depth -= 1
            return node
        if tok.kind == "TERM" and tok.term is not None:
            self.terms += 1
            if self.terms > constants.QUERY_MAX_TERMS:
                raise QueryError(
                    f"too many terms: at most {constants.QUERY_MAX_TERMS}", tok.position
                )
            self.k += 1
            return tok.term
        where = f' after "{after}"' if after else ""
        if tok.kind == "END":
            raise QueryError(f"expected a term{where}, found the end", tok.position)
        if tok.kind == ")":
            if after is None and self.k == 0:
                raise QueryError('unbalanced ")"', tok.position)
            raise QueryError(f'expected a term{where}, found ")"', tok.position)
        raise QueryError(f'expected a term{where}, found "{tok.text}"', tok.position)


# Parsed trees are immutable: a query is parsed once while it is in this cache (validating a rule
# set and compiling it parse the same queries). Bounded in bytes: a tree holds ~300 bytes plus ~28
# per character of the query (measured with ``memory.deep_size``); a worker keeps the compiled
# form (``index.py``), not the tree, so this only has to bridge a validation and a compile.
PARSED_CACHE_BYTES = 32 * 1024 * 1024
_PARSED: BoundedCache[str, Node] = BoundedCache(
    PARSED_CACHE_BYTES, lambda query, _tree: 300 + 28 * len(query)
)
_PLAIN_QUERY_RE = re.compile(r"\s*[^\W_]+(?:\s+[^\W_]+)*\s*")
_CHUNK_RE = re.compile(r"\S+")


def parse(query: str, *, keep: bool = True) -> Node:
    """Parse ``query`` into its tree; raises QueryError, and nothing else, when it cannot.
    ``keep=False`` does not add the tree to the cache (a compile, which keeps its own result)."""
    tree = _PARSED.get(query)
    if tree is None:
        tree = _parse(query)
        if keep:
            _PARSED.put(query, tree)
    return tree


def _plain(query: str) -> Node | None:
    """The tree of a query of plain words only (the commonest kind) without the lexer: the same
    tree the parser builds, or None for anything else."""
    if not _PLAIN_QUERY_RE.fullmatch(query):
        return None
    words: list[Node] = []
    for found in _CHUNK_RE.finditer(query):
        raw, start = found.group(), found.start()
        norms = _norms(raw)
        if raw in OPERATORS or not norms or len(words) >= constants.QUERY_MAX_TERMS:
            return None
        words.append(
            Word(norms[0], position=start) if len(norms) == 1 else Phrase(norms, position=start)
        )
    return words[0] if len(words) == 1 else And(tuple(words))


def _parse(query: str) -> Node:
    if len(query) > constants.QUERY_MAX_LENGTH:
        raise QueryError(
            f"query too long: {len(query)} characters, at most {constants.QUERY_MAX_LENGTH}",
            constants.QUERY_MAX_LENGTH,
        )
    if not query.strip():
        raise QueryError("empty query", 0)
    try:
        query.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise QueryError("not valid text: a lone surrogate character", exc.start) from None
    return _plain(query) or _Parser(_Lexer(query).tokens()).parse()


def terms(node: Node) -> list[tuple[Term, bool]]:
    """Every term of the tree with whether it counts positively (under an even number of NOTs),
    in order (walked with a stack: a recursive closure would be a reference cycle)."""
    out: list[tuple[Term, bool]] = []
    stack: list[tuple[Node, bool]] = [(node, True)]
    while stack:
        item, positive = stack.pop()
        if isinstance(item, Not):
            stack.append((item.child, not positive))
        elif isinstance(item, And | Or):
            stack.extend((child, positive) for child in reversed(item.children))
        else:
            out.append((item, positive))
    return out


def render(node: Node, indent: int = 0) -> list[str]:
    """The tree as indented lines, for ``tgwatch rules explain``."""
    pad = "  " * indent
    if isinstance(node, And | Or):
        lines = [f"{pad}{'AND' if isinstance(node, And) else 'OR'}"]
        for child in node.children:
            lines.extend(render(child, indent + 1))
        return lines
    if isinstance(node, Not):
        return [f"{pad}NOT", *render(node.child, indent + 1)]
    return [f"{pad}{describe(node)}"]


def describe(term: Term) -> str:
    """One term as a short line: its kind and normalized value."""
    if isinstance(term, Word):
        return f"word{' (exact)' if term.exact else ''} {term.norm!r}"
    if isinstance(term, Prefix):
        return f"prefix {term.norm!r}*"
    if isinstance(term, Phrase):
        return f"phrase{' (exact)' if term.exact else ''} {' '.join(term.words)!r}"
    if isinstance(term, Regex):
        return f"regex /{term.pattern}/{'i' if term.ignore_case else ''}"
    return f"{term.name}:{term.value}"
