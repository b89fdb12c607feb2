"""Cues that a matter is outside 12345 (第九条 (二)–(四)), beyond the config's own words.

The config's ``caller_rules.out_of_scope`` words (起诉, 仲裁 …) name a route; callers more
often describe where their matter stands: a judgment they dislike (判决下来了, 一审输了), an
award (裁决书), a 信访 case already under way, an official's corruption (纪检监察), somebody
else's address or number (个人隐私), a dispute between private parties (借钱不还, 离婚分财产:
not a government service).  :data:`CUES` maps such phrasings to the config's scope keys; a
key the config lacks is skipped (:func:`scope_cue`).
"""

from __future__ import annotations

import re
from collections.abc import Container

CUES: tuple[tuple[str, str], ...] = (
    ("litigation", "判决|判得|一审|二审|再审|上诉|官司|法院|执行局|强制执行|判我|判他|败诉|胜诉"),
    ("arbitration", "仲裁|裁决"),
    ("reconsideration", "行政复议|复议|(?:处罚|处理)决定不服|对.{0,8}决定不服"),
    ("petition", "信访|上访|访件|信访局|进京"),
    ("disclosure", "信息公开|申请公开|依申请|公开一下.{0,12}(?:文件|材料|信息|档案|补偿)"),
    ("supervision", "纪委|纪检|监委|监察委|受贿|贪污|行贿|腐败|吃拿卡要"),
    ("privacy", "(?:查|找|告诉我)(?:一下)?.{0,8}"
                "(?:住在哪|住哪|住址|地址|手机号|电话|身份证|行踪|开房)|是谁的|(?:前妻|前夫|前女友|前男友|他老婆|她老公).{0,4}(?:住|在哪|电话|号码)"),
    ("secrets", "商业秘密|国家秘密|机密|内部资料|竞争对手.{0,6}(?:秘密|资料|配方|客户)"),
    ("non_government", "借.{0,8}钱.{0,8}(?:不还|没还|要回)|欠我.{0,6}(?:借款|钱不还)"
                       "|合伙|分钱|评评理|离婚|财产怎么分|抚养权|彩礼|做主|外卖|讲个笑话|算命|彩票"
                       "|帮我买|婆媳|家务事|夫妻吵架|男女朋友|分手"),
)  # fmt: skip
"""(scope key, regular expression) in order of precedence."""

_COMPILED = tuple((key, re.compile(pattern)) for key, pattern in CUES)
_GOVERNMENT = re.compile("工资|社保|公积金|劳动|工伤|拖欠|物业|开发商|单位|公司|老板|政府|街道")
"""A private dispute that names these is a labour/consumer matter for a department."""


def scope_cue(text: str, keys: Container[str]) -> str | None:
    """The first scope key (present in ``keys``) whose cue ``text`` contains, else ``None``."""
    for key, pattern in _COMPILED:
        if key in keys and pattern.search(text):
            if key == "non_government" and _GOVERNMENT.search(text):
                continue
            return key
    return None
