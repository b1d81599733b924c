"""Normalization and tokens: the rules of docs/rules.md as tables, and as properties over
canonically and compatibly equivalent spellings."""

from __future__ import annotations

import sys
import unicodedata

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from service.core import text as text_module
from service.core.morphology import lemmas
from service.core.text import (
    APOSTROPHES,
    IGNORABLES,
    normalize,
    normalize_text,
    token_spans,
    tokenize,
    words,
)

# --- the rules, as tables ------------------------------------------------------------------------

SAME_TOKENS = [
    # Canonically equivalent: a precomposed letter and its letter + combining mark.
    ("Зеленський", "Зеленськии\u0306"),
    ("Київ", "Киі\u0308в"),
    ("ЇЖАК", "І\u0308ЖАК"),
    ("pétrole", "pe\u0301trole"),
    ("Müller", "Mu\u0308ller"),
    ("señor", "sen\u0303or"),
    # Compatibility forms (NFKC).
    ("fire", "ﬁre"),
    ("Apple", "Ａｐｐｌｅ"),
    ("Lavrov", "𝐋𝐚𝐯𝐫𝐨𝐯"),
    ("Lavrov", "𝕃𝕒𝕧𝕣𝕠𝕧"),
    ("x2", "x²"),
    ("Ⅻ", "XII"),
    ("ſtraße", "strasse"),
    ("Kelvin", "\u212aelvin"),
    ("Åsa", "\u212bsa"),
    ("Asa", "Åsa"),
    ("Muller", "Müller"),
    ("ĳs", "ijs"),
    # Format characters inside a word are removed.
    ("Лавров", "Лав\u00adров"),
    ("Лавров", "Лав\u200dров"),
    ("Лавров", "Лав\u200cров"),
    ("Лавров", "Лав\u2060ров"),
    ("Лавров", "\ufeffЛавров"),
    ("Лавров", "Лав\u200eров"),
    # Stress marks on Cyrillic letters go; ё is е.
    ("полный", "по\u0301лный"),
    ("замок", "за\u0301мок"),
    ("елка", "Ёлка"),
    ("елка", "Е\u0308лка"),
    # Ukrainian apostrophe words, whichever apostrophe.
    *[("об'єктів", f"об{mark}єктів") for mark in APOSTROPHES],
    ("сім'я", "сімʼя"),
]


@pytest.mark.parametrize(("plain", "variant"), SAME_TOKENS)
def test_equivalent_spellings_give_the_same_tokens(plain: str, variant: str) -> None:
    assert words(variant) == words(plain)
    assert len(words(plain)) == 1


TOKENS = [
    # Apostrophes join Cyrillic letters only; in Latin script they separate.
    ("об'єкт, м’ясо і сімʼя", ["об'єкт", "м'ясо", "і", "сім'я"]),
    ("China's O'Neil don't", ["china", "s", "o", "neil", "don", "t"]),
    ("l'Union européenne", ["l", "union", "europeenne"]),
    ("О'Нил", ["о'нил"]),
    ("'слово' ’слово’ об'", ["слово", "слово", "об"]),
    ("об''єкт", ["об", "єкт"]),
    ("Oʼneil", ["o", "neil"]),
    # Hyphens and dashes separate: a hyphenated word is a phrase of its parts.
    ("будь-який Ростов-на-Дону", ["будь", "який", "ростов", "на", "дону"]),
    ("cessez‑le‑feu — a–b", ["cessez", "le", "feu", "a", "b"]),
    # The zero-width space separates; joiners do not.
    ("Лав\u200bров", ["лав", "ров"]),
    ("a\u200db", ["ab"]),
    # Symbols and punctuation separate, even those NFKC spells with letters.
    ("Apple™ №5 10:30 snake_case", ["apple", "5", "10", "30", "snake", "case"]),
    ("слово🔥слово ❤️ 👨\u200d👩", ["слово", "слово"]),
    # A combining mark with no letter before it is dropped.
    ("\u0301слово", ["слово"]),
    # й, ї and ў are letters, not и, і and у with a mark; other Cyrillic marks go.
    ("йод иод Київ ўсё ѐж", ["йод", "иод", "київ", "ўсе", "еж"]),
    # Full case folding; other scripts keep their marks.
    ("STRASSE Straße ΆΛΦΑ ά", ["strasse", "strasse", "άλφα", "ά"]),
    ("10℃ x² Ⅻ", ["10", "x2", "xii"]),
]


@pytest.mark.parametrize(("text", "expected"), TOKENS)
def test_tokens(text: str, expected: list[str]) -> None:
    assert words(text) == expected


def test_spans_point_at_the_original_text() -> None:
    text = "Сказав Зеленськии\u0306: «об’єкти» — Лав\u00adров і 𝐋𝐚𝐯𝐫𝐨𝐯."
    found = [(token.norm, text[token.start : token.end]) for token in tokenize(text)]
    assert found == [
        ("сказав", "Сказав"),
        ("зеленський", "Зеленськии\u0306"),
        ("об'єкти", "об’єкти"),
        ("лавров", "Лав\u00adров"),
        ("і", "і"),
        ("lavrov", "𝐋𝐚𝐯𝐫𝐨𝐯"),
    ]


def test_normalize_is_the_norm_of_a_one_word_text() -> None:
    for word in ("Зеленськии\u0306", "об’єкт", "Лав\u00adров", "PÉTROLE", "𝐋𝐚𝐯𝐫𝐨𝐯", "UNGA79"):
        assert normalize(word) == words(word)[0]


