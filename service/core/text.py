"""Text normalization and tokens: the one definition used by posts, queries, highlights, entities
and topics (docs/rules.md, "Words and normalization", states the same rules for users).

A token is found and normalized in these steps, the same for a post and for a query:

1. Format characters (Unicode category Cf: soft hyphen, ZWJ, ZWNJ, word joiner, BOM, direction
   marks) are removed: a word goes on across them. The zero-width space (U+200B) separates.
2. Each letter or digit, with the combining marks that follow it, is put in NFKC form, so
   canonically equivalent spellings (``й`` and ``и`` + U+0306) and compatibility forms (``ﬁ``,
   ``Ａ``, ``𝐋``, ``²``) are one. A symbol or punctuation mark stays a separator even where NFKC
   would spell it with letters (``№``, ``™``, ``℃``).
3. A token is a run of letters, digits and combining marks. An apostrophe (any of
   ``APOSTROPHES``) between two Cyrillic letters belongs to the word (``об'єкт``); anywhere else
   it separates (``China's``, ``l'Union``). Everything else separates (hyphens and dashes too).
4. The token is case-folded; ``ё`` becomes ``е``; Latin letters lose their diacritics
   (``pétrole`` → ``petrole``); Cyrillic letters keep only ``й``, ``ї`` and ``ў`` (stress marks
   go: ``по́лный`` → ``полный``); the apostrophe is written ``'``.

Spans point at the original text: a token's span runs from its first letter to its last mark.
Text is cut at whitespace and the separators in ``RUN_RE``; each run left is tokenized once per
process (cached): a plain word (letters already in NFKC form) by a fast path, anything else by
the per-character steps above.
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache
from typing import NamedTuple, cast

# Apostrophes joining a Cyrillic word: ASCII, right single quote, modifier letter apostrophe
# (the Ukrainian standard), left single quote, grave, modifier prime, prime, fullwidth.
APOSTROPHES = "'\u2019\u02bc\u2018`\u02b9\u2032\uff07"
# Characters that normalization turns into one of them (Greek varia and fullwidth grave into the
# grave, the Greek numeral sign into the modifier prime): apostrophes too, so every spelling of
# a text tokenizes alike. A test checks this against every code point.
APOSTROPHE_EQUIVALENTS = "\u1fef\uff40\u0374"
_APOSTROPHE_SET = frozenset(APOSTROPHES + APOSTROPHE_EQUIVALENTS)
_TO_APOSTROPHE = str.maketrans(dict.fromkeys(APOSTROPHES + APOSTROPHE_EQUIVALENTS, "'"))
_ZWSP = "\u200b"
# Cyrillic letters (and the Cyrillic Supplement): an apostrophe between two of them is a letter.
_CYRILLIC_FIRST, _CYRILLIC_LAST = "\u0400", "\u052f"
# Cyrillic letters whose diacritic makes another letter of the alphabets tgwatch reads.
_CYRILLIC_KEPT = frozenset("йїўЙЇЎ")

# --- character classes, from the Unicode database of this Python -----------------------------

# Blocks holding the common symbols, punctuation and spaces of posts. Only the characters of
# these blocks that are symbols, punctuation, spaces or controls (never apostrophes) become the
# fixed separators of ``RUN_RE``; any other separator is found by the per-character steps. Only
# the BMP: a class reaching past U+FFFF makes the regex ~3x slower (emoji take the per-character
# path once per run, then come from the cache).
_SEPARATOR_BLOCKS = (
    (0x0000, 0x00BF),
    (0x00D7, 0x00D7),
    (0x00F7, 0x00F7),
    (0x2000, 0x2BFF),
    (0x3000, 0x303F),
)
# The blocks where format characters (category Cf) live; a test checks this against every
# code point, so a newer Unicode database cannot add one unnoticed.
_FORMAT_BLOCKS = (
    (0x00AD, 0x00AD),
    (0x0600, 0x08FF),
    (0x180E, 0x180E),
    (0x200B, 0x206F),
    (0xFEFF, 0xFEFF),
    (0xFFF9, 0xFFFB),
    (0x110BD, 0x110CD),
    (0x13430, 0x1343F),
    (0x1BCA0, 0x1BCA3),
    (0x1D173, 0x1D17A),
    (0xE0001, 0xE007F),
)


def _char_class(codes: list[int]) -> str:
    """A regex character class body (no brackets) for these code points, as ranges."""
    parts: list[str] = []
    codes = sorted(codes)
    i = 0
    while i < len(codes):
        j = i
        while j + 1 < len(codes) and codes[j + 1] == codes[j] + 1:
            j += 1
        first, last = chr(codes[i]), chr(codes[j])
        parts.append(re.escape(first) if i == j else f"{re.escape(first)}-{re.escape(last)}")
        i = j + 1
    return "".join(parts)


def _blocks(blocks: tuple[tuple[int, int], ...]) -> list[int]:
    return [code for first, last in blocks for code in range(first, last + 1)]


_SEPARATORS = _char_class(
    [
        code
        for code in _blocks(_SEPARATOR_BLOCKS)
        if unicodedata.category(chr(code))[0] in "SPZ" or unicodedata.category(chr(code)) == "Cc"
        if chr(code) not in _APOSTROPHE_SET
    ]
)
IGNORABLES = "".join(
    chr(code)
    for code in _blocks(_FORMAT_BLOCKS)
    if unicodedata.category(chr(code)) == "Cf" and chr(code) != _ZWSP
)
# A run: what lies between whitespace and the fixed separators. Most runs are one word.
RUN_RE = re.compile(f"[^\\s{_SEPARATORS}]+")
_IGNORABLE_RE = re.compile(f"[{_char_class([ord(c) for c in IGNORABLES])}]")
# Letters and digits only, no letter-like apostrophe (U+02BC, U+02B9 are letters to Unicode).
_PLAIN_WORD_RE = re.compile(r"[^\W_\u02b9\u02bc]+")
# After case folding: characters other than ASCII and the plain Russian/Ukrainian letters.
_NEEDS_FOLDING = re.compile(r"[^\x00-\x7f\u0430-\u044f\u0451\u0454\u0456\u0457\u045e\u0491]")

# --- tokens -------------------------------------------------------------------------------------


class Token(NamedTuple):
    """A token of the original text: its normalized form and its span in the original string.
    A named tuple: ~2x cheaper to make than a frozen dataclass, and a post has hundreds."""

    norm: str
    start: int
    end: int


Spans = tuple[tuple[int, int, str], ...]  # (start, end, norm) of each token of a run

# Runs already tokenized, in plain dicts, so the hot loops are one dict look-up per run: the
# norm of a run that is exactly one token (nearly all), the tokens of any other. Cleared when
# full, which a worker meets rarely (a language has far fewer frequent forms than this).
RUN_CACHE_MAX = 300_000
_ONE: dict[str, str] = {}
_OTHER: dict[str, Spans] = {}


def _learn(run: str) -> Spans:
    found = _tokenize_run(run)
    if len(_ONE) + len(_OTHER) >= RUN_CACHE_MAX:
        clear_caches()
    if len(found) == 1 and found[0][0] == 0 and found[0][1] == len(run):
        _ONE[run] = found[0][2]
    else:
        _OTHER[run] = found
    return found


def run_tokens(run: str) -> Spans:
    """The tokens of one run of ``RUN_RE`` as (start, end, norm), offsets within the run."""
    norm = _ONE.get(run)
    if norm is not None:
        return ((0, len(run), norm),)
    found = _OTHER.get(run)
    return _learn(run) if found is None else found


def single_token(text: str) -> str | None:
    """The norm of ``text`` when it is exactly one token and nothing else (a word with no
    punctuation around it: most whitespace-separated chunks), else None."""
    norm = _ONE.get(text)
    if norm is None and text not in _OTHER and RUN_RE.fullmatch(text):
        _learn(text)
        norm = _ONE.get(text)
    return norm


def tokenize(text: str) -> list[Token]:
    """The tokens of ``text``, with spans into ``text`` itself (not into a normalized copy)."""
    tokens: list[Token] = []
    append = tokens.append
    one = _ONE.get
    for match in RUN_RE.finditer(text):
        norm = one(match.group())
        if norm is not None:
            append(Token(norm, match.start(), match.end()))
            continue
        at = match.start()
        for start, end, other in run_tokens(match.group()):
            append(Token(other, at + start, at + end))
    return tokens


def token_spans(text: str) -> list[tuple[int, int, str]]:
    """(start, end, norm) of every token of ``text``: ``tokenize`` without Token objects."""
    spans: list[tuple[int, int, str]] = []
    for match in RUN_RE.finditer(text):
        at = match.start()
        spans.extend((at + start, at + end, norm) for start, end, norm in run_tokens(match.group()))
    return spans


def words(text: str) -> list[str]:
    """The normalized tokens of ``text``, in order, without spans."""
    runs = RUN_RE.findall(text)
    found = list(map(_ONE.get, runs))
    if None not in found:  # every run is one token already seen: its norm
        return cast("list[str]", found)
    out: list[str] = []
    for run, norm in zip(runs, found, strict=True):
        if norm is not None:
            out.append(norm)
        else:
            out.extend(other for _, _, other in run_tokens(run))
    return out


def _tokenize_run(run: str) -> Spans:
    if _PLAIN_WORD_RE.fullmatch(run) and (run.isascii() or unicodedata.is_normalized("NFKC", run)):
        return ((0, len(run), _fold(run)),)
    return _tokenize_chars(run)


# A character as the per-character steps see it.
_IGNORE, _ATTACH, _START = 0, 1, 2
# The first characters of Hangul vowel and final-consonant jamo, which compose with what
# precedes them as combining marks do.
_HANGUL_JOINING = (("\u1160", "\u11ff"), ("\ud7b0", "\ud7ff"))


@lru_cache(maxsize=8192)
def _kind(char: str) -> int:
    """Whether a character is dropped, joins the character before it (a combining mark, what
    NFKC turns into one, or a Hangul vowel or final jamo), or starts a new one."""
    if char != _ZWSP and unicodedata.category(char) == "Cf":
        return _IGNORE
    head = unicodedata.normalize("NFKD", char)[:1] or char
    if unicodedata.category(head)[0] == "M" or unicodedata.combining(head):
        return _ATTACH
    if any(first <= head <= last for first, last in _HANGUL_JOINING):
        return _ATTACH
    return _START


def _is_cyrillic_letter(char: str | None) -> bool:
    return char is not None and _CYRILLIC_FIRST <= char <= _CYRILLIC_LAST and char.isalpha()


def _joinable(head: str) -> bool:
    """Whether a cluster led by ``head`` takes a joining letter (a letter, digit or mark)."""
    return head not in _APOSTROPHE_SET and unicodedata.category(head)[0] in "LNM"


def _tokenize_chars(run: str) -> Spans:
    """The general path: a character (with its marks) at a time, keeping offsets."""
    # Clusters: a starting character and the characters joining it, with their span.
    starts: list[int] = []
    ends: list[int] = []
    texts: list[str] = []
    for i, char in enumerate(run):
        kind = _kind(char)
        if kind == _IGNORE:
            continue
        if kind == _ATTACH and texts:
            ends[-1] = i + 1
            texts[-1] += char
        else:
            starts.append(i)
            ends.append(i + 1)
            texts.append(char)
    # Characters after NFKC, each with its cluster's span; None separates.
    chars: list[tuple[str | None, int, int]] = []
    for start, end, text in zip(starts, ends, texts, strict=True):
        head = text[0]
        if head in _APOSTROPHE_SET:
            chars.append(("'", start, end))
        elif unicodedata.category(head)[0] in "LNM":  # a mark leads only at a run's start
            for char in unicodedata.normalize("NFKC", text):
                if char in _APOSTROPHE_SET:
                    chars.append(("'", start, end))
                elif unicodedata.category(char)[0] in "LNM":
                    chars.append((char, start, end))
                else:
                    chars.append((None, start, end))
        else:  # a symbol, punctuation or space, with any marks on it
            chars.append((None, start, end))
        if len(text) > 1 and not _joinable(head):
            _tail_letters(text[1:], start, end, chars)
    return _words_of(chars)


def _tail_letters(
    tail: str, start: int, end: int, chars: list[tuple[str | None, int, int]]
) -> None:
    """The letters that what joined a separator or an apostrophe brings (a Hangul vowel jamo, a
    mark-like character whose NFKC form holds a letter, such as Thai and Lao AM), with the marks
    after them: where the separator is one of RUN_RE's fixed ones, they begin a run of their own
    and are read so; marks before any letter are dropped, as at the start of a run."""
    lettered = False
    for char in unicodedata.normalize("NFKC", tail):
        kind = unicodedata.category(char)[0]
        if kind in "LN" and char not in _APOSTROPHE_SET:
            chars.append((char, start, end))
            lettered = True
        elif kind == "M":
            if lettered:
                chars.append((char, start, end))
        else:
            chars.append((None, start, end))
            lettered = False


def _words_of(chars: list[tuple[str | None, int, int]]) -> Spans:
    tokens: list[tuple[int, int, str]] = []
    word: list[str] = []
    start = end = 0
    base: str | None = None  # the last letter or digit of the word
    for i, (char, char_start, char_end) in enumerate(chars):
        joins = (
            char == "'"
            and bool(word)
            and _is_cyrillic_letter(base)
            and i + 1 < len(chars)
            and _is_cyrillic_letter(chars[i + 1][0])
        )
        if joins:
            word.append("'")
            end = char_end
            continue
        if char is None or char == "'":  # a separator, or an apostrophe that is not a letter
            if word:
                tokens.append((start, end, _fold("".join(word))))
                word = []
            continue
        if unicodedata.category(char)[0] == "M":
            if word:  # a mark with no letter before it is dropped
                word.append(char)
                end = char_end
            continue
        if not word:
            start = char_start
        word.append(char)
        base = char
        end = char_end
    if word:
        tokens.append((start, end, _fold("".join(word))))
    return tuple(tokens)


# --- folding ------------------------------------------------------------------------------------


@lru_cache(maxsize=8192)
def _fold_char(char: str) -> tuple[str, str]:
    """One case-folded character without the diacritics folding removes, and its script
    ("latin", "cyrillic", "mark" or "")."""
    if char in _APOSTROPHE_SET:
        return "'", ""
    if unicodedata.category(char)[0] == "M":
        return char, "mark"
    decomposed = unicodedata.normalize("NFD", char)
    name = unicodedata.name(decomposed[0], "")
    if name.startswith("LATIN"):
        return "".join(c for c in decomposed if not unicodedata.combining(c)), "latin"
    if name.startswith("CYRILLIC"):
        if char in _CYRILLIC_KEPT:
            return char, "cyrillic"
        return "".join(c for c in decomposed if not unicodedata.combining(c)), "cyrillic"
    return char, ""


def _fold(word: str) -> str:
    """Step 4 for a token (already in NFKC form, without format characters)."""
    folded = word.casefold()
    if folded.isascii():
        return folded
    if _NEEDS_FOLDING.search(folded) is None:  # plain Russian and Ukrainian: only ё→е
        return folded.replace("ё", "е")
    out: list[str] = []
    script = ""
    for char in unicodedata.normalize("NFC", folded):
        kept, kind = _fold_char(char)
        if kind == "mark":
            if script not in ("latin", "cyrillic"):
                out.append(kept)
            continue
        script = kind
        out.append(kept)
    return unicodedata.normalize("NFC", "".join(out))


def normalize(text: str) -> str:
    """A word, tag or name as tokens are normalized (steps 1, 2 and 4 over the whole string,
    apostrophes written ``'``): ``normalize(word)`` is the norm of a one-token ``word``."""
    if text.isascii():
        return text.casefold().replace("`", "'")
    return _fold(unicodedata.normalize("NFKC", strip_ignorables(text)).translate(_TO_APOSTROPHE))


def strip_ignorables(text: str) -> str:
    """``text`` without format characters (step 1), for anything that reads running text."""
    return _IGNORABLE_RE.sub("", text) if _IGNORABLE_RE.search(text) else text


def normalize_text(text: str) -> str:
    """Running text in the form tokens are read from (steps 1 and 2 over the whole text, case
    and punctuation kept): for detectors that read prose, such as language detection."""
    if text.isascii():
        return text
    text = strip_ignorables(text)
    return text if unicodedata.is_normalized("NFKC", text) else unicodedata.normalize("NFKC", text)


def clear_caches() -> None:
    """Forget every tokenized run (benchmarks measure a cold process with it)."""
    _ONE.clear()
    _OTHER.clear()


_CYRILLIC_RE = re.compile(f"[{_CYRILLIC_FIRST}-{_CYRILLIC_LAST}]")


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
