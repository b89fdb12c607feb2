"""Keyword matching on characters and on toneless pinyin, tolerant of misheard characters.

Recognisers turn domain words into same-sounding characters (公积金→攻击金, 咨询→自行,
举报→擠爆, 着火→找火, 拱墅区→狗受区).  A :class:`PinyinMatcher` finds each keyword

* by its characters (score 1.0),
* by exactly the same toneless pinyin on each character's main reading (score 0.85; this also
  covers traditional characters, which pypinyin reads like simplified ones), or
* by *similar* pinyin (score 0.85 × mean syllable similarity): the usual fuzzy-pinyin pairs
  (z/zh, c/ch, s/sh, n/l/r, f/h, an/ang, en/eng, in/ing …) count 0.9, "close" syllables
  (xing≈xun, ji≈ju, gou≈gong, shou≈shu) 0.6, and the other reading of a common polyphonic
  character (:data:`POLYPHONES`: 着 zhao, 行 hang …) 0.9.  Rare readings (是 ti) are ignored.

One-character keywords match by characters only.  A keyword of two syllables needs a mean
similarity of 0.75, a longer one 0.7 with at least one syllable at 0.9 or better (a ``loose``
matcher, for district names, takes a longer one with every syllable only close).  Every
syllable must be at least close.

:func:`sound_text` / :func:`sound_classes` turn text and keywords into one code character per
syllable, so that regular expressions can match by sound (with fillers in between).
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache

from pypinyin import Style, lazy_pinyin
from pypinyin.pinyin_dict import pinyin_dict

SCORE_CHAR = 1.0
SCORE_PINYIN = 0.85
SIM_FUZZY = 0.9
SIM_CLOSE = 0.6

_TONES = str.maketrans(
    "āáǎàēéěèīíǐìōóǒòūúǔùǖǘǚǜüńňǹḿ",
    "aaaaeeeeiiiioooouuuuvvvvvnnnm",
)
_INITIALS = ("zh", "ch", "sh", "b", "p", "m", "f", "d", "t", "n", "l", "g", "k", "h", "j", "q")
_INITIALS += ("x", "r", "z", "c", "s", "y", "w")
_FUZZY_INITIAL = {"zh": "z", "ch": "c", "sh": "s", "l": "n", "r": "n", "h": "f"}
_FUZZY_FINAL = {"ang": "an", "eng": "en", "ing": "in", "iang": "ian", "uang": "uan"}
_CLOSE_FINALS = {
    frozenset(p)
    for p in (
        ("in", "un"), ("in", "en"), ("un", "en"), ("i", "u"), ("ou", "ong"), ("ou", "u"),
        ("o", "uo"), ("ou", "uo"), ("ai", "ei"), ("ui", "ei"), ("ie", "ue"), ("iu", "ou"),
        ("uan", "an"), ("ian", "an"), ("iao", "ao"), ("a", "ia"), ("ong", "on"),
    )
}  # fmt: skip
_CLOSE_INITIALS = {frozenset(p) for p in (("b", "p"), ("d", "t"), ("g", "k"), ("j", "q"))}


def split_syllable(syllable: str) -> tuple[str, str]:
    """A toneless syllable's initial and final (``zhao`` → ``zh``, ``ao``; ``an`` → ``""``,
    ``an``)."""
    for ini in _INITIALS:
        if syllable.startswith(ini) and len(syllable) > len(ini):
            return ini, syllable[len(ini) :]
    return "", syllable


def fuzzy_key(syllable: str) -> str:
    """The syllable with the fuzzy-pinyin pairs merged (zhi → zi, ling → nin, hu → fu): two
    syllables with the same key sound alike to a caller with an accent."""
    ini, fin = split_syllable(syllable)
    return _FUZZY_INITIAL.get(ini, ini) + _FUZZY_FINAL.get(fin, fin)


@lru_cache(maxsize=65536)
def similarity(heard: str, want: str, primary: bool = True) -> float:
    """How alike two toneless syllables sound (1.0 same, 0.9 fuzzy pair, 0.6 close, else 0)."""
    if heard == want:
        return 1.0 if primary else SIM_FUZZY
    hi, hf = split_syllable(heard)
    wi, wf = split_syllable(want)
    hi_n, wi_n = _FUZZY_INITIAL.get(hi, hi), _FUZZY_INITIAL.get(wi, wi)
    hf_n, wf_n = _FUZZY_FINAL.get(hf, hf), _FUZZY_FINAL.get(wf, wf)
    if not primary:
        return 0.0
    if hi_n == wi_n and hf_n == wf_n:
        return SIM_FUZZY
    if hi_n == wi_n and frozenset((hf_n, wf_n)) in _CLOSE_FINALS:
        return SIM_CLOSE
    if hf_n == wf_n and frozenset((hi_n, wi_n)) in _CLOSE_INITIALS:
        return SIM_CLOSE
    return 0.0


POLYPHONES = frozenset(
    "着行重长还发得地了都会乐藏调传觉降便差朝称处弹当倒分干供好和横几假间将角结解卷看空累量"
    "没难宁强切曲圈塞散少舍识属数说宿似提体同为相血应载扎曾折只种转作省奇区单朴查仇"
)
"""Characters whose other readings are common enough to be heard (the rest: main reading)."""


@lru_cache(maxsize=32768)
def readings(char: str) -> tuple[str, ...]:
    """Toneless pinyin of one character: the main reading, then for :data:`POLYPHONES` the
    others (``()`` if it has none, as for digits, Latin letters and emoji)."""
    raw = pinyin_dict.get(ord(char))
    if not raw:
        return ()
    out: list[str] = []
    for r in raw.split(",") if char in POLYPHONES else raw.split(",")[:1]:
        s = r.strip().translate(_TONES)
        if s and s.isascii() and s.isalpha() and s not in out:
            out.append(s)
    return tuple(out)


def keyword_syllables(word: str) -> tuple[str, ...]:
    """Toneless pinyin of a keyword, read as a phrase (so 着火 is zhao huo)."""
    return tuple(s.replace("ü", "v") for s in lazy_pinyin(word, style=Style.NORMAL))


@dataclass(frozen=True, slots=True)
class Match:
    """One keyword found in a text: span ``[start, end)``; ``how``: ``char`` (same characters),
    ``pinyin`` (same pinyin), ``fuzzy`` (fuzzy pairs or another reading), ``close`` (some
    syllable only close)."""

    word: str
    payload: object
    start: int
    end: int
    score: float
    how: str


@dataclass(frozen=True, slots=True)
class _Entry:
    word: str
    payload: object
    syllables: tuple[str, ...]


class PinyinMatcher:
    """Finds a fixed set of keywords (each with a payload) in texts, by characters and pinyin."""

    def __init__(self, entries: Iterable[tuple[str, object]], loose: bool = False) -> None:
        """``loose``: keywords of three or more syllables may match with every syllable only
        close (for a short list of long names such as districts: 狗受气 → 拱墅区)."""
        self._loose = loose
        self._entries: list[_Entry] = []
        self._by_first: dict[str, list[_Entry]] = {}
        seen: set[tuple[str, object]] = set()
        for word, payload in entries:
            word = word.strip()
            if not word or (word, payload) in seen:
                continue
            seen.add((word, payload))
            syl = keyword_syllables(word)
            usable = len(syl) == len(word) and all(s.isascii() and s.isalpha() for s in syl)
            entry = _Entry(word, payload, syl if usable and len(word) >= 2 else ())
            self._entries.append(entry)
            if entry.syllables:
                self._by_first.setdefault(entry.syllables[0], []).append(entry)
        self._firsts = tuple(self._by_first)

    @lru_cache(maxsize=4096)  # noqa: B019 - matchers live as long as their config
    def _firsts_like(self, heard: str, primary: bool) -> tuple[tuple[str, float], ...]:
        out = []
        for first in self._firsts:
            sim = similarity(heard, first, primary)
            if sim > 0:
                out.append((first, sim))
        return tuple(out)

    def find(self, text: str, syl: Sequence[tuple[str, ...]]) -> list[Match]:
        """All keyword occurrences in ``text`` (``syl[i]`` = :func:`readings` of ``text[i]``).

        A pinyin match that only repeats a character match of the same keyword is dropped.
        """
        found: dict[tuple[str, object, int], Match] = {}
        for e in self._entries:
            start = text.find(e.word)
            while start >= 0:
                found[(e.word, e.payload, start)] = Match(
                    e.word, e.payload, start, start + len(e.word), SCORE_CHAR, "char"
                )
                start = text.find(e.word, start + 1)
        n = len(text)
        for i in range(n):
            rs = syl[i]
            if not rs:
                continue
            best_first: dict[str, float] = {}
            for k, r in enumerate(rs):
                for first, sim in self._firsts_like(r, k == 0):
                    if sim > best_first.get(first, 0.0):
                        best_first[first] = sim
            for first, sim0 in best_first.items():
                for e in self._by_first[first]:
                    key = (e.word, e.payload, i)
                    if key in found:
                        continue
                    m = self._score(e, syl, i, n, sim0, self._loose)
                    if m is not None:
                        found[key] = m
        return sorted(found.values(), key=lambda m: (m.start, -m.score))

    @staticmethod
    def _score(
        e: _Entry, syl: Sequence[tuple[str, ...]], i: int, n: int, sim0: float, loose: bool
    ) -> Match | None:
        length = len(e.syllables)
        if i + length > n:
            return None
        sims = [sim0]
        for j in range(1, length):
            rs = syl[i + j]
            if not rs:
                return None
            best = 0.0
            for k, r in enumerate(rs):
                best = max(best, similarity(r, e.syllables[j], k == 0))
            if best < SIM_CLOSE:
                return None
            sims.append(best)
        mean = sum(sims) / length
        if length == 2 and mean < 0.75:
            return None
        if length > 2 and not loose and (mean < 0.7 or max(sims) < SIM_FUZZY):
            return None
        how = "pinyin" if mean == 1.0 else "fuzzy" if min(sims) >= SIM_FUZZY else "close"
        return Match(e.word, e.payload, i, i + length, round(SCORE_PINYIN * mean, 3), how)


def text_readings(text: str) -> list[tuple[str, ...]]:
    """:func:`readings` for every character of ``text``."""
    return [readings(c) for c in text]


_CODES: dict[str, str] = {}
_CODES_LOCK = threading.Lock()


def syllable_code(syllable: str) -> str:
    """One private-use character standing for a toneless syllable (same for every caller)."""
    code = _CODES.get(syllable)
    if code is None:
        with _CODES_LOCK:
            code = _CODES.setdefault(syllable, chr(0xF0000 + len(_CODES)))
    return code


def sound_text(text: str) -> str:
    """``text`` with every character that has a reading replaced by its main syllable's code,
    so regular expressions can match by sound (留了很多血 like 流了很多血)."""
    out = []
    for c in text:
        rs = readings(c)
        out.append(syllable_code(rs[0]) if rs else c)
    return "".join(out)


def sound_classes(word: str) -> list[str]:
    """Per character of a keyword, the :func:`sound_text` codes it may be heard as (its phrase
    reading and its own readings: 血 as xie and xue); ``[]`` if a character has no reading."""
    phrase = keyword_syllables(word)
    if len(phrase) != len(word):
        return []
    out = []
    for c, s in zip(word, phrase, strict=True):
        rs = readings(c)
        if not rs:
            return []
        out.append("".join(sorted({syllable_code(x) for x in (s, *rs)})))
    return out
