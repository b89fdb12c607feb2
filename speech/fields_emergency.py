"""Spoken emergencies told by what is happening, and whether it is happening *now*.

Callers in trouble rarely say the keyword (着火, 晕倒): they say what they see (楼道里全是黑烟,
我爸倒在地上叫不醒, 有人在砸门).  :data:`SITUATIONS` lists, per line, such cues with weights;
a line is heard when its cues add up to :data:`LINE_THRESHOLD` (a config emergency word counts
:data:`CONFIG_WORD_WEIGHT` on its own).  Cues are regular expressions over the text, so
``车.{0,8}翻`` covers 货车翻了 and 一辆面包车在桥上侧翻了.

Said one syllable off.  Plain-word cues (and config words) are also found by sound: every
syllable the same toneless pinyin, or at most one syllable that the recogniser is known to
mishear — a final (or an initial) swapped for one it was *seen* to write instead in the
project's own synthesised emergencies (:mod:`speech.confusions`, learned; no hand-made pairs).
Such a cue counts :data:`NEAR_MISS_FACTOR` of its weight, and a line heard through one needs
corroboration: another cue of the line, or an urgent caller (点个外卖 is one final off 割腕).

Now, over, or asked about.  The same words in an event that is over (上个月着过火), a
hypothetical or a question (如果着火了怎么办, 请问救护车怎么收费), or a matter to register
(投诉派出所处理不公) are *mentioned*, not happening: :func:`assess` returns them with context
``past`` or ``question`` and no line, unless the caller also sounds urgent (快来人, 救命,
正在…).  A denied cue (没有着火, 没有人受伤) does not count.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache

from speech.confusions import load as load_confusions
from speech.fields_pinyin import keyword_syllables, readings, split_syllable

LINE_THRESHOLD = 2.0
CONFIG_WORD_WEIGHT = 3.0
NEAR_MISS_FACTOR = 0.8
HOMOPHONE_FACTOR = 0.9

_VEHICLE = "(?:车|货车|轿车|电动车|摩托车?|面包车|公交车?|出租车|大巴|卡车|小车|私家车|三轮车)"

SITUATIONS: dict[str, dict[str, float]] = {
    "119": {
        "着火": 3, "起火": 3, "失火": 3, "火灾": 3, "烧起来": 3, "烧着": 2.5, "着了": 0.5,
        "火苗": 2, "明火": 2.5, "火势": 2.5, "大火": 2, "火光": 2, "火很大": 2.5,
        "火越来越大": 3, "扑不灭": 2.5, "救火": 3, "冒火": 2.5, "火星": 1, "火花": 1,
        "黑烟": 2, "浓烟": 2.5, "冒烟": 2, "全是烟": 2.5, "烟雾": 1.5, "(?<!油)烟很大": 2,
        "烧焦": 1.5, "爆炸": 2, "炸了": 1.5, "漏气": 1.5, "煤气": 1, "燃气": 1,
        "被困": 1, "出不去": 1, "呛": 1, "烧": 0.5,
    },
    "120": {
        "晕倒": 3, "晕过去": 3, "昏迷": 3, "昏过去": 3, "不省人事": 3, "叫不醒": 3,
        "没反应": 2, "倒在地上": 2, "倒在": 1, "没有呼吸": 3, "没呼吸": 3, "没气了": 3,
        "喘不上气": 2.5, "喘不过气": 2, "胸口疼": 2.5, "胸口痛": 2.5, "心脏病": 2.5,
        "抽搐": 2.5, "口吐白沫": 3, "卡住了": 1, "憋紫": 2, "脸都紫": 2, "出血": 2,
        "流血": 3, "血止不住": 3, "头破了": 2.5, "摔下来": 2, "摔了一跤": 1.5, "摔倒": 1.5,
        "动不了": 1, "中风": 3, "嘴歪": 2.5, "说不出话": 1.5, "半边身子": 2, "农药": 2.5,
        "安眠药": 2.5, "吃了一整瓶": 1.5, "服毒": 3, "中毒": 2.5, "割腕": 3, "溺水": 3,
        "羊水破了": 3, "要生了": 2, "触电": 3, "咬了": 1, "救护车": 3, "急救": 3,
        "受伤": 3, "烧伤": 3, "骨折": 2.5, "高烧": 1, "一动不动": 2,
    },
    "110": {
        "打架": 3, "斗殴": 3, "打人": 2.5, "在打我": 3, "被人打": 2.5, "被打": 2, "动手了": 2,
        "砸.{0,6}门": 2.5,
        "砸了": 1.5, "弄死": 2.5, "杀人": 3, "杀了": 2, "砍人": 3, "被砍": 3, "抢劫": 3,
        "抢了": 2.5, "抢走": 2.5, "小偷": 3, "偷": 1.5, "撬": 2, "闯进": 2.5, "跟着我": 2,
        "跟踪": 2, "害怕": 0.5, "拿着刀": 3, "持刀": 3, "拿刀": 2.5, "棍子": 1,
        "威胁": 2, "闹事": 2, "跳楼": 3, "往下跳": 3, "冒充警察": 2.5, "上当": 1.5,
        "骗": 1, "绑架": 3, "家暴": 3, "报警": 3, "不见了": 1.5, "找不到了": 1,
        "到处都找不到": 1.5, "躲在": 1,
    },
    "122": {
        "车祸": 3, "追尾": 3, "撞车": 3, "被车撞": 3, "交通事故": 3, "相撞": 2.5,
        "撞在一起": 2.5, "连着撞": 2.5, "连撞": 2.5, "侧翻": 2.5,
        f"{_VEHICLE}.{{0,12}}(?:撞|翻了|刮|碰|开到)": 2.5, f"(?:撞|刮|碰)了?.{{0,4}}{_VEHICLE}": 2,
        "撞到护栏": 2.5, "撞倒": 1, "肇事": 2.5, "逃逸": 2, "撞了.{0,6}就跑": 2.5,
        "车道": 0.5, "堵死": 0.5,
    },
}  # fmt: skip
"""Line → cue (a regular expression; most are plain words) → weight; 3 = sure on its own."""

_PAST = re.compile(
    "上个月|上周|上星期|去年|前年|前几天|前些天|前阵子|以前|之前|上次|那次|曾经|当时|上学期"
    "|过去|后来|那天|已经处理|处理好了|到现在|一直没|以后|之后"
    "|(?:着|烧|晕倒|晕|出|发生|摔|打|撞|伤|偷|抢)过"
)
_QUESTION = re.compile(
    "如果|万一|假如|要是|请问|想问|问一下|问问|咨询|了解|是否|能不能|可不可以|有没有|收费"
    "|标准|培训|演练|报名|理赔|赔偿|保险|进展|认定|处分|建议|投诉|举报一下|反映|多少钱"
    "|什么时候|应该先|应该怎么|怎么(?:领|报|理赔|赔|算|走|申请|办理|处理|撤|预防|防)"
)
_URGENT = re.compile(
    "救命|救救|快来|快派|快救|快点|赶紧|马上来|来人啊|快过来|正在|出不去|里面还有人|止不住"
    "|越来越大|不行了|刚刚|刚才|就在|现在在|还在(?:打|砸|撬|烧|冒|流|跟|门口)"
)
_NEGATED = re.compile("(?:没有|没|不是|并非|不会|未|无)(?:人|谁)?$")


@dataclass(frozen=True, slots=True)
class Heard:
    """What :func:`assess` heard."""

    line: str | None
    """The line to offer (happening now), or ``None``."""
    lines: dict[str, list[str]]
    """Every line whose cues reach the threshold → its cues, strongest first (in the order
    of :data:`speech.fields.EMERGENCY_ORDER` as given to :func:`assess`)."""
    scores: dict[str, float] = field(default_factory=dict)
    context: str | None = None
    """``present``, ``past``, ``question`` or ``None`` (nothing heard)."""
    confidence: float = 0.0


def _negated(text: str, start: int) -> bool:
    return _NEGATED.search(text, max(0, start - 4), start) is not None


_PLAIN = re.compile(r"^[\u3400-\u9fff]{2,}$")


@dataclass(frozen=True, slots=True, eq=False)
class _Cue:
    line: str
    name: str
    pattern: re.Pattern[str]
    weight: float
    sounds: tuple[frozenset[str], ...]
    """Per syllable of a plain-word cue: the syllables it may be heard as (exact first)."""
    exact: tuple[str, ...]


def _heard_as(syllable: str, table: Mapping[str, frozenset[tuple[str, str]]]) -> frozenset[str]:
    """``syllable`` and what it may be heard as: its final, or its initial, swapped for one
    the recogniser was seen to write instead."""
    ini, fin = split_syllable(syllable)
    out = {syllable}
    out |= {ini + h for s, h in table.get("final", ()) if s == fin}
    out |= {h + fin for s, h in table.get("initial", ()) if s == ini}
    return frozenset(out)


@dataclass(frozen=True, slots=True)
class _Cues:
    cues: tuple[_Cue, ...]
    by_first: dict[str, tuple[_Cue, ...]]
    """Syllable → plain-word cues whose first syllable may be heard as it."""


Confusions = Mapping[str, frozenset[tuple[str, str]]]
"""``{"initial": {(said, heard)…}, "final": {…}}`` (:func:`speech.confusions.load`)."""


@lru_cache(maxsize=16)
def _cues(
    config_words: tuple[tuple[str, tuple[str, ...]], ...],
    confusions: tuple[tuple[str, frozenset[tuple[str, str]]], ...],
) -> _Cues:
    table = dict(confusions)
    merged: dict[tuple[str, str], float] = {}
    for line, cues in SITUATIONS.items():
        for name, w in cues.items():
            merged[(line, name)] = w
    for line, words in config_words:
        for word in words:
            key = (line, re.escape(word))
            merged[key] = max(merged.get(key, 0.0), CONFIG_WORD_WEIGHT)
    out = []
    by_first: dict[str, list[_Cue]] = {}
    for (line, name), w in merged.items():
        sounds: tuple[frozenset[str], ...] = ()
        exact: tuple[str, ...] = ()
        if _PLAIN.match(name):
            syl = keyword_syllables(name)
            if len(syl) == len(name) and all(s.isascii() and s.isalpha() for s in syl):
                exact = tuple(syl)
                sounds = tuple(_heard_as(s, table) for s in syl)
        cue = _Cue(line, name, re.compile(name), w, sounds, exact)
        out.append(cue)
        for first in sounds[0] if sounds else ():
            by_first.setdefault(first, []).append(cue)
    return _Cues(tuple(out), {k: tuple(v) for k, v in by_first.items()})


def _sound_hits(
    cues: _Cues, text: str, syl: list[tuple[str, ...]]
) -> dict[_Cue, tuple[int, float]]:
    """Plain-word cues heard by sound: cue → (start, factor); factor
    :data:`HOMOPHONE_FACTOR` for the same pinyin, :data:`NEAR_MISS_FACTOR` for one syllable
    heard as a learned confusion of it."""
    out: dict[_Cue, tuple[int, float]] = {}
    n = len(syl)
    for i in range(n):
        cands: set[_Cue] = set()
        for r in syl[i]:
            cands.update(cues.by_first.get(r, ()))
        for cue in cands:
            k = len(cue.exact)
            if i + k > n or (cue in out and out[cue][1] == HOMOPHONE_FACTOR):
                continue
            off = 0
            for j in range(k):
                rs = syl[i + j]
                if text[i + j] == cue.name[j] or (rs and rs[0] == cue.exact[j]):
                    continue
                # a learned confusion: one off (another reading of a polyphone is not: 你说
                # is not 溺水 though 说 may be read shui)
                off += 1 if rs and rs[0] in cue.sounds[j] else 2
                if off > 1:
                    break
            if off == 0:
                out[cue] = (i, HOMOPHONE_FACTOR)
            elif off == 1 and cue not in out:
                out[cue] = (i, NEAR_MISS_FACTOR)
    return out


def assess(
    text: str,
    config_words: Mapping[str, Iterable[str]],
    order: tuple[str, ...],
    syl: list[tuple[str, ...]] | None = None,
    heard: Mapping[str, Iterable[str]] | None = None,
    blocked: frozenset[int] = frozenset(),
    confusions: Confusions | None = None,
) -> Heard:
    """Which emergency line (if any) ``text`` describes as happening now.  ``heard``: config
    words another matcher already found per line (said with fillers inside …): each counts
    :data:`CONFIG_WORD_WEIGHT`.  ``blocked``: positions inside everyday words said by their
    characters (手上 is not 受伤): no cue is heard by sound there.  Only lines the config
    has emergency words for are heard.  ``confusions``: the learned table (default: the
    committed one)."""
    key = tuple((line, tuple(words)) for line, words in config_words.items())
    syl = syl if syl is not None else [readings(c) for c in text]
    scores: dict[str, float] = {}
    found: dict[str, dict[str, float]] = {}
    table = load_confusions() if confusions is None else confusions
    cues = _cues(key, tuple(sorted(table.items())))
    near: set[str] = set()
    """Lines with a cue heard one syllable off."""
    for line, words in (heard or {}).items():
        for word in words:
            if word not in found.get(line, {}):
                found.setdefault(line, {})[word] = CONFIG_WORD_WEIGHT
                scores[line] = scores.get(line, 0.0) + CONFIG_WORD_WEIGHT
    by_sound: dict[_Cue, tuple[int, float]] | None = None
    for cue in cues.cues:
        best, word = 0.0, ""
        if cue.exact:  # a plain word: str.find is much cheaper than a regex
            at = text.find(cue.name)
            while at >= 0:
                if not _negated(text, at):
                    best, word = cue.weight, cue.name
                    break
                at = text.find(cue.name, at + 1)
        else:
            for m in cue.pattern.finditer(text):
                if not _negated(text, m.start()):
                    best, word = cue.weight, m.group()
                    break
        if not best and len(cue.exact) >= 2:
            if by_sound is None:
                by_sound = _sound_hits(cues, text, syl)
            hit = by_sound.get(cue)
            span = range(hit[0], hit[0] + len(cue.exact)) if hit else range(0)
            if hit and blocked.isdisjoint(span) and not _negated(text, hit[0]):
                best, word = cue.weight * hit[1], cue.name
                if hit[1] == NEAR_MISS_FACTOR:
                    near.add(cue.line)
        if best and word not in found.get(cue.line, {}):
            found.setdefault(cue.line, {})[word] = best
            scores[cue.line] = scores.get(cue.line, 0.0) + best
    urgent = _URGENT.search(text) is not None
    lines = {
        line: sorted(found[line], key=lambda w: -found[line][w])
        for line in order
        if scores.get(line, 0.0) >= LINE_THRESHOLD
        and line in config_words
        and (line not in near or urgent or len(found[line]) > 1)
    }
    if not lines:
        return Heard(None, {}, scores)
    past = _PAST.search(text) is not None
    question = _QUESTION.search(text) is not None
    context = "present" if urgent or not (past or question) else "past" if past else "question"
    first = next(iter(lines))
    conf = round(min(1.0, scores[first] / 4.0) * (1.0 if context == "present" else 0.5), 3)
    return Heard(first if context == "present" else None, lines, scores, context, conf)
