"""Ticket-field extraction from a Mandarin transcript: :func:`extract` (numbers masked with
:func:`hotline.privacy.mask_text`, the one masking of free text).

``extract(text, config)`` turns what a caller said (often a recogniser's guess) into a ticket
draft, a JSON-able dict:

``transcript``      the text as stored: control characters removed, sensitive numbers masked
``type``            咨询/投诉/举报/建议/求助/表扬, or ``None`` when nothing says what kind of demand
``seat``            a seat id of the config (``gjj``), the general seat when the matter has no
                    specialist seat, ``None`` when no matter was understood; ``seat_name`` its name
``department``      承办 category (城管, 生态环境, 公积金 …) or ``None``
``district``        one of ``config.city.districts`` or ``None``; ``address`` road/小区/号 text
``callback``        the number to call back, digits only (spoken 一三八…/幺/mixed → 138…)
``name``            how the caller wants to be addressed (王先生, 张三, 王) or ``None``
``emergency``       110/119/120/122 or ``None``; ``emergency_words``: the config words heard
                    for it; ``emergency_heard``: every line heard → its words (fire first,
                    then 120, 110, 122: :data:`EMERGENCY_ORDER`)
``out_of_scope``    a key of ``config.caller_rules.out_of_scope`` or ``None`` (+ ``…_name``)
``summary``         one line; ``demands``: one draft per matter (第八条), each with ``text``,
                    ``type``, ``seat``, ``seat_name``, ``department``, ``district``, ``summary``
                    and ``confidence``
``confidence``      per field, 0..1 (0 for an empty field); ``low_confidence`` lists the filled
                    fields under :data:`LOW_CONFIDENCE` — the IVR must not let such a seat
                    override the caller's keypad choice

Personal data (第二十条).  Identity numbers (18 digits, last may be X/叉; also 15-digit old
ones) and bank card numbers (16–19 digits) — any run of 15 or more digits, spoken in Chinese
digits or written — are masked in every stored text (transcript, summaries, demand texts,
address) to their last four digits.  Phone numbers are needed to do the job, so ``callback``
keeps the full number; in the stored texts a mobile or long-distance number keeps only its
first three (or area code) and last four digits (``138****2345``), so texts forwarded to 承办
单位 do not spread it.  Names are kept: the agent must address the caller.

Script.  Fields are matched and given in simplified characters (traditional ones, which
Whisper often writes, are mapped character by character with OpenCC's table); the transcript
keeps the characters that were recognised.

Matching.  Keywords (type cues and the topic lexicon in :mod:`speech.fields_lexicon`, the
config's emergency words, out-of-scope words and districts) are found on characters and on
toneless pinyin (:mod:`speech.fields_pinyin`), so 攻击金 still finds 公积金 and 狗受区 finds
拱墅区, at a lower confidence.  A pinyin-only match inside a character match of another
lexicon word is ignored (自行车 is not 咨询; :data:`speech.fields_lexicon.COMMON_WORDS`).
Emergency words count by characters, the same pinyin or fuzzy pairs, not by merely close
syllables (a false alarm sends a caller to 110); they also match with a few filler characters inside
(流了很多血 → 流血, 着了火 → 着火), and not right after a denial (没有着火, 没有人受伤).

Totality.  Any input gives a draft, never an exception: non-strings are converted, lone
surrogates and control characters are replaced, spaces between Chinese characters or digits
dropped (我 的 电话 是 一 三 八 …), and only the first :data:`MAX_ANALYSED`
characters are analysed (masking still covers the whole transcript; ``truncated`` says so).
Matchers are built once per config object.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from hotline.config import HotlineConfig
from hotline.privacy import is_long_distance, is_mobile, mask_text, number_runs
from speech import fields_lexicon as lex
from speech.fields_emergency import assess
from speech.fields_pinyin import Match, PinyinMatcher, sound_classes, sound_text, text_readings
from speech.fields_scope import scope_cue

LOW_CONFIDENCE = 0.6
"""Fields with a lower confidence are listed in ``low_confidence``."""
MAX_ANALYSED = 2000
"""Characters of a transcript that field extraction looks at (an utterance is ~100)."""
MAX_DEMANDS = 10
"""At most this many demands per utterance (the transcript keeps the rest)."""
EMERGENCY_ORDER = ("119", "120", "110", "122")
"""When several lines are heard: fire first, then medical, police, traffic (120/110 alert 122)."""

# ---- text clean-up and numbers ------------------------------------------------------------
_ZERO_WIDTH = re.compile("[\u200b-\u200f\u2060\ufeff\u00ad]")
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_SURROGATE = re.compile("[\ud800-\udfff]")
_CJK_GAP = re.compile(
    "(?<=[\u3400-\u9fff\uf900-\ufaff0-9])[ \t]+(?=[\u3400-\u9fff\uf900-\ufaff0-9])"
)
"""Spaces between Chinese characters or digits (a word-by-word recogniser's output)."""
_FULLWIDTH = str.maketrans(
    {0xFF10 + i: ord("0") + i for i in range(10)}
    | {0xFF21 + i: ord("A") + i for i in range(26)}
    | {0xFF41 + i: ord("a") + i for i in range(26)}
    | {0x3000: ord(" ")}
)
_PHONE_CUE = re.compile("电话|手机|号码|联系|回电|打给|拨打|回拨|致电|打我")


@lru_cache(maxsize=1)
def _to_simplified() -> dict[int, int]:
    """Traditional → simplified, character for character (OpenCC's TSCharacters table, first
    choice; empty if the opencc package is not installed)."""
    try:
        import opencc
    except ImportError:
        return {}
    table: dict[int, int] = {}
    path = Path(opencc.__file__).parent / "dictionary" / "TSCharacters.txt"
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError:
        return {}
    for line in lines:
        trad, _, simp = line.partition("\t")
        first = simp.split(" ")[0] if simp else ""
        if len(trad) == 1 and len(first) == 1:
            table[ord(trad)] = ord(first)
    return table


def _clean(text: object) -> str:
    """A string whatever came in: surrogates → U+FFFD, controls → space, full-width → ASCII."""
    if isinstance(text, bytes | bytearray):
        text = bytes(text).decode("utf-8", "replace")
    elif not isinstance(text, str):
        try:
            text = str(text) if text is not None else ""
        except Exception:
            text = ""
    text = _SURROGATE.sub("\ufffd", text)
    text = _ZERO_WIDTH.sub("", text)
    text = _CONTROL.sub(" ", text).translate(_FULLWIDTH)
    return _CJK_GAP.sub("", text)


# ---- per-config matchers ------------------------------------------------------------------
_FILLERS = "了着过很多好大量不少一些的点得满地身是有个场"
_NEGATED = re.compile("(?:没有|没|不是|并非|不会|未|无)(?:人|谁)?$")


def _negated(text: str, start: int) -> bool:
    """Whether a word at ``start`` is denied right before it (没有着火, 没有人受伤)."""
    return _NEGATED.search(text, max(0, start - 4), start) is not None


@dataclass(frozen=True, slots=True)
class _Tables:
    matcher: PinyinMatcher
    short_districts: PinyinMatcher
    loose_districts: PinyinMatcher
    emergency_gapped: tuple[tuple[re.Pattern[str], str, str, bool], ...]
    """(pattern, word, line, on sound codes) for emergency words said with fillers inside."""
    topic_seat: dict[int, str | None]
    """Topic index → config seat id (``None``: the general seat)."""
    seat_names: dict[str, str]
    general: str
    address: re.Pattern[str]
    lexicon_words: frozenset[str]
    by_char: dict[str, tuple[tuple[str, object], ...]]
    """First character → (word, payload) of the words found by characters only."""


_CACHE: dict[int, tuple[HotlineConfig, _Tables]] = {}
_CACHE_LOCK = threading.Lock()


def _seat_key(name: str) -> str:
    for suffix in lex.SUFFIXES_SEAT:
        if name.endswith(suffix) and len(name) > len(suffix):
            return name[: -len(suffix)]
    return name


def _build(config: HotlineConfig) -> _Tables:
    entries: list[tuple[str, object]] = []
    lexicon_words: set[str] = set()
    for typ, cues in lex.TYPE_CUES.items():
        for word, weight in cues.items():
            entries.append((word, ("type", typ, weight)))
            lexicon_words.add(word)
    by_char: dict[str, list[tuple[str, object]]] = {}
    for idx, topic in enumerate(lex.TOPICS):
        for word, weight in topic.words.items():
            if word in lex.CORE_TOPIC_WORDS:
                entries.append((word, ("topic", idx, weight)))
            else:  # the many duty words: by characters only (cheap, and no look-alikes)
                by_char.setdefault(word[0], []).append((word, ("topic", idx, weight)))
            lexicon_words.add(word)
    gapped = []
    filler_codes = "".join(sorted({sound_text(c) for c in _FILLERS}))
    for line, words in config.caller_rules.emergency_words.items():
        for word in words:
            entries.append((word, ("emergency", line)))
            lexicon_words.add(word)
            if len(word) >= 2:
                inner = f"[{_FILLERS}]{{0,4}}".join(re.escape(c) for c in word)
                gapped.append((re.compile(inner), word, line, False))
                classes = sound_classes(word)
                if classes:  # by sound, with at least one filler (留学 is not 流血)
                    inner = f"[{filler_codes}]{{1,4}}".join(f"[{c}]" for c in classes)
                    gapped.append((re.compile(inner), word, line, True))
    for key, rule in config.caller_rules.out_of_scope.items():
        for word in rule.words:
            entries.append((word, ("scope", key)))
            lexicon_words.add(word)
    for word in (*lex.COMMON_WORDS, *lex.HONORIFICS):
        entries.append((word, ("common",)))
        lexicon_words.add(word)
    short: list[tuple[str, object]] = []
    for district in config.city.districts:
        entries.append((district, ("district", district)))
        lexicon_words.add(district)
        stem = district[:-1] if district[-1:] in "区县市旗" else district
        if len(stem) >= 2 and stem != district:
            short.append((stem, ("district", district)))
    by_key = {_seat_key(s.name): s.id for s in config.seats}
    general = config.general_seat.id
    topic_seat = {
        i: (by_key.get(t.seat) if by_key.get(t.seat) != general else None)
        for i, t in enumerate(lex.TOPICS)
    }
    named = "|".join(sorted(map(re.escape, lex.PLACE_SUFFIXES), key=len, reverse=True))
    numbered = "|".join(sorted(map(re.escape, lex.NUMBERED_SUFFIXES), key=len, reverse=True))
    stop = re.escape(lex.NOT_IN_PLACE_NAMES + "去来住位于近附靠")
    number = "[0-9零〇一二三四五六七八九十百千幺两]{1,6}"
    token = rf"(?:[^\W_{stop}]{{1,8}}?(?:{named})|{number}(?:{numbered}))"
    return _Tables(
        matcher=PinyinMatcher(entries),
        short_districts=PinyinMatcher(short),
        loose_districts=PinyinMatcher(
            [(d, ("district", d)) for d in config.city.districts], loose=True
        ),
        emergency_gapped=tuple(gapped),
        topic_seat=topic_seat,
        seat_names={s.id: s.name for s in config.seats},
        general=general,
        address=re.compile(rf"(?:{token})+"),
        lexicon_words=frozenset(lexicon_words),
        by_char={c: tuple(v) for c, v in by_char.items()},
    )


def _tables(config: HotlineConfig) -> _Tables:
    with _CACHE_LOCK:
        hit = _CACHE.get(id(config))
        if hit is not None and hit[0] is config:
            return hit[1]
    tables = _build(config)
    with _CACHE_LOCK:
        if len(_CACHE) >= 8:
            _CACHE.clear()
        _CACHE[id(config)] = (config, tables)
    return tables


# ---- extraction ---------------------------------------------------------------------------
def _drop_shadowed(matches: list[Match], lexicon_words: frozenset[str]) -> list[Match]:
    """Drop pinyin-only matches that lie inside a character match of another lexicon word."""
    spans = [(m.start, m.end, m.word) for m in matches if m.how == "char"]
    out = []
    for m in matches:
        if m.how != "char" and any(
            s < m.end and m.start < e and w != m.word and w in lexicon_words for s, e, w in spans
        ):
            continue
        out.append(m)
    return out


def _char_matches(text: str, by_char: dict[str, tuple[tuple[str, object], ...]]) -> list[Match]:
    """Occurrences of the character-only words (:attr:`_Tables.by_char`)."""
    out = []
    for i, c in enumerate(text):
        for word, payload in by_char.get(c, ()):
            if text.startswith(word, i):
                out.append(Match(word, payload, i, i + len(word), 1.0, "char"))
    return out


def _best_per_word(matches: list[Match]) -> dict[tuple[str, object], Match]:
    best: dict[tuple[str, object], Match] = {}
    for m in matches:
        key = (m.word, m.payload)
        if key not in best or m.score > best[key].score:
            best[key] = m
    return best


def _ranked(scores: dict[Any, float]) -> tuple[Any, float, float]:
    """(best key, its confidence, raw score) for weighted keyword scores; 3 = a sure word."""
    if not scores:
        return None, 0.0, 0.0
    order = sorted(scores.items(), key=lambda kv: -kv[1])
    top, top_score = order[0]
    second = order[1][1] if len(order) > 1 else 0.0
    conf = min(1.0, top_score / 3.0) * (top_score / (top_score + second))
    return top, round(conf, 3), top_score


@dataclass(slots=True)
class _Segment:
    start: int
    end: int
    cut: str
    """What started it: ``start``, ``word`` (另外 …), ``sentence`` (。？！) or ``soft``
    (，/还有 …).  The stronger the cut, the less it takes to make a separate demand."""


_SENTENCE_END = re.compile("[。！？!?；;\n]+")
_SOFT_CUT = re.compile("[，,、]+|还有|以及|然后|再就是|同时")
_CUT_RANK = {"start": 0, "soft": 1, "sentence": 2, "word": 3}
_ENUMERATION = re.compile(
    "(?<![统唯万专])[一二三四]是|第[一二三四](?:个|件|条|点)?(?![次天年月名批期季届层楼号])"
    "|首先|其次|再一个|再有就是|另一个|另一件|还有(?=[，,、])"
)
"""An enumeration of matters (一是…二是…, 第一…第二…, 还有，…): each item is a demand of its
own when it names a matter (第八条)."""


def _segments(text: str) -> list[_Segment]:
    cuts: list[tuple[int, str]] = []
    for m in _SENTENCE_END.finditer(text):
        cuts.append((m.end(), "sentence"))
    for m in _SOFT_CUT.finditer(text):
        cuts.append((m.end() if m.group()[0] in "，,、" else m.start(), "soft"))
    for m in _ENUMERATION.finditer(text):
        cuts.append((m.start(), "word"))
    for word in lex.DEMAND_SEPARATORS:
        start = text.find(word)
        while start >= 0:
            cuts.append((start, "word"))
            start = text.find(word, start + len(word))
    cuts.sort()
    segs: list[_Segment] = []
    pos, cut = 0, "start"
    for at, kind in cuts:
        if at >= len(text):
            break
        if at > pos:
            segs.append(_Segment(pos, at, cut))
            pos, cut = at, kind
        elif _CUT_RANK[kind] > _CUT_RANK[cut]:
            cut = kind
    segs.append(_Segment(pos, len(text), cut))
    joined: list[_Segment] = []
    for seg in segs:  # 第一，超市… : the marker alone starts the item after it
        last = joined[-1] if joined else None
        if (
            last is not None
            and last.cut == "word"
            and last.end - last.start <= 6
            and (
                _ENUMERATION.match(text, last.start)
                or any(text.startswith(w, last.start) for w in lex.DEMAND_SEPARATORS)
            )
        ):
            joined[-1] = _Segment(last.start, seg.end, "word")
            continue
        joined.append(seg)
    return joined


def _separate(
    seg: _Segment,
    top: tuple[int, float],
    prev: tuple[int, float],
    asks: tuple[bool, bool],
    t: _Tables,
) -> bool:
    """Whether a segment naming topic ``top`` is a demand of its own after one naming
    ``prev`` (第八条): always after 另外/一是…二是…; after a sentence end for another seat
    when the sentence says what it wants or names its matter with more than one weak word (我在
    西湖区上班，电话是… only tells where the caller is and how to call back); after a comma or
    还有 only for another seat named by a sure word on both sides, each side saying what it
    wants (``asks``: a type cue before, in this segment) — 我买了套二手房，想问公积金贷款 is one
    question with its background."""
    if seg.cut == "word":  # the same matter again only if asked or told about anew
        return top[0] != prev[0] or asks[1]
    other_seat = t.topic_seat.get(top[0]) != t.topic_seat.get(prev[0])
    if seg.cut == "sentence":
        return other_seat and (asks[1] or top[1] >= SURE_TOPIC)
    return seg.cut == "soft" and other_seat and min(top[1], prev[1]) >= 3.0 and all(asks)


SURE_TOPIC = 2.0
"""A sentence with no want of its own needs this much topic weight to be a matter of its own."""

_PLACE_AFTER = re.compile("门口|旁边|附近|对面|边上|那边|周边|楼下|隔壁|里的|那家|这家")
PLACE_FACTOR = 0.3
"""A topic word used as a landmark (学校门口的路灯, 公交站旁边的超市) counts this much."""


def _scores(matches: list[Match], start: int, end: int, text: str = "") -> tuple[dict, dict]:
    """Weighted type and topic scores of the matches starting in ``[start, end)``; a guess
    from similar pinyin counts only when nothing of its kind was heard more surely; a topic
    word followed by 门口/旁边… names a place, not the matter (:data:`PLACE_FACTOR`)."""
    types: dict[str, float] = {}
    topics: dict[int, float] = {}
    inside = _best_per_word([m for m in matches if start <= m.start < end]).values()
    sure = {m.payload[0] for m in inside if m.how in ("char", "pinyin")}  # type: ignore[index]
    for m in inside:
        kind = m.payload[0]  # type: ignore[index]
        if m.how not in ("char", "pinyin") and kind in sure:
            continue
        if kind == "type":
            _, typ, weight = m.payload  # type: ignore[misc]
            types[typ] = types.get(typ, 0.0) + weight * m.score
        elif kind == "topic":
            _, idx, weight = m.payload  # type: ignore[misc]
            if m.how not in ("char", "pinyin") and m.word not in lex.CORE_TOPIC_WORDS:
                continue
            if text and _PLACE_AFTER.match(text, m.end):
                weight *= PLACE_FACTOR
            topics[idx] = topics.get(idx, 0.0) + weight * m.score
    return types, topics


_LEAD = re.compile(r"^(?:[\s，,。、]|你好|您好|喂|嗯|啊|那个|就是|请问|我想|我要|另外|此外|还有)+")


def _summary(kind: str | None, department: str | None, district: str | None, text: str) -> str:
    core = _LEAD.sub("", text).strip(" ，,。.!！?？;；")
    core = re.sub(r"\s+", " ", core)
    if len(core) > 40:
        core = core[:40] + "…"
    head = "/".join(x for x in (kind, department, district) if x)
    return f"【{head}】{core}" if head else core


def _emergency_words(text: str, matches: list[Match], tables: _Tables) -> dict[str, list[str]]:
    """The config's emergency words heard per line (by characters, pinyin, with fillers)."""
    heard: dict[str, dict[str, float]] = {}
    for m in matches:
        if m.payload[0] == "emergency" and m.how != "close":  # type: ignore[index]
            if _negated(text, m.start):
                continue
            line = m.payload[1]  # type: ignore[index]
            heard.setdefault(line, {})
            heard[line][m.word] = max(heard[line].get(m.word, 0.0), m.score)
    sound = sound_text(text)
    for pattern, word, line, on_sound in tables.emergency_gapped:
        for m in pattern.finditer(sound if on_sound else text):
            if not _negated(text, m.start()):
                heard.setdefault(line, {})
                score = 0.8 if on_sound else 0.9
                heard[line][word] = max(heard[line].get(word, 0.0), score)
                break
    return {
        line: sorted(heard[line], key=lambda w: -heard[line][w])
        for line in EMERGENCY_ORDER
        if line in heard
    }


def _district(text: str, matches: list[Match], tables: _Tables) -> tuple[str | None, float]:
    cands = [(m.score, -m.start, m.payload[1]) for m in matches if m.payload[0] == "district"]  # type: ignore[index]
    if not cands:
        syl = text_readings(text)
        for m in tables.short_districts.find(text, syl):
            if m.how == "char":
                cands.append((0.75, -m.start, m.payload[1]))  # type: ignore[index]
        if not cands:  # a district name heard with every syllable only close: 狗受气
            for m in tables.loose_districts.find(text, syl):
                cands.append((m.score, -m.start, m.payload[1]))  # type: ignore[index]
    if not cands:
        return None, 0.0
    score, _, name = max(cands)
    return name, round(score, 3)


def _address(text: str, tables: _Tables, district: str | None) -> tuple[str | None, float]:
    best = ""
    for m in tables.address.finditer(text):
        found = m.group()
        cut = max((found.rfind(w) + len(w) for w in _ADDRESS_LEAD if w in found), default=0)
        found = found[cut:]
        if district and district in found:
            found = found[found.index(district) :]
        if len(found) > len(best):
            best = found
    if len(best) < 3:
        return None, 0.0
    if len(best) > 40:  # no real address is this long: keep its end, say it is doubtful
        return best[-40:], 0.3
    return best, 0.8 if re.search("路|街|大道|巷|弄|小区|号", best) else 0.65


_ADDRESS_LEAD = (*(w for cues in lex.TYPE_CUES.values() for w in cues), "一下", "地址", "反映")


def _callback(text: str) -> tuple[str | None, float]:
    best: tuple[float, str] | None = None
    for run in number_runs(text):
        d = run.digits
        if len(d) == 13 and d.startswith("86") and is_mobile(d[2:]):
            d = d[2:]  # +86 country code
        cue = bool(_PHONE_CUE.search(text, max(0, run.start - 12), run.start)) or bool(
            _PHONE_CUE.search(text, run.end, run.end + 8)
        )
        if is_mobile(d):
            score = 0.95 if cue else 0.8
        elif is_long_distance(d):
            score = 0.85 if cue else 0.7
        elif len(d) in (7, 8) and d[0] not in "01" and cue:
            score = 0.6
        else:
            continue
        if best is None or score > best[0]:
            best = (score, d)
    return (best[1], best[0]) if best else (None, 0.0)


_NAME_CHARS = f"[^\\W\\d_{re.escape(lex.NOT_IN_PLACE_NAMES)}电话住今年家姓叫名字号手机]"
_SURNAME = "(?:" + "|".join(lex.COMPOUND_SURNAMES) + f"|[{lex.SURNAMES}])"
_HONORIFIC = "(?:" + "|".join(lex.HONORIFICS) + ")"
_NAME_PATTERNS = (
    (re.compile(f"(?:我叫|我的名字是|我的名字叫|名字叫)({_SURNAME}{_NAME_CHARS}{{1,2}})"), 0.85),
    (re.compile(f"我是({_SURNAME}{_HONORIFIC})"), 0.85),
    (re.compile(f"(?:我|免贵)姓({_SURNAME})"), 0.8),
    (re.compile(f"({_SURNAME}{_HONORIFIC})"), 0.55),
)


def _name(text: str) -> tuple[str | None, float]:
    for pattern, conf in _NAME_PATTERNS:
        m = pattern.search(text)
        if m:
            name = m.group(1)
            if "姓" in m.group(0):  # 我姓王先生 / 我姓王，王先生
                titled = re.search(f"{re.escape(name)}({_HONORIFIC})", text[m.start() :])
                if titled:
                    name += titled.group(1)
            return name, conf
    return None, 0.0


def _empty_draft(transcript: str) -> dict[str, Any]:
    return {
        "transcript": transcript,
        "type": None,
        "seat": None,
        "seat_name": None,
        "department": None,
        "district": None,
        "address": None,
        "callback": None,
        "name": None,
        "emergency": None,
        "emergency_words": [],
        "emergency_heard": {},
        "emergency_context": None,
        "emergency_mentioned": {},
        "out_of_scope": None,
        "out_of_scope_name": None,
        "summary": "",
        "demands": [],
        "confidence": {},
        "low_confidence": [],
        "truncated": False,
    }


def extract(text: str, config: HotlineConfig) -> dict[str, Any]:
    """A ticket draft for what a caller said (see the module docstring for every key)."""
    clean = _clean(text).strip()
    draft = _empty_draft(mask_text(clean))
    try:
        _fill(draft, clean, config)
    except Exception as exc:  # never lose the call: keep the transcript, flag every field
        draft["error"] = f"field extraction failed: {type(exc).__name__}"
        draft["confidence"] = dict.fromkeys(_FIELDS, 0.0)
    return draft


_FIELDS = (
    "type", "seat", "department", "district", "address", "callback", "name", "emergency",
    "out_of_scope",
)  # fmt: skip


def _fill(draft: dict[str, Any], clean: str, config: HotlineConfig) -> None:
    tables = _tables(config)
    text = clean[:MAX_ANALYSED].translate(_to_simplified())
    draft["truncated"] = len(clean) > MAX_ANALYSED
    syl = text_readings(text)
    matches = tables.matcher.find(text, syl) + _char_matches(text, tables.by_char)
    matches = _drop_shadowed(matches, tables.lexicon_words)
    conf: dict[str, float] = {}

    said = _emergency_words(text, matches, tables)
    blocked = frozenset(
        i
        for m in matches
        if m.payload[0] in ("common", "type", "topic", "scope")  # type: ignore[index]
        and m.how == "char"
        for i in range(m.start, m.end)
    )
    heard = assess(text, config.caller_rules.emergency_words, EMERGENCY_ORDER, syl, said, blocked)
    line = heard.line
    draft["emergency"] = line
    draft["emergency_words"] = heard.lines.get(line, []) if line else []
    draft["emergency_heard"] = heard.lines if line else {}
    draft["emergency_context"] = heard.context
    draft["emergency_mentioned"] = heard.lines
    conf["emergency"] = heard.confidence if line else 0.0

    scope = [m for m in matches if m.payload[0] == "scope"]  # type: ignore[index]
    if scope:
        top = max(scope, key=lambda m: (m.score, -m.start))
        key = top.payload[1]  # type: ignore[index]
        draft["out_of_scope"] = key
        draft["out_of_scope_name"] = config.caller_rules.out_of_scope[key].name
        conf["out_of_scope"] = round(top.score, 3)
    elif line is None and (cue := scope_cue(text, config.caller_rules.out_of_scope)):
        draft["out_of_scope"] = cue
        draft["out_of_scope_name"] = config.caller_rules.out_of_scope[cue].name
        conf["out_of_scope"] = 0.7
    else:
        conf["out_of_scope"] = 0.0

    draft["district"], conf["district"] = _district(text, matches, tables)
    address, conf["address"] = _address(text, tables, draft["district"])
    draft["address"] = mask_text(address) if address else None
    draft["callback"], conf["callback"] = _callback(text)
    draft["name"], conf["name"] = _name(text)

    utter_types, _ = _scores(matches, 0, len(text), text)
    utter_type, utter_type_conf, _ = _ranked(utter_types)
    demands = _demands(
        text, matches, tables, utter_type, utter_type_conf, draft["district"], line is not None
    )
    draft["demands"] = demands
    if demands:
        first = demands[0]
        for key in ("type", "seat", "seat_name", "department"):
            draft[key] = first[key]
        for key in ("type", "seat", "department"):
            conf[key] = first["confidence"][key]
        draft["summary"] = "；".join(d["summary"] for d in demands)
    else:
        conf.update(type=0.0, seat=0.0, department=0.0)
        draft["summary"] = _summary(None, None, draft["district"], draft["transcript"])[:60]
    draft["confidence"] = {k: conf.get(k, 0.0) for k in _FIELDS}
    draft["low_confidence"] = [
        k for k in _FIELDS if draft.get(k) is not None and conf.get(k, 0.0) < LOW_CONFIDENCE
    ]


def _demands(
    text: str,
    matches: list[Match],
    tables: _Tables,
    utter_type: str | None,
    utter_type_conf: float,
    district: str | None,
    emergency: bool,
) -> list[dict[str, Any]]:
    """One draft per matter: segments split at sentence ends and 另外/还有…, merged back when
    they do not name a different matter."""
    parts: list[tuple[_Segment, dict, dict]] = []
    for seg in _segments(text):
        types, topics = _scores(matches, seg.start, seg.end, text)
        if parts:
            prev_seg, prev_types, prev_topics = parts[-1]
            differs = bool(topics and prev_topics) and _separate(
                seg,
                max(topics.items(), key=lambda kv: kv[1]),
                max(prev_topics.items(), key=lambda kv: kv[1]),
                (bool(prev_types), max(types.values(), default=0.0) >= 2.0),
                tables,
            )
            if not differs:
                merged = _Segment(prev_seg.start, seg.end, prev_seg.cut)
                m_types = {k: prev_types.get(k, 0) + types.get(k, 0) for k in {*prev_types, *types}}
                m_topics = {
                    k: prev_topics.get(k, 0) + topics.get(k, 0) for k in {*prev_topics, *topics}
                }
                parts[-1] = (merged, m_types, m_topics)
                continue
        parts.append((seg, types, topics))

    out = []
    for seg, types, topics in parts[:MAX_DEMANDS]:
        kind, type_conf, _ = _ranked(types)
        if kind is None and utter_type is not None and len(parts) > 1:
            kind, type_conf = utter_type, round(utter_type_conf * 0.8, 3)
        idx, dept_conf, _ = _ranked(topics)
        if kind is None and idx is None:
            continue
        if kind is None and emergency:
            continue  # 有人(→油烟)在街上打架: an emergency, not a matter to register
        if kind is None:
            kind, type_conf = "咨询", 0.3  # a matter named without saying what is wanted
        if idx is not None:
            department = lex.TOPICS[idx].department
            seat_scores: dict[str, float] = {}
            for i, s in topics.items():
                sid = tables.topic_seat[i] or tables.general
                seat_scores[sid] = seat_scores.get(sid, 0.0) + s
            seat, seat_conf, _ = _ranked(seat_scores)
        else:
            department, seat, seat_conf = None, tables.general, 0.4
        here = [
            m.payload[1]  # type: ignore[index]
            for m in matches
            if m.payload[0] == "district" and seg.start <= m.start < seg.end  # type: ignore[index]
        ]
        seg_district = here[0] if here else district
        seg_text = mask_text(text[seg.start : seg.end]).strip()
        out.append(
            {
                "text": seg_text,
                "type": kind,
                "seat": seat,
                "seat_name": tables.seat_names[seat],
                "department": department,
                "district": seg_district,
                "summary": _summary(kind, department, seg_district, seg_text),
                "confidence": {"type": type_conf, "seat": seat_conf, "department": dept_conf},
            }
        )
    return out
