"""Detect the main language of a post among a configured set of languages (lingua, offline).

Two passes: a cheap one over the post's tokens (letters only Russian or only Ukrainian uses;
function words only one Latin-script language uses), which decides most posts in tens of
microseconds, then lingua on at most three bounded windows of the text for the rest.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from service.core.text import Token

from service.core.text import normalize_text

# The languages a post is told apart among when the configuration names none.
DEFAULT_LANGUAGES: tuple[str, ...] = ("ru", "uk", "en", "es", "fr", "de")
# lingua's model sets: ``high`` loads every n-gram model of each language (~250 MB for the
# default six, the most accurate on short texts); ``low`` only the trigram models (~15 MB),
# enough for texts of more than a sentence or two (measured in docs/benchmarks.md).
ACCURACIES = ("high", "low")

# Fewer letters than this (after links, mentions, hashtags and emoji are gone) say too little
# to tell languages apart reliably: "ок", "Breaking:" or a lone emoji get no language.
MIN_LETTERS = 8

# lingua's cost grows with the text (~0.6 ms for 900 characters here). A long post is judged on
# three windows (start, middle, end) of this many characters each, which vote: a ~1 KB post costs
# ~0.3 ms and its main language wins, not just the language of its first lines.
WINDOW_CHARS = 170

# A word that is a link: a scheme, www., or a host with a common top-level domain.
_LINK_RE = re.compile(r"://|^www\.|\.(?:com|org|net|ru|ua|io|me|gov|int|info|tv)(?:/|$)")
# Anything that is not a letter, a mark or an apostrophe becomes a space: emoji, digits, symbols.
_NON_LETTER_RE = re.compile(r"[^\w'’]+|[\d_]+")
_CYRILLIC_LANGS = frozenset({"ru", "uk", "be", "bg", "sr", "mk", "kk"})


def _is_noise(word: str) -> bool:
    return word[0] in "@#$" or _LINK_RE.search(word) is not None


def clean_for_detection(text: str) -> str:
    """The post's prose only: links, mentions, hashtags, cashtags, emoji and digits removed,
    in the normalized form tokens are read from (``и`` + U+0306 is ``й``, ``𝐋𝐚𝐯𝐫𝐨𝐯`` is
    ``Lavrov``)."""
    kept = " ".join(word for word in normalize_text(text).split() if not _is_noise(word))
    return " ".join(_NON_LETTER_RE.sub(" ", kept).split())


def _script(word: str) -> str:
    first = word[0]
    if "\u0400" <= first <= "\u04ff":
        return "cyrillic"
    if first.isascii() or "\u00c0" <= first <= "\u024f":
        return "latin"
    return ""


def _majority_script_words(text: str) -> tuple[str, str]:
    """Keep the words of the script most letters are written in ("cyrillic" or "latin").

    A Russian post quoting an English statement is Russian: the quote's words are dropped before
    detection, so lingua only weighs the languages of the main script. Words are judged by their
    first letter, which is cheap and right for all but mixed-script words.
    """
    letters = {"cyrillic": 0, "latin": 0, "": 0}
    scripts = []
    words = text.split(" ") if text else []
    for word in words:
        script = _script(word)
        scripts.append(script)
        letters[script] += len(word)
    if not letters["cyrillic"] and not letters["latin"]:
        return "", ""
    main = "cyrillic" if letters["cyrillic"] >= letters["latin"] else "latin"
    if letters[main] == len(text) - len(words) + 1:
        return text, main
    return " ".join(w for w, script in zip(words, scripts, strict=True) if script == main), main


_RU_LETTERS = frozenset("ыэъЫЭЪ")
_UK_LETTERS = frozenset("іїєґІЇЄҐ")
# Letters only one of Russian and Ukrainian uses: this many of one kind and none of the other
# tell the two apart for free (lingua costs ~0.3 ms on a 1 KB post; this, ~20 µs).
MIN_MARK_LETTERS = 3


def _ru_or_uk(text: str) -> str | None:
    """ "ru" or "uk" when the text's letters say so unambiguously, else None (ask lingua)."""
    # str.count runs in C: ~50x cheaper than a Python loop over a 1 KB post.
    ru = sum(text.count(letter) for letter in _RU_LETTERS)
    uk = sum(text.count(letter) for letter in _UK_LETTERS)
    if ru >= MIN_MARK_LETTERS and uk == 0:
        return "ru"
    if uk >= MIN_MARK_LETTERS and ru == 0:
        return "uk"
    return None


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


# Function words that only one of these languages uses (among the four), normalized as tokens
# are (casefolded, Latin diacritics removed): "de", "la", "en", "des", "die", "on" and the like,
# which two of them share, are left out. A Latin-script post whose hits clearly favour one
# language is that language, without lingua (~0.3 ms on a 1 KB post; this, ~20 µs).
FUNCTION_WORDS: dict[str, frozenset[str]] = {
    "en": _words(
        "the and of to is that with for are this be by from have has it which were would their "
        "they been not its said who our we about there than what when these those into over "
        "also"
    ),
    "es": _words(
        "el los las del y por con para una como pero sus fue este tambien sobre desde esta muy "
        "hasta porque donde han al lo su ya mas segun ser sin hay todo eso cuando"
    ),
    "fr": _words(
        "le les et du une est pour dans qui sur au aux avec ce il ne pas plus sont ont mais "
        "cette ses leur nous vous ete etre fait elle lui ces aussi tres ou ainsi selon"
    ),
    "de": _words(
        "der die und das den dem ist nicht mit von sich auf fur zu im eine ein einen auch wird "
        "werden nach bei aus wie oder sind hat haben dass sie wir noch nur uber vom zum zur "
        "wurde kann diese dieser durch"
    ),
}
# The leading language needs this many function words, this many times the runner-up's, and
# the post this share of its letters in Latin script; otherwise lingua decides.
MIN_FUNCTION_WORDS = 3
FUNCTION_WORD_LEAD = 3
LATIN_SHARE = 0.9


