"""Benchmark the rule engine: posts/s and compile time at 1k, 10k and 100k generated rules.

Usage: ``python scripts/bench_rules.py [--rules 1000,10000,100000] [--posts 2000] [--seed 7]
[--mix broad|specific|realistic|all]``

Posts are ~1 KB of mixed Russian and English: words drawn from a Zipf distribution over a
vocabulary of real Russian word forms (news words in all their inflections and random forms
from pymorphy's dictionary), made-up Latin and Cyrillic words (which pymorphy has to guess),
hashtags with their entities and a link. Rules mix single words, Russian words written in
another form than the post's (so only lemmas match), AND/OR/NOT, phrases,
prefixes, hashtags and a few regexes. The naive baseline compiles each rule to one Python regex
and tries every rule on every post, on fewer posts so that it finishes.

The mixes differ in where rule words come from, which sets how many rules a post matches:

- ``broad``: every rule word occurs in the posts (~200 matches per post at 100k rules);
- ``specific``: three in four rule words never occur in the posts (~57 matches per post);
- ``realistic``: what 100k subscribers look like — mostly names and terms of their own: a rule
  word is one of the posts' words only 2% of the time, otherwise it comes from a vocabulary of
  200k names and terms (Latin and, one in five, Cyrillic, which pymorphy has to guess) that the
  posts never carry, and a hashtag one of 50k (the posts carry 2k) (~1-5 matches per post at
  100k rules).

*steady* times preparing the post and finding its matches; *+highlights* also computes the
highlights of every match, as the worker does (each match becomes an alert that carries them).
"""

from __future__ import annotations

import argparse
import itertools
import random
import re
import statistics
import time
from datetime import UTC, datetime

from service.core import morphology
from service.core.post import Entity, Post
from service.core.query.document import clear_run_cache, token_keys
from service.core.query.index import RuleIndex
from service.core.query.parser import Phrase, Prefix, Regex, Word, parse, terms
from service.core.text import run_tokens

RUSSIAN_LEMMAS = [
    "санкция",
    "война",
    "переговоры",
    "министр",
    "президент",
    "правительство",
    "выборы",
    "граница",
    "армия",
    "нефть",
    "газ",
    "экономика",
    "рынок",
    "банк",
    "рубль",
    "доллар",
    "закон",
    "суд",
    "решение",
    "заявление",
    "встреча",
    "договор",
    "соглашение",
    "перемирие",
    "наступление",
    "оборона",
    "удар",
    "ракета",
    "город",
    "область",
    "страна",
    "союз",
    "безопасность",
    "угроза",
    "кризис",
    "инфляция",
    "бюджет",
    "налог",
    "пенсия",
    "зарплата",
    "компания",
    "завод",
    "урожай",
    "зерно",
    "порт",
    "мост",
    "дорога",
    "школа",
    "больница",
    "врач",
    "учитель",
    "студент",
    "университет",
    "наука",
    "спутник",
    "космос",
    "погода",
    "пожар",
    "авария",
    "полиция",
    "преступление",
    "задержание",
    "расследование",
    "журналист",
    "редакция",
    "канал",
    "сообщение",
    "новость",
    "посол",
    "делегация",
    "саммит",
    "визит",
    "парламент",
    "депутат",
    "партия",
    "оппозиция",
    "митинг",
    "протест",
    "забастовка",
]
UKRAINIAN_WORDS = ["україна", "уряд", "війна", "переговори", "міністр", "президент", "мир"]
# The most frequent words of the posts play the part of stop words.
STOPWORD_RANKS = 200
# In the realistic mix, how often a rule word is one of the posts' words.
REALISTIC_SEEN = 0.02
LATIN_SYLLABLES = [
    "ka",
    "ro",
    "mi",
    "ta",
    "ne",
    "lo",
    "su",
    "vi",
    "de",
    "ra",
    "po",
    "li",
    "an",
    "er",
    "on",
    "is",
    "tu",
    "ma",
    "se",
    "co",
    "bu",
    "ga",
    "fe",
]
CYRILLIC_SYLLABLES = [
    "ка",
    "ро",
    "ми",
    "та",
    "не",
    "ло",
    "су",
    "ви",
    "де",
    "ра",
    "по",
    "ли",
    "ан",
    "ер",
    "он",
    "ис",
    "ту",
    "ма",
    "се",
    "ко",
    "бу",
    "га",
    "фе",
]


def _made_up(
    rng: random.Random, syllables: list[str], count: int, lengths: tuple[int, int] = (2, 4)
) -> list[str]:
    words: set[str] = set()
    while len(words) < count:
        words.add("".join(rng.choice(syllables) for _ in range(rng.randint(*lengths))))
    return sorted(words)


def _dictionary_words(rng: random.Random, count: int) -> list[str]:
    """Real Russian word forms from pymorphy's dictionary, from random three-letter starts."""
    import pymorphy3

    morph = pymorphy3.MorphAnalyzer(lang="ru")
    letters = "абвгдежзиклмнопрстуфхцчшэюя"
    words: set[str] = set()
    for _ in range(count * 10):
        if len(words) >= count:
            break
        start = "".join(rng.choice(letters) for _ in range(3))
        for known in itertools.islice(morph.iter_known_word_parses(start), 20):
            if len(known.word) > 3 and known.word.isalpha():
                words.add(known.word)
    return sorted(words)[:count]


