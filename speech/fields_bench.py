"""Time :func:`speech.fields.extract`: ``python -m speech.fields_bench [CONFIG]``.

Prints the one-off cost of building the matchers for a config, the per-utterance time over
the hotline test utterances (clean and misheard) once warm, and the time for hostile 100k
character inputs.  Numbers only; nothing is asserted (see tests/ for behaviour).
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

from hotline.config import load_config
from speech.fields import extract

REPO = Path(__file__).resolve().parents[1]
UTTERANCES = (
    "我要投诉我们小区楼下的饭店油烟太大，影响居民休息，地址在西湖区文三路。",
    "我想咨询一下公积金提取需要哪些材料。",
    "我想问一下社保卡丢了怎么补办，另外公积金贷款额度是多少。",
    "我的手机号码是一三八零五七一二三四五，请给我回电话。",
    "有人在马路上被车撞了，流了很多血。",
    "我要擠爆一个工地晚上十一点还在施工，造音特别大，在狗受区。",
    "我想自行一下攻击金提取需要哪些材料。",
    "我要起诉我的邻居，你们能帮我吗。",
)
HOSTILE = {
    "100k 一 (one digit run)": "一" * 100_000,
    "100k mixed keywords/digits/emoji": "我要投诉公积金一三八零五七一二三四五😀拱墅区着火" * 4000,
    "100k 文三…路 (address regex)": "文三" * 50_000 + "路",
}


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.2f} ms"


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    config = load_config(args[0] if args else REPO / "hotline.yaml")
    start = time.perf_counter()
    extract("你好", config)
    print(f"first call (builds matchers, loads pinyin tables): {_ms(time.perf_counter() - start)}")
    for text in UTTERANCES:  # warm the per-character caches
        extract(text, config)
    times = []
    for _ in range(50):
        for text in UTTERANCES:
            t = time.perf_counter()
            extract(text, config)
            times.append(time.perf_counter() - t)
    times.sort()
    print(
        f"warm, {len(times)} utterances: median {_ms(statistics.median(times))}, "
        f"p99 {_ms(times[int(len(times) * 0.99)])}, max {_ms(times[-1])}"
    )
    for label, text in HOSTILE.items():
        t = time.perf_counter()
        extract(text, config)
        print(f"{label}: {_ms(time.perf_counter() - t)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