def test_normalize_text_keeps_case_and_punctuation() -> None:
    assert normalize_text("Зеленськии\u0306, Лав\u00adров!") == "Зеленський, Лавров!"
    assert normalize_text("plain ASCII, kept.") == "plain ASCII, kept."


def test_the_format_character_blocks_hold_every_format_character() -> None:
    every = {
        chr(code)
        for code in range(sys.maxunicode + 1)
        if unicodedata.category(chr(code)) == "Cf" and code != 0x200B
    }
    assert every == set(IGNORABLES)


def test_every_character_that_normalizes_to_an_apostrophe_is_one() -> None:
    """A character whose canonical or compatibility form is an apostrophe tokenizes as one, so no
    spelling of a text turns a separator into an apostrophe (or back)."""
    apostrophes = set(APOSTROPHES)
    every = {
        chr(code)
        for code in range(sys.maxunicode + 1)
        if not 0xD800 <= code <= 0xDFFF
        and chr(code) not in apostrophes
        and any(unicodedata.normalize(form, chr(code)) in apostrophes for form in ("NFD", "NFKC"))
    }
    assert every == set(text_module.APOSTROPHE_EQUIVALENTS)
    for char in every:
        assert words(f"об{char}єкт") == ["об'єкт"], hex(ord(char))


def test_fixed_separators_are_never_part_of_a_word() -> None:
    """Every character RUN_RE cuts at is a separator by the per-character rules too."""
    for code in range(0x10000):
        char = chr(code)
        if text_module.RUN_RE.fullmatch(char) is None and not char.isspace():
            assert text_module._tokenize_chars(f"a{char}b") == ((0, 1, "a"), (2, 3, "b")), char


# --- the rules, as properties --------------------------------------------------------------------

ALPHABET = (
    "абвгдеёжзийклмнопрстуфхцчшщъыьэюяАБВЕЁИЙКЛОПСЯіїєґІЇЄҐўЎ"
    "abcdeilnorstuzABCDEINOSZ0123456789éèüöñçßÉÜıİøæ"
    "\u0300\u0301\u0303\u0306\u0308\u0327\u0338\u0345\u034f\ufe0f"  # combining marks
    f"{APOSTROPHES}\u00ad\u200b\u200c\u200d\u2060\ufeff\u200e"  # apostrophes and format chars
    " \n\u00a0\u2009-,.!?:;«»—–…_=<()"  # spaces and punctuation
    "ﬁﬀＡａ１𝐋𝐚𝕧²₂①ªºſĳŉĿⅫℌµ¼´¨ｶﾞﾟ"  # compatibility forms
    "각가ㄱㅏάΐΆΑ™№℃🔥\u1100\u1161\u11a8"  # Hangul (also as jamo), Greek, symbols
    "\u1fef\u1fc1\u0374\uff40\u0e33\u0eb3"  # what normalizes into apostrophes; Thai and Lao AM
)
# Symbols and punctuation NFKC spells with letters or digits: separators in the text, words once
# NFKC has replaced them, so only canonical equivalence holds for strings containing them.
SPELLED_SYMBOLS = frozenset(
    char
    for char in ALPHABET
    if unicodedata.category(char)[0] in "SP"
    and any(c.isalnum() for c in unicodedata.normalize("NFKC", char))
)
texts = st.text(alphabet=ALPHABET, max_size=40)


def _forms(text: str, compatibility: bool) -> list[str]:
    forms = [unicodedata.normalize(form, text) for form in ("NFC", "NFD")]
    if compatibility:
        forms += [unicodedata.normalize(form, text) for form in ("NFKC", "NFKD")]
    return forms


@settings(max_examples=1500, deadline=None)
@given(texts)
# A Hangul vowel jamo after a symbol that composes (¨ + grave = U+1FED) and after an apostrophe.
@example("\u00a8\u0300\u1161")
@example("'\u1161\u02bc\u1161")
# Greek varia is a grave accent (an apostrophe) once decomposed; Thai AM after a symbol.
@example("ж\u1fefй")
@example("ԭ\u1fc1\u0e33ӽ")
def test_canonically_equivalent_strings_give_the_same_tokens(text: str) -> None:
    expected = words(text)
    for form in _forms(text, compatibility=False):
        assert words(form) == expected, form


@settings(max_examples=500, deadline=None)
@given(st.text(max_size=30))
def test_canonical_equivalence_holds_for_any_text(text: str) -> None:
    expected = words(text)
    for form in _forms(text, compatibility=False):
        assert words(form) == expected, form


@settings(max_examples=1500, deadline=None)
@given(texts.filter(SPELLED_SYMBOLS.isdisjoint))
def test_compatibility_forms_give_the_same_tokens(text: str) -> None:
    expected = words(text)
    for form in _forms(text, compatibility=True):
        assert words(form) == expected, form


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet="абвеийклнорстуяіїєґ'’ʼ\u0301\u0306\u0308\u00ad ", max_size=25))
def test_equivalent_spellings_give_the_same_lemmas(text: str) -> None:
    expected = [lemmas(norm) for norm in words(text)]
    for form in _forms(text, compatibility=True):
        assert [lemmas(norm) for norm in words(form)] == expected


@settings(max_examples=800, deadline=None)
@given(texts)
def test_tokens_and_their_spans_agree(text: str) -> None:
    tokens = tokenize(text)
    assert [token.norm for token in tokens] == words(text)
    assert [(token.start, token.end, token.norm) for token in tokens] == token_spans(text)
    previous = 0
    for token in tokens:
        assert previous <= token.start < token.end <= len(text)
        assert token.norm in words(text[token.start : token.end])
        assert normalize(token.norm) == token.norm
        previous = token.start
