"""Chinese search over the published articles, tolerant of how people speak and of recogniser
mishearings.

Text → tokens (:class:`Analyzer`):

1. *synonyms*: a colloquial form (退休金, 取公积金) adds its canonical word (养老金, 提取公积金);
   both stay, so a misheard colloquial form still matches by sound;
2. *words*: rjieba (jieba-rs) in search mode (公积金 → 公积, 积金, 公积金), fillers dropped
   (我想问一下, 怎么, 吗 …);
3. *sounds*: each run of kept characters as toneless pinyin with the fuzzy pairs merged
   (:func:`speech.fields_pinyin.fuzzy_key`: zh/z, ing/in, l/n …) and cut into syllable
   bigrams (``gong~ji``, ``ji~jin``), so 攻击金 finds 公积金 and 老姐 finds 劳节.

Tokens go into a tantivy index (Rust, in memory; whitespace tokenizer over the pre-segmented
text): one field holding the title's tokens three times, the questions' and the catalogue's
twice and the answer's once, so BM25 weighs them like BM25F.  (SQLite FTS5 with four weighted
columns and rank-bm25 were as accurate but 5–30× slower at 10,000 articles:
``bench/kb_bench.py --compare``, docs/decisions.md.)  The top hit's
:func:`confidence` is a logistic function of how much of the query it covers (idf-weighted)
and its margin over the second hit, fitted on the development question set
(``kb/data/calibration.json``, written by ``python -m kb.evaluate --fit``).

Notes (第十三条) valid today that match the query come first, in :attr:`Results.notes`.
"""

from __future__ import annotations

import itertools
import json
import math
import re
import threading
import unicodedata
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date
from functools import lru_cache
from pathlib import Path

import rjieba
import tantivy

from kb.model import Article, KbError, Kind
from speech.fields_pinyin import fuzzy_key, readings

DATA = Path(__file__).resolve().parent / "data"
SYNONYMS_TSV = DATA / "synonyms.tsv"
CALIBRATION_JSON = DATA / "calibration.json"
MAX_QUERY = 200
"""Characters of a query looked at (a recogniser transcript is seldom longer)."""
FIELD_WEIGHTS = (3, 2, 2, 1)
"""How many times the tokens of the title, the questions, the catalogue/keywords/department
and the answer are repeated in the one indexed field (BM25F-like weighting)."""
WRITER_HEAP = 32_000_000
"""Bytes tantivy's index writer may buffer."""
NOTE_MIN_COVER = 0.34
"""A note is shown when it covers at least this share of the query (idf-weighted)."""
STOPWORDS = frozenset(
    """我 你 您 他 她 它 我们 你们 想 问 问问 一下 请问 咨询 打听 那个 这个 就是 然后 那么
    怎么 怎样 怎么样 怎么办 如何 什么 啥 哪里 哪儿 哪个 吗 呢 吧 啊 呀 哦 嗯 喂 的 了 是 要 能
    能不能 可以 可不可以 去 在 有 没有 还 也 都 和 跟 给 把 被 对 就 会 一个 个 些 下 多少 几 好
    你好 您好 麻烦 谢谢 请 帮 帮忙 知道 告诉 说 现在 今天 我家 家里 这 那 里 上 着 过 得 地
    为什么 为啥 需要 应该 办 弄 搞 事 事情 情况 问题 一 不 人 呃 额 噢 唉 哎 啦 嘛 么 的话 还是
    或者 以后 之后 时候""".split()  # noqa: SIM905
)
_HAN = re.compile(r"[\u3400-\u9fff]")
_WORD = re.compile(r"[\u3400-\u9fffA-Za-z0-9]")


def _clean(text: str) -> str:
    return unicodedata.normalize("NFKC", text[: MAX_QUERY * 50]).lower()