def _inflections(lemma_words: list[str]) -> dict[str, list[str]]:
    import pymorphy3

    morph = pymorphy3.MorphAnalyzer(lang="ru")
    forms: dict[str, list[str]] = {}
    for word in lemma_words:
        lexeme = morph.parse(word)[0].lexeme
        forms[word] = sorted({form.word for form in lexeme})
    return forms


class Corpus:
    """A vocabulary, Zipf-distributed posts over it, and rule generators."""

    def __init__(self, seed: int, mix: str = "broad") -> None:
        self.rng = random.Random(seed)
        self.forms = _inflections(RUSSIAN_LEMMAS)
        russian = [form for forms in self.forms.values() for form in forms]
        latin = _made_up(self.rng, LATIN_SYLLABLES, 40_000)
        dictionary = _dictionary_words(self.rng, 20_000)
        cyrillic = _made_up(self.rng, CYRILLIC_SYLLABLES, 3_000)  # names, slang: pymorphy guesses
        self.vocab = sorted({*russian, *UKRAINIAN_WORDS, *latin, *dictionary, *cyrillic})
        self.rng.shuffle(self.vocab)
        self.cumulative = list(
            itertools.accumulate(1.0 / rank for rank in range(1, len(self.vocab) + 1))
        )
        self.tags = [f"tag{n}" for n in range(2_000)]
        # Nobody subscribes to "и" or "the": rule words skip the most frequent ones.
        self.content = self.vocab[STOPWORD_RANKS:]
        self.mix = mix
        self.names: list[str] = []
        if mix == "specific":
            # Subscribers also watch for names and terms the stream has not (yet) carried: three
            # in four keywords never occur in these posts (longer made-up words, disjoint).
            unseen = _made_up(self.rng, LATIN_SYLLABLES * 1, 3 * len(self.content), (5, 6))
            self.content = self.content + unseen
        elif mix == "realistic":
            # Names and terms of their own: 160k Latin, 40k Cyrillic (guessed by pymorphy),
            # longer than the posts' made-up words so that they never coincide.
            latin = _made_up(self.rng, LATIN_SYLLABLES, 160_000, (5, 7))
            cyrillic_names = _made_up(self.rng, CYRILLIC_SYLLABLES, 40_000, (5, 6))
            self.names = [*latin, *cyrillic_names]

    def post(self, number: int) -> Post:
        words: list[str] = []
        size = 0
        while size < 1000:
            word = self.rng.choices(self.vocab, cum_weights=self.cumulative)[0]
            if self.rng.random() < 0.08:
                word = word.capitalize()
            words.append(word)
            size += len(word) + 1
        text = " ".join(words) + ". "
        entities = []
        for tag in self.rng.sample(self.tags, 2):
            entities.append(Entity("hashtag", len(text), len(tag) + 1, f"#{tag}"))
            text += f"#{tag} "
        url = f"https://news{number % 50}.example.com/a/{number}"
        entities.append(Entity("url", len(text), len(url), url))
        text += url
        return Post(
            channel=f"chan{number % 20}",
            message_id=number,
            date=datetime(2024, 9, 25, tzinfo=UTC),
            text=text,
            entities=tuple(entities),
        )

    def word(self) -> str:
        # Subscribers pick words without regard to their frequency: uniform over the vocabulary.
        if self.names and self.rng.random() >= REALISTIC_SEEN:
            return self.rng.choice(self.names)
        return self.rng.choice(self.content)

    def tag(self) -> str:
        # The realistic mix's subscribers follow hashtags of their own too (50k, 2k in posts).
        if self.names and self.rng.random() >= REALISTIC_SEEN:
            return f"tag{self.rng.randrange(len(self.tags), 50_000)}"
        return self.rng.choice(self.tags)

    def russian(self) -> str:
        return self.rng.choice(self.forms[self.rng.choice(RUSSIAN_LEMMAS)])

    def query(self) -> str:
        roll = self.rng.random()
        w = self.word
        if roll < 0.25:
            return w()
        if roll < 0.40:
            return f"{self.russian()} {w()}"
        if roll < 0.52:
            return f"{w()} {w()}"
        if roll < 0.62:
            return f'"{w()} {w()}"'
        if roll < 0.70:
            stem = w()
            return f"{stem[: max(6, len(stem) - 2)]}*"
        if roll < 0.76:
            return f"#{self.tag()} OR {w()}"
        if roll < 0.86:
            return f"{w()} AND NOT ({w()} OR {w()})"
        if roll < 0.9985:
            return f"({w()} OR {self.russian()} OR {w()}) {w()}"
        if roll < 0.9998:
            return f"{w()} /{w()[:3]}\\d+/i"
        return f"/{w()}[0-9]{{2}}/"


