"""Text normalization and tokens: the one definition shared by queries, rules and enrichment.

Text and queries are normalized the same way: NFKC, casefold, ``ё``→``е``, diacritics removed
from Latin letters (``pétrole``→``petrole``) but not from Cyrillic (``й`` stays). Tokens are
maximal runs of Unicode letters and digits; everything else separates them.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache

# Letters and digits (\w without the underscore), as one regex: runs of them are tokens.
TOKEN_RE = re.compile(r"[^\W_]+")
_TOKEN_RE = TOKEN_RE


# Characters other than ASCII and Cyrillic, which may carry diacritics to remove.
_NEEDS_FOLDING = re.compile(r"[^\x00-\x7f\u0400-\u04ff]")


@lru_cache(maxsize=4096)
def _fold_char(char: str) -> str:
    """Fold one already-casefolded character: Latin diacritics off, ё→е, Cyrillic kept."""
    if char.isascii():
        return char
    if char == "ё":
        return "е"
    decomposed = unicodedata.normalize("NFD", char)
    base = decomposed[0]
    if "LATIN" in unicodedata.name(base, ""):
        return "".join(c for c in decomposed if not unicodedata.combining(c))
    return char


def normalize(text: str) -> str:
    """Normalize text for matching. The result has the same length as the NFKC+casefold form
    only where no folding changes length; use ``tokenize`` to keep offsets into the original."""
    folded = unicodedata.normalize("NFKC", text).casefold()
    if folded.isascii():
        return folded
    if _NEEDS_FOLDING.search(folded) is None:  # ASCII and Cyrillic only: just ё→е
        return folded.replace("ё", "е")
    return "".join(_fold_char(char) for char in folded)


def normalize_token(token: str) -> str:
    """Normalize a single token (a query word or a token from text)."""
    return normalize(token)


@dataclass(frozen=True, slots=True)
class Token:
    """A token of the original text: its normalized form and its span in the original string."""

    norm: str
    start: int
    end: int


def tokenize(text: str) -> list[Token]:
    """Split ``text`` into tokens with spans into ``text`` itself (not the normalized form).

    Runs of letters and digits are found in the original string, then each is normalized on its
    own, so highlights can point at what the reader sees. A run that normalization splits (a
    ligature or a compatibility character with punctuation in it) yields several tokens sharing
    the run's span.
    """
    tokens: list[Token] = []
    append = tokens.append
    for match in _TOKEN_RE.finditer(text):
        norms = run_norms(match.group())
        start, end = match.span()
        if len(norms) == 1:  # nearly always: avoid a generator per token
            append(Token(norms[0], start, end))
        else:
            tokens.extend(Token(norm, start, end) for norm in norms)
    return tokens


@lru_cache(maxsize=200_000)
def run_norms(run: str) -> tuple[str, ...]:
    """The normalized token(s) of one run of letters and digits, cached: words repeat across
    posts, so most runs are normalized once per process. Usually one; a run that normalization
    splits (a ligature or compatibility character with punctuation in it) gives several."""
    norm = normalize(run)
    if _TOKEN_RE.fullmatch(norm):
        return (norm,)
    return tuple(_TOKEN_RE.findall(norm))


def words(text: str) -> list[str]:
    """The normalized tokens of ``text``, without spans (no Token objects: cheaper)."""
    return [norm for run in _TOKEN_RE.findall(text) for norm in run_norms(run)]


_CYRILLIC_RE = re.compile(r"[\u0400-\u04FF]")


def is_cyrillic(token: str) -> bool:
    """True when a token contains Cyrillic letters (and so matches by lemma)."""
    return _CYRILLIC_RE.search(token) is not None


def normalize_host(host: str) -> str:
    """A host name as compared by ``domain:``: lower case, no trailing dot, IDNA (punycode) form,
    so ``Президент.рф`` in a link and ``xn--d1abbgf6aiiy.xn--p1ai`` in a query are the same."""
    host = host.strip().rstrip(".").lower()
    if host.isascii():
        return host
    try:
        return host.encode("idna").decode("ascii")
    except UnicodeError:
        return host