class Analyzer:
    """Text → search tokens (see the module docstring)."""

    def __init__(self, synonyms: Mapping[str, str], words: Iterable[str] = ()) -> None:
        """``synonyms``: colloquial form → canonical word; ``words``: extra dictionary words."""
        self._jieba = rjieba.Jieba()
        for w in {*synonyms, *synonyms.values(), *words}:
            if 2 <= len(w) <= 8 and not self._jieba.has_word(w):
                self._jieba.add_word(w, 2000, "n")
        self._synonyms = dict(sorted(synonyms.items(), key=lambda kv: -len(kv[0])))
        self._syn_re = (
            re.compile("|".join(re.escape(k) for k in self._synonyms)) if synonyms else None
        )
        self._lock = threading.Lock()

    def expand(self, text: str) -> str:
        """``text`` plus the canonical word of every colloquial form in it."""
        text = _clean(text)
        if self._syn_re is None:
            return text
        extra = dict.fromkeys(self._synonyms[m.group()] for m in self._syn_re.finditer(text))
        return text if not extra else text + "，" + "，".join(extra)

    def _cut(self, text: str, search: bool) -> list[str]:
        with self._lock:  # jieba-rs is not documented as thread-safe
            return self._jieba.cut_for_search(text) if search else self._jieba.cut(text)

    def words(self, text: str) -> list[str]:
        return [w for w in self._cut(text, True) if _WORD.search(w) and w not in STOPWORDS]

    def sounds(self, text: str) -> list[str]:
        """Fuzzy-pinyin syllable bigrams over each run of kept (non-filler) Han characters."""
        out: list[str] = []
        run: list[str] = []
        for w in [*self._cut(text, False), "。"]:
            if w in STOPWORDS or not _HAN.search(w):
                out.extend(f"{a}x{b}" for a, b in itertools.pairwise(run))
                run = []
                continue
            run.extend(_sound(c) for c in w if _HAN.match(c))
        return out

    def tokens(self, text: str, *, sounds: bool = True) -> list[str]:
        text = self.expand(text)
        return self.words(text) + (self.sounds(text) if sounds else [])

    @classmethod
    def from_file(cls, path: Path = SYNONYMS_TSV, words: Iterable[str] = ()) -> Analyzer:
        return cls(read_synonyms(path), words)


@lru_cache(maxsize=32768)
def _sound(char: str) -> str:
    rs = readings(char)
    return fuzzy_key(rs[0]) if rs else char


def read_synonyms(path: Path) -> dict[str, str]:
    """``canonical<TAB>form｜form…`` lines → {form: canonical}; '#' lines are comments."""
    out: dict[str, str] = {}
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip() or line.startswith("#"):
            continue
        canonical, sep, forms = line.partition("\t")
        if not sep or not canonical.strip():
            raise KbError(f"{path}:{number}: expected 'canonical<TAB>form｜form'")
        for form in forms.split("｜"):
            if form.strip():
                out[_clean(form.strip())] = _clean(canonical.strip())
    return out


@dataclass(frozen=True, slots=True)
class Calibration:
    """confidence = sigmoid(bias + w_cover·cover + w_margin·margin)."""

    bias: float = -6.0
    w_cover: float = 8.0
    w_margin: float = 4.0

    def confidence(self, cover: float, margin: float) -> float:
        z = self.bias + self.w_cover * cover + self.w_margin * margin
        return 1.0 / (1.0 + math.exp(-max(-30.0, min(30.0, z))))

    @classmethod
    def load(cls, path: Path = CALIBRATION_JSON) -> Calibration:
        if not path.exists():
            return cls()
        d = json.loads(path.read_text(encoding="utf-8"))
        return cls(float(d["bias"]), float(d["w_cover"]), float(d["w_margin"]))


@dataclass(frozen=True, slots=True)
class Hit:
    article: Article
    score: float
    """BM25 (higher is better)."""
    cover: float
    """idf-weighted share of the query's tokens found in the article."""
    margin: float
    """How far ahead of the next hit: (score − next score) / score."""
    confidence: float
    """Calibrated probability that this is the right article (meaningful for the top hit)."""


@dataclass(frozen=True, slots=True)
class Results:
    notes: list[Hit]
    hits: list[Hit]

    @property
    def best(self) -> Hit | None:
        return self.hits[0] if self.hits else None