def naive_regex(query: str) -> re.Pattern[str]:
    """The naive way: one regex per rule with all its positive words, tried on every post."""
    alternatives = []
    for term, positive in terms(parse(query)):
        if not positive:
            continue
        if isinstance(term, Word):
            alternatives.append(rf"\b{re.escape(term.norm)}\b")
        elif isinstance(term, Phrase):
            alternatives.append(r"\b" + r"\W+".join(map(re.escape, term.words)) + r"\b")
        elif isinstance(term, Prefix):
            alternatives.append(rf"\b{re.escape(term.norm)}\w*")
        elif isinstance(term, Regex):
            alternatives.append(term.pattern)
    return re.compile("|".join(alternatives) or "(?!)", re.IGNORECASE)


def bench(corpus: Corpus, rule_count: int, posts: list[Post], naive_posts: int) -> dict[str, float]:
    queries = [(f"r{n}", corpus.query()) for n in range(rule_count)]
    started = time.perf_counter()
    index = RuleIndex.from_queries(queries)
    compile_s = time.perf_counter() - started

    half = len(posts) // 2
    warm, measured = posts[:half], posts[half:]
    # Cold: empty caches, every new word costs a pymorphy parse (~60 us known, ~300 us guessed).
    morphology.clear_caches()
    token_keys.cache_clear()
    clear_run_cache()
    started = time.perf_counter()
    matches = sum(len(index.match(post)) for post in warm)
    cold_s = time.perf_counter() - started
    # Steady state: a long-running worker has met the vocabulary before (the caches hold 200k
    # forms); new words still pay their parse, as in the cold pass.
    for word in corpus.vocab:
        for form in (word, word.capitalize()):
            for _start, _end, norm in run_tokens(form):
                token_keys(norm)
    timings = []
    highlight_s = 0.0
    candidates = []
    for post in measured:
        t0 = time.perf_counter()
        doc = index.document(post)
        found = index.match_document(doc)
        t1 = time.perf_counter()
        for match in found:
            match.highlights  # noqa: B018 - computed on first access (eagerly before)
        highlight_s += time.perf_counter() - t1
        timings.append(t1 - t0)
        matches += len(found)
        candidates.append(len(index.candidates(doc)))
    warm_s = sum(timings)

    patterns = [naive_regex(query) for _, query in queries]
    sample = posts[:naive_posts]
    started = time.perf_counter()
    for post in sample:
        for pattern in patterns:
            pattern.search(post.text)
    naive_s = time.perf_counter() - started
    return {
        "rules": rule_count,
        "compile_s": compile_s,
        "cold_pps": len(warm) / cold_s,
        "warm_pps": len(measured) / warm_s,
        "highlights_pps": len(measured) / (warm_s + highlight_s),
        "p99_ms": sorted(timings)[int(len(timings) * 0.99) - 1] * 1000,
        "candidates": statistics.mean(candidates),
        "matches_per_post": matches / len(posts),
        "always": len(index.always),
        "naive_pps": len(sample) / naive_s,
        "naive_posts": len(sample),
    }


MIXES = ("broad", "specific", "realistic")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rules", default="1000,10000,100000")
    parser.add_argument("--posts", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--mix",
        choices=("broad", "specific", "realistic", "all"),
        default="all",
        help="broad: rule words all occur in the posts; specific: 3 in 4 never do; "
        "realistic: mostly names and terms the posts rarely carry",
    )
    args = parser.parse_args()
    for mix in MIXES if args.mix == "all" else (args.mix,):
        run(mix, args.seed, args.posts, [int(part) for part in args.rules.split(",")])


def run(mix: str, seed: int, post_count: int, rule_counts: list[int]) -> None:
    corpus = Corpus(seed, mix)
    posts = [corpus.post(n) for n in range(post_count)]
    size = statistics.mean(len(post.text) for post in posts)
    print(
        f"mix {mix}: {len(posts)} posts, mean {size:.0f} characters, "
        f"post vocabulary {len(corpus.vocab)} words, rule vocabulary "
        f"{len(corpus.content) + len(corpus.names)}"
    )
    header = (
        f"{'rules':>7} {'compile s':>9} {'cold posts/s':>12} {'steady posts/s':>14} "
        f"{'+highlights':>11} {'p99 ms':>7} {'candidates':>10} {'matches':>7} {'always':>6} "
        f"{'naive posts/s':>13}"
    )
    print(header)
    for count in rule_counts:
        naive_posts = max(3, min(200, 2_000_000 // (count * 10)))
        row = bench(corpus, count, posts, naive_posts)
        print(
            f"{row['rules']:>7} {row['compile_s']:>9.2f} {row['cold_pps']:>12.0f} "
            f"{row['warm_pps']:>14.0f} {row['highlights_pps']:>11.0f} {row['p99_ms']:>7.2f} "
            f"{row['candidates']:>10.0f} "
            f"{row['matches_per_post']:>7.1f} {row['always']:>6} "
            f"{row['naive_pps']:>10.1f} ({row['naive_posts']} posts)"
        )


if __name__ == "__main__":
    main()
