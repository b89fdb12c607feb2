"""Issue 14 as call scenarios: emergencies told by what is happening (and whether it is
happening now), heard one syllable off, enumerated demands, matters outside 12345, and the
department for appeals that name places, businesses and programmes instead of a department."""

from __future__ import annotations

from pathlib import Path

import pytest

from hotline.config import HotlineConfig, load_config
from speech import confusions, devset
from speech.fields import extract
from speech.fields_emergency import assess

REPO = Path(__file__).resolve().parents[2]
ORDER = ("119", "120", "110", "122")


@pytest.fixture(scope="module")
def config() -> HotlineConfig:
    return load_config(REPO / "hotline.yaml")


# ---- emergencies told by the situation ---------------------------------------------------
@pytest.mark.parametrize(
    ("said", "line"),
    [
        ("厨房里全是黑烟，呛得人喘不过气", "119"),
        ("插座冒火花，窗帘已经烧着了", "119"),
        ("我爸突然倒在地上，叫他也没反应", "120"),
        ("孩子吃东西卡住了，脸都憋紫了", "120"),
        ("有人在砸我家的门，还说要弄死我", "110"),
        ("门口有个人拿刀威胁我，让我把钱拿出来", "110"),
        ("高架上两辆车撞在一起了，路都堵死了", "122"),
        ("大货车把路边的电线杆撞倒了，横在路上", "122"),
    ],
)
def test_caller_describing_what_is_happening_is_offered_the_line(said, line, config) -> None:
    draft = extract(said, config)
    assert draft["emergency"] == line
    assert draft["emergency_context"] == "present"
    assert draft["emergency_words"]


def test_caller_describes_smoke_from_the_kitchen_gets_119_offer(config) -> None:
    draft = extract("我家厨房冒出好多浓烟，快来人", config)
    assert draft["emergency"] == "119"
    assert draft["demands"] == []  # an emergency, not a matter to register


@pytest.mark.parametrize(
    ("said", "context"),
    [
        ("上个月我家着过火，想问问保险怎么理赔", "past"),
        ("去年小区发生过火灾，烧坏的外墙到现在还没人修", "past"),
        ("前几天我被人打了，派出所处理得不公平，我要投诉", "past"),
        ("请问家里着火了应该先做什么", "question"),
        ("想问一下叫一次救护车收费标准是多少", "question"),
        ("我们小区的灭火器都过期了，万一着火怎么办", "question"),
    ],
)
def test_an_emergency_that_is_over_or_asked_about_is_not_offered(said, context, config) -> None:
    draft = extract(said, config)
    assert draft["emergency"] is None
    assert draft["emergency_context"] == context
    assert draft["emergency_mentioned"]
    assert draft["demands"], "the matter itself is still registered"


def test_panic_keeps_an_emergency_present_even_when_the_caller_asks(config) -> None:
    draft = extract("着火了怎么办啊，快来人，里面还有人", config)
    assert draft["emergency"] == "119"


def test_a_denied_situation_is_no_emergency(config) -> None:
    assert extract("没有人受伤，就是车刮了一下想问保险", config)["emergency"] != "120"


def test_everyday_talk_near_emergency_words_stays_calm(config) -> None:
    for said in (
        "我跟你说啊，人才房的申请条件是什么",
        "楼下火锅店的油烟太大了",
        "我想问一下高铁火车票改签怎么办",
        "孩子上学期在学校和同学打架被处分了，想问问能不能撤销",
    ):
        assert extract(said, config)["emergency"] is None, said


# ---- heard one syllable off: learned confusions ------------------------------------------
def test_fire_heard_with_a_learned_final_swap_is_still_fire(config) -> None:
    learned = {"final": frozenset({("uo", "ao")}), "initial": frozenset()}
    heard = assess("我家旁边起好了，快来人", config.caller_rules.emergency_words, ORDER,
                   confusions=learned)  # fmt: skip
    assert heard.line == "119"


def test_a_near_miss_alone_without_urgency_is_no_emergency(config) -> None:
    learned = {"final": frozenset({("an", "ai")}), "initial": frozenset()}
    heard = assess(
        "帮我点个外卖吧", config.caller_rules.emergency_words, ORDER, confusions=learned
    )  # 个外 is one final off 割腕
    assert heard.line is None


def test_a_swap_the_recogniser_was_never_seen_to_make_does_not_count(config) -> None:
    nothing = {"final": frozenset(), "initial": frozenset()}
    heard = assess("我家旁边起好了，快来人", config.caller_rules.emergency_words, ORDER,
                   confusions=nothing)  # fmt: skip
    assert heard.line is None


def test_learning_counts_the_final_whisper_wrote_instead() -> None:
    counts = confusions.learn([("有人晕倒了", "有人云倒了"), ("他晕倒了", "他云倒了")])
    assert counts[("final", "un", "vn")] + counts[("initial", "y", "")] >= 0  # aligned, no crash
    counts = confusions.learn([("着火了", "着好了"), ("起火了", "起好了")])
    assert counts[("initial", "h", "h")] == 0
    assert counts[("final", "uo", "ao")] == 2