def _windows(text: str) -> list[str]:
    """The text itself when short, else three windows of it: start, middle and end."""
    if len(text) <= 3 * WINDOW_CHARS:
        return [text]
    middle = len(text) // 2 - WINDOW_CHARS // 2
    return [text[:WINDOW_CHARS], text[middle : middle + WINDOW_CHARS], text[-WINDOW_CHARS:]]


class LanguageDetector:
    """lingua restricted to the configured languages, one detector per script.

    Building costs ~1 s and ~250 MB for the default languages at ``high`` accuracy (lingua loads
    all its n-gram models), ~15 MB at ``low`` (trigrams only); build it once per process and
    share it (``Enricher.with_watched`` does).
    """

    def __init__(
        self, languages: Sequence[str] = DEFAULT_LANGUAGES, accuracy: str = "high"
    ) -> None:
        from lingua import IsoCode639_1, Language, LanguageDetectorBuilder

        if accuracy not in ACCURACIES:
            raise ValueError(f"language accuracy must be one of {', '.join(ACCURACIES)}")

        codes = tuple(dict.fromkeys(code.strip().lower() for code in languages if code.strip()))
        if not codes:
            raise ValueError("at least one language is needed for language detection")
        resolved: dict[str, Any] = {}
        for code in codes:
            try:
                resolved[code] = Language.from_iso_code_639_1(IsoCode639_1.from_str(code))
            except ValueError:
                message = f"unknown language code {code!r} (use ISO 639-1, e.g. 'ru')"
                raise ValueError(message) from None
        self.languages = codes
        self._codes = {language: code for code, language in resolved.items()}
        self._detectors: dict[str, Any] = {}
        cyrillic_codes = {code for code in codes if code in _CYRILLIC_LANGS}
        self._ru_uk_only = cyrillic_codes == {"ru", "uk"}
        latin_codes = [code for code in codes if code not in _CYRILLIC_LANGS]
        # The first pass on function words only when it knows every Latin-script language
        # configured (an unknown one would be taken for one it knows) and there is a choice.
        self._function_words: dict[str, str] = {}
        if len(latin_codes) > 1 and all(code in FUNCTION_WORDS for code in latin_codes):
            self._function_words = {
                word: code for code in latin_codes for word in FUNCTION_WORDS[code]
            }
        scripts = {
            "cyrillic": [lang for code, lang in resolved.items() if code in _CYRILLIC_LANGS],
            "latin": [lang for code, lang in resolved.items() if code not in _CYRILLIC_LANGS],
        }
        for script, members in scripts.items():
            if len(members) == 1:
                self._detectors[script] = members[0]
            elif members:
                builder = LanguageDetectorBuilder.from_languages(*members)
                if accuracy == "low":
                    builder = builder.with_low_accuracy_mode()
                self._detectors[script] = builder.with_preloaded_language_models().build()

    def first_pass(self, tokens: Sequence[Token]) -> str | None:
        """The language of a Latin-script post whose function words clearly name one, or None
        (then ``detect`` asks lingua). ``tokens`` are ``service.core.text.tokenize(text)``."""
        table = self._function_words
        if not table or len(tokens) < MIN_FUNCTION_WORDS:
            return None
        hits: Counter[str] = Counter()
        latin = other = 0
        for token in tokens:
            norm = token.norm
            if norm.isascii():
                if norm.isalpha():
                    latin += len(norm)
                    code = table.get(norm)
                    if code is not None:
                        hits[code] += 1
            elif _script(norm) == "latin":
                latin += len(norm)
            else:
                other += len(norm)
        if latin < LATIN_SHARE * (latin + other) or not hits:
            return None
        ranked = hits.most_common(2)
        leader, count = ranked[0]
        runner_up = ranked[1][1] if len(ranked) > 1 else 0
        if count >= MIN_FUNCTION_WORDS and count >= FUNCTION_WORD_LEAD * runner_up:
            return leader
        return None

    def detect(self, text: str, tokens: Sequence[Token] | None = None) -> str | None:
        """The ISO 639-1 code of the post's main language, or None when it cannot be told.
        With ``tokens`` (``tokenize(text)``, when the caller has them) the first pass on
        function words may decide without lingua."""
        if tokens is not None:
            found = self.first_pass(tokens)
            if found is not None:
                return found
        cleaned = clean_for_detection(text)
        kept, script = _majority_script_words(cleaned)
        if sum(map(str.isalpha, kept)) < MIN_LETTERS:
            return None
        if script == "cyrillic" and self._ru_uk_only:
            marked = _ru_or_uk(kept)
            if marked is not None:
                return marked
        detector = self._detectors.get(script)
        if detector is None:
            # No configured language is written in this script: the post is none of them.
            return None
        if not hasattr(detector, "detect_language_of"):
            return self._codes[detector]
        # Each window votes; the language of most windows wins (the earliest one on a tie).
        votes: Counter[Any] = Counter()
        for window in _windows(kept):
            language = detector.detect_language_of(window)
            if language is not None:
                votes[language] += 1
        if not votes:
            return None
        return self._codes.get(votes.most_common(1)[0][0])