class Searcher:
    """An in-memory tantivy index of published articles; :meth:`upsert`/:meth:`remove` keep
    it in step with publishing.  Thread-safe."""

    def __init__(
        self,
        articles: Iterable[Article] = (),
        *,
        analyzer: Analyzer | None = None,
        calibration: Calibration | None = None,
    ) -> None:
        articles = list(articles)
        self.analyzer = analyzer or Analyzer.from_file(
            words=[k for a in articles for k in a.keywords]
        )
        self.calibration = calibration or Calibration.load()
        builder = tantivy.SchemaBuilder()
        builder.add_text_field("text", stored=False, tokenizer_name="ws", index_option="freq")
        builder.add_text_field("id", stored=True, tokenizer_name="raw")
        self._schema = builder.build()
        self._index = tantivy.Index(self._schema)
        ws = tantivy.TextAnalyzerBuilder(tantivy.Tokenizer.whitespace()).build()
        self._index.register_tokenizer("ws", ws)
        self._writer = self._index.writer(heap_size=WRITER_HEAP, num_threads=1)
        self._lock = threading.Lock()
        self._docs: dict[str, tuple[Article, frozenset[str]]] = {}
        self._df: Counter[str] = Counter()
        with self._lock:
            for a in articles:
                self._add(a)
            self._commit()

    def __len__(self) -> int:
        return len(self._docs)

    def _add(self, article: Article) -> None:
        an = self.analyzer
        extra = " ".join([*article.path, *article.keywords, article.department])
        fields = (
            an.tokens(article.title),
            an.tokens(" 。".join(article.questions)),
            an.tokens(extra),
            an.tokens(article.answer, sounds=False),
        )
        text = " ".join(t for f, w in zip(fields, FIELD_WEIGHTS, strict=True) for t in f * w)
        self._drop(article.id)
        self._writer.add_document(tantivy.Document(id=article.id, text=text))
        tokens = frozenset(t for f in fields for t in f)
        self._docs[article.id] = (article, tokens)
        self._df.update(tokens)

    def _drop(self, article_id: str) -> None:
        old = self._docs.pop(article_id, None)
        if old is not None:
            self._writer.delete_documents_by_term("id", article_id)
            self._df.subtract(old[1])

    def _commit(self) -> None:
        self._writer.commit()
        self._index.reload()
        self._searcher = self._index.searcher()

    def upsert(self, article: Article) -> None:
        """Index (or re-index) a published article."""
        with self._lock:
            self._add(article)
            self._commit()

    def remove(self, article_id: str) -> None:
        with self._lock:
            self._drop(article_id)
            self._commit()

    def search(self, query: str, *, today: date, limit: int = 5) -> Results:
        """Ranked articles valid on ``today`` for a caller's or agent's words."""
        if not isinstance(query, str):
            raise KbError("a search query must be text")
        tokens = list(dict.fromkeys(self.analyzer.tokens(query[:MAX_QUERY])))
        if not tokens:
            return Results([], [])
        q = tantivy.Query.boolean_query(
            [
                (tantivy.Occur.Should, tantivy.Query.term_query(self._schema, "text", t))
                for t in tokens
            ]
        )
        with self._lock:
            searcher = self._searcher
            found = searcher.search(q, 4 * limit + 8).hits
            docs = [(self._docs[searcher.doc(addr)["id"][0]], score) for score, addr in found]
            n = max(len(self._docs), 1)
            idf = {t: math.log(1 + n / (1 + self._df.get(t, 0))) for t in tokens}
        total = sum(idf.values())
        notes: list[Hit] = []
        ranked: list[tuple[Article, float, float]] = []
        for (article, toks), score in docs:
            if not article.valid_on(today):
                continue
            cover = sum(w for t, w in idf.items() if t in toks) / total
            if article.kind == Kind.NOTE:
                if cover >= NOTE_MIN_COVER:
                    notes.append(Hit(article, score, cover, 0.0, cover))
            elif len(ranked) < limit:
                ranked.append((article, score, cover))
        hits = []
        for i, (article, score, cover) in enumerate(ranked):
            nxt = ranked[i + 1][1] if i + 1 < len(ranked) else 0.0
            margin = (score - nxt) / score if score > 0 else 0.0
            conf = self.calibration.confidence(cover, margin) if i == 0 else 0.0
            hits.append(Hit(article, score, cover, margin, conf))
        return Results(notes, hits)


def features(results: Results) -> tuple[float, float] | None:
    """(cover, margin) of the top hit: what :class:`Calibration` is fitted on."""
    top = results.best
    return None if top is None else (top.cover, top.margin)