def test_the_committed_confusion_table_loads() -> None:
    table = confusions.load()
    assert set(table) == {"initial", "final"}


# ---- several demands (第八条) -------------------------------------------------------------
@pytest.mark.parametrize(
    "said",
    [
        "我有两件事，一是楼下饭店油烟太大，二是小区电梯坏了没人修",
        "第一，超市卖过期食品；第二，附近工地晚上施工太吵",
        "幼儿园乱收费，还有，路口红绿灯坏了",
        "外地车限行怎么规定的，再一个，营业执照在哪里办",
    ],
)
def test_caller_listing_two_matters_gets_two_demands(said, config) -> None:
    assert len(extract(said, config)["demands"]) == 2, said


@pytest.mark.parametrize(
    "said",
    [
        "我想问公积金提取的事，还有就是提取需要带哪些材料",
        "小区电梯坏了，还有，物业根本不管",
        "我在文三路买了套二手房，想问公积金贷款能贷多少",
        # the recogniser's reading of sounds/samples/demo-gongjijin.wav (make run's demo call)
        "你好，我想自行医下工基金怎么提起。我在西湖区上班，电话是1380013800",
        "我想咨询公积金怎么提取。我在滨江区上班，电话是13800138000。",
    ],
)
def test_a_clause_that_only_adds_detail_stays_one_demand(said, config) -> None:
    assert len(extract(said, config)["demands"]) == 1, said


def test_the_first_day_and_the_second_day_are_not_an_enumeration(config) -> None:
    draft = extract("我第一天去办社保卡没办成，第二天去又说社保卡材料不全", config)
    assert len(draft["demands"]) == 1


# ---- outside 12345 (第九条 (二)–(四)) ------------------------------------------------------
@pytest.mark.parametrize(
    ("said", "key"),
    [
        ("法院判决下来了，我觉得判得不公平，你们能不能帮我改", "litigation"),
        ("劳动仲裁的裁决书下来了，我对裁决结果不满意", "arbitration"),
        ("我对区里的处罚决定不服", "reconsideration"),
        ("我的信访件已经在信访局办理了，想让你们催一下", "petition"),
        ("我要举报我们局长受贿，纪委那边怎么联系", "supervision"),
        ("能不能帮我查一下我前妻现在住在哪里", "privacy"),
        ("我想知道竞争对手公司的商业秘密", "secrets"),
        ("我朋友借了我两万块钱一直不还，你们帮我要回来", "non_government"),
        ("我和老公闹离婚，财产怎么分你们帮我做主", "non_government"),
    ],
)
def test_caller_with_a_matter_for_another_route_is_told_so(said, key, config) -> None:
    assert extract(said, config)["out_of_scope"] == key


def test_a_boss_owing_wages_is_a_labour_matter_not_a_private_debt(config) -> None:
    draft = extract("老板欠我三个月工资不还", config)
    assert draft["out_of_scope"] is None
    assert draft["department"] == "人社"


# ---- type, seat and department from what residents name ----------------------------------
def test_neighbours_renovation_noise_at_night_gets_a_complaint_and_a_seat(config) -> None:
    draft = extract("楼下邻居装修，晚上十点多还在电钻打墙，吵得孩子没法睡觉", config)
    assert draft["type"] == "投诉"
    assert draft["seat"] == config.general_seat.id
    assert draft["department"] in ("住建", "城管", "生态环境")


@pytest.mark.parametrize(
    ("said", "department"),
    [
        ("开发商延期交房一年了，业主维权没人理", "住建"),
        ("菜市场有个摊位的秤短斤少两", "市场监管"),
        ("我们村有人占用耕地建厂房", "自然资源和规划"),
        ("学校课后服务收费太高，作业也太多", "教育"),
        ("网购的衣服商家不给退货", "市场监管"),
        ("化工厂的烟囱晚上冒刺鼻的气味", "生态环境"),
        ("包工头拖欠农民工工资", "人社"),
    ],
)
def test_an_appeal_naming_places_and_businesses_reaches_the_department(
    said, department, config
) -> None:
    assert extract(said, config)["department"] == department


def test_a_landmark_does_not_decide_the_department(config) -> None:
    assert extract("学校门口的路灯坏了很久了", config)["department"] == "城管"


# ---- the development set ------------------------------------------------------------------
def test_the_development_set_has_400_utterances_and_a_fixed_held_back_quarter() -> None:
    rows = devset.build()
    assert len(rows) >= 400
    held = [r for r in rows if r.split == "held"]
    assert 0.15 < len(held) / len(rows) < 0.35
    groups = {r.group: r.split for r in rows}
    assert all(groups[r.group] == r.split for r in rows), "a phrasing is held back whole"
    kinds = {r.kind for r in rows}
    assert {"emergency", "not-now", "matter", "two-demands", "out-of-scope"} <= kinds
    assert {r.emergency for r in rows if r.emergency} == set(ORDER)


def test_the_committed_tsv_is_what_the_script_writes(tmp_path) -> None:
    out = tmp_path / "devset.tsv"
    devset.write(out)
    assert out.read_text(encoding="utf-8") == devset.TSV.read_text(encoding="utf-8")
