"""Ticket-field extraction, field by field, as callers say things to 12345."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hotline import safe_yaml
from hotline.config import HotlineConfig, load_config
from hotline.privacy import mask_text
from speech.fields import LOW_CONFIDENCE, extract, number_runs
from speech.fields_pinyin import PinyinMatcher, similarity, text_readings

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def config() -> HotlineConfig:
    return load_config(REPO / "hotline.yaml")


def config_with(**changes: object) -> HotlineConfig:
    """The example config with top-level sections replaced (a city's own tables)."""
    data = safe_yaml.load_file(REPO / "hotline.yaml")
    data.update(changes)
    return HotlineConfig.model_validate(data)


# ---- demand type ------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("said", "kind"),
    [
        ("我想咨询一下养老保险怎么交", "咨询"),
        ("我要投诉隔壁饭店油烟", "投诉"),
        ("我举报有人偷排污水", "举报"),
        ("我建议地铁站多装几个电梯", "建议"),
        ("我一个人被困在电梯里了，求助", "求助"),
        ("我想表扬一下社保中心的窗口工作人员", "表扬"),
    ],
)
def test_caller_naming_the_kind_of_demand_gets_that_type(said: str, kind: str, config) -> None:
    draft = extract(said, config)
    assert draft["type"] == kind
    assert draft["confidence"]["type"] >= LOW_CONFIDENCE


def test_complaint_without_the_word_complaint_is_still_a_complaint(config) -> None:
    draft = extract("你们的态度太差了，上个月反映的问题还没回复", config)
    assert draft["type"] == "投诉"


def test_matter_without_a_request_word_is_a_doubtful_enquiry(config) -> None:
    draft = extract("社保卡丢了", config)
    assert (draft["type"], draft["department"], draft["seat"]) == ("咨询", "人社", "renshe")
    assert "type" in draft["low_confidence"]
    assert "seat" not in draft["low_confidence"]


def test_small_talk_yields_no_ticket_fields(config) -> None:
    for said in ("喂，你好，听得到吗", "好的谢谢", "嗯嗯我知道了", "他是个好人"):
        draft = extract(said, config)
        assert draft["type"] is None and draft["seat"] is None, said
        assert draft["emergency"] is None and draft["out_of_scope"] is None, said
        assert draft["demands"] == []


# ---- seat and department ----------------------------------------------------------------
@pytest.mark.parametrize(
    ("said", "seat", "department"),
    [
        ("公积金贷款额度是多少", "gjj", "公积金"),
        ("公司拖欠工资三个月了", "renshe", "人社"),
        ("外地车限行是几点到几点", "jiaotong", "交通"),
        ("我想申请法律援助", "sifa", "司法"),
        ("开个体户要什么手续", "yingshang", "营商环境"),
        ("浙里办上面怎么提交不了", "wangshang", "数据资源"),
        ("楼道里有人飞线充电", "zonghe", "消防"),
        ("异地就医怎么备案", "yibao", "医保"),
        ("孩子转学需要什么材料", "jiaoyu", "教育"),
        ("小区门口有人占道经营", "zonghe", "城管"),
        ("超市卖过期食品", "zonghe", "市场监管"),
    ],
)
def test_matter_goes_to_its_seat_through_the_config(said, seat, department, config) -> None:
    draft = extract(said, config)
    assert (draft["seat"], draft["department"]) == (seat, department)
    assert draft["seat_name"] == config.seat(seat).name


def test_a_city_with_a_market_seat_gets_market_matters_there(config) -> None:
    data = safe_yaml.load_file(REPO / "hotline.yaml")
    seats = [*data["seats"], {"id": "shichang", "name": "市场监管专席"}]
    city = config_with(seats=seats)
    assert extract("超市卖过期食品", city)["seat"] == "shichang"
    assert extract("超市卖过期食品", config)["seat"] == config.general_seat.id


def test_a_city_without_a_housing_fund_seat_sends_it_to_the_general_seat() -> None:
    data = safe_yaml.load_file(REPO / "hotline.yaml")
    seats = [s for s in data["seats"] if s["id"] != "gjj"]
    agents = [
        {**a, "seats": [s for s in a["seats"] if s != "gjj"]}
        for a in data["agents"]
        if a["seats"] != ["gjj"]
    ]
    menus = data["menus"]
    menus["main"]["options"]["2"] = "seat:zonghe"
    city = config_with(seats=seats, agents=agents, menus=menus)
    draft = extract("公积金怎么提取", city)
    assert (draft["seat"], draft["department"]) == ("zonghe", "公积金")


def test_two_matters_in_one_sentence_make_the_seat_doubtful(config) -> None:
    draft = extract("社保和公积金的事", config)
    assert draft["seat"] in ("renshe", "gjj")
    assert "seat" in draft["low_confidence"]
    assert draft["confidence"]["seat"] < LOW_CONFIDENCE


def test_misheard_housing_fund_still_reaches_its_seat_but_less_surely(config) -> None:
    sure = extract("公积金怎么提取", config)
    for heard in ("攻击金怎么提取", "工机金怎么提取", "公積金怎麼提取"):
        draft = extract(heard, config)
        assert draft["seat"] == "gjj", heard
        assert draft["confidence"]["seat"] <= sure["confidence"]["seat"], heard


def test_a_bicycle_is_not_an_enquiry(config) -> None:
    # 自行 sounds like 咨询 (a real mishearing), but not inside 自行车
    assert extract("我的自行车被偷了", config)["type"] is None
    assert extract("我想自行一下公积金", config)["type"] == "咨询"


# ---- several demands (第八条) -------------------------------------------------------------
def test_two_demands_joined_by_another_are_registered_separately(config) -> None:
    draft = extract("我想问一下社保卡丢了怎么补办，另外公积金贷款额度是多少。", config)
    assert [(d["type"], d["seat"], d["department"]) for d in draft["demands"]] == [
        ("咨询", "renshe", "人社"),
        ("咨询", "gjj", "公积金"),
    ]
    assert "社保卡" in draft["demands"][0]["text"] and "公积金" in draft["demands"][1]["text"]
    assert draft["seat"] == "renshe"
    assert "；" in draft["summary"]


def test_two_questions_for_one_seat_are_still_two_demands(config) -> None:
    draft = extract("公积金怎么提取，另外公积金贷款额度是多少", config)
    assert [d["seat"] for d in draft["demands"]] == ["gjj", "gjj"]


def test_two_questions_in_two_sentences_for_different_seats(config) -> None:
    draft = extract("社保卡怎么补办？公积金怎么提取？", config)
    assert [d["seat"] for d in draft["demands"]] == ["renshe", "gjj"]


def test_two_matters_after_a_comma_and_also(config) -> None:
    draft = extract("我想问一下社保卡丢了怎么补办，还有公积金贷款额度是多少", config)
    assert [d["seat"] for d in draft["demands"]] == ["renshe", "gjj"]
    draft = extract("我想咨询一下公积金，社保卡怎么办", config)
    assert [d["seat"] for d in draft["demands"]] == ["gjj", "renshe"]


def test_each_demand_keeps_its_own_district(config) -> None:
    draft = extract("西湖区有人占道经营。另外滨江区的公交站什么时候修好", config)
    assert [(d["seat"], d["district"]) for d in draft["demands"]] == [
        ("zonghe", "西湖区"),
        ("jiaotong", "滨江区"),
    ]


def test_a_passing_mention_after_a_comma_is_not_a_second_demand(config) -> None:
    draft = extract("少儿医保怎么交费，在社区还是学校", config)
    assert [d["seat"] for d in draft["demands"]] == ["yibao"]


def test_one_complaint_told_in_two_sentences_stays_one_demand(config) -> None:
    draft = extract("我要投诉，工地晚上还在施工。噪音特别大，吵得睡不着。", config)
    assert len(draft["demands"]) == 1
    assert draft["demands"][0]["type"] == "投诉"


def test_a_second_demand_without_a_request_word_takes_the_callers_type(config) -> None:
    draft = extract("我要投诉公司拖欠工资。还有个事，小区门口占道经营。", config)
    assert [(d["type"], d["department"]) for d in draft["demands"]] == [
        ("投诉", "人社"),
        ("投诉", "城管"),
    ]


# ---- district and address ---------------------------------------------------------------
def test_district_and_street_address(config) -> None:
    draft = extract("地址在西湖区文三路一百二十号三幢二单元", config)
    assert draft["district"] == "西湖区"
    assert draft["address"] == "西湖区文三路一百二十号三幢二单元"
    assert draft["confidence"]["district"] == 1.0


def test_district_said_without_its_suffix_is_found_less_surely(config) -> None:
    draft = extract("我住在滨江那边", config)
    assert draft["district"] == "滨江区"
    assert 0 < draft["confidence"]["district"] < 1.0


def test_misheard_district_is_found_by_its_sound(config) -> None:
    for heard in ("狗受区", "拱树区", "共墅區"):
        draft = extract(f"工地在{heard}，晚上施工", config)
        assert draft["district"] == "拱墅区", heard


def test_district_heard_with_every_syllable_off_is_a_doubtful_guess(config) -> None:
    # whisper-base on the phone-band recording of "在拱墅区": 再狗受气
    draft = extract("工地晚上还在施工，噪音特别大，再狗受气", config)
    assert draft["district"] == "拱墅区"
    assert "district" in draft["low_confidence"]
    assert extract("今天天气不错，狗很开心", config)["district"] is None


def test_another_citys_district_is_not_one_of_ours(config) -> None:
    assert extract("我在上海浦东新区", config)["district"] is None


def test_districts_come_from_the_configured_city() -> None:
    ningbo = config_with(city={"name": "宁波市", "districts": ["海曙区", "江北区", "鄞州区"]})
    assert extract("鄞州区有个工地噪音很大", ningbo)["district"] == "鄞州区"
    assert extract("西湖区有个工地噪音很大", ningbo)["district"] is None


def test_our_neighbourhood_is_not_an_address(config) -> None:
    draft = extract("我们小区楼下的饭店油烟太大", config)
    assert draft["address"] is None


def test_address_of_a_named_place(config) -> None:
    draft = extract("我要表扬一下滨江区政务服务中心的工作人员", config)
    assert draft["address"] == "滨江区政务服务中心"


# ---- callback number --------------------------------------------------------------------
@pytest.mark.parametrize(
    "said",
    [
        "我的手机号码是一三八零五七一二三四五",
        "电话幺三八零五七幺二三四五",
        "回电打一三八 零五七一 二三四五",
        "号码是138 0571 2345",
        "手机1三8零5七1二3四5",
        "电话是１３８０５７１２３４５",
    ],
)
def test_spoken_mobile_number_becomes_digits(said: str, config) -> None:
    draft = extract(said, config)
    assert draft["callback"] == "13805712345"
    assert draft["confidence"]["callback"] >= 0.9
    assert "13805712345" not in draft["transcript"]
    assert "138****2345" in draft["transcript"]


def test_word_by_word_recogniser_output_with_spaces(config) -> None:
    draft = extract(
        "我 的 手机 号码 是 一 三 八 零 五 七 一 二 三 四 五 ， 我 想 咨询 公 积 金", config
    )
    assert (draft["callback"], draft["seat"], draft["type"]) == ("13805712345", "gjj", "咨询")
    assert "138****2345" in draft["transcript"]


def test_mobile_with_country_code(config) -> None:
    draft = extract("我的手机是+8613805712345", config)
    assert draft["callback"] == "13805712345"
    assert "+861******2345" in draft["transcript"]  # one masking: first 3 + last 4


def test_landline_with_area_code(config) -> None:
    draft = extract("我家电话是零五七一八七六五四三二一", config)
    assert draft["callback"] == "057187654321"
    assert "057*****4321" in draft["transcript"]  # one masking: first 3 + last 4


def test_numbers_that_are_not_phones_are_no_callback(config) -> None:
    for said in (
        "我打了12345好几次",
        "欠了三个月工资",
        "电话一三八零五",
        "编号一二三四五六七八九零一",
    ):
        assert extract(said, config)["callback"] is None, said


def test_identity_number_is_no_callback(config) -> None:
    draft = extract("身份证号330106199001011234", config)
    assert draft["callback"] is None


# ---- name -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("said", "name"),
    [
        ("我姓王，住在西湖区", "王"),
        ("免贵姓欧阳", "欧阳"),
        ("我叫张三，我要投诉", "张三"),
        ("我叫欧阳娜娜", "欧阳娜娜"),
        ("我是李女士，想问一下", "李女士"),
        ("我姓陈，陈先生", "陈先生"),
    ],
)
def test_caller_name(said: str, name: str, config) -> None:
    assert extract(said, config)["name"] == name


def test_no_name_when_none_is_given(config) -> None:
    draft = extract("我想问一下公积金", config)
    assert draft["name"] is None and draft["confidence"]["name"] == 0.0
    assert extract("我叫救护车了吗", config)["name"] is None


# ---- emergency --------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("said", "line", "word"),
    [
        ("我家楼下着火了", "119", "着火"),
        ("家里起火了，到处是烟", "119", "起火"),
        ("我爸突然晕倒了", "120", "晕倒"),
        ("前面车祸了", "122", "车祸"),
        ("有人抢劫", "110", "抢劫"),
        ("外面有人打架", "110", "打架"),
    ],
)
def test_emergency_words_from_the_config_choose_the_line(said, line, word, config) -> None:
    assert word in config.caller_rules.emergency_words[line]
    draft = extract(said, config)
    assert draft["emergency"] == line
    assert word in draft["emergency_words"]


def test_emergency_word_said_with_fillers_inside(config) -> None:
    assert extract("他流了好多血", config)["emergency"] == "120"
    assert extract("厨房着了火", config)["emergency"] == "119"


def test_misheard_bleeding_with_fillers_is_still_bleeding(config) -> None:
    # whisper-base wrote 留 for 流 in "流了很多血"
    draft = extract("有人在马路上被车撞了，留了很多血", config)
    assert draft["emergency"] == "120"
    assert draft["emergency_words"] == ["流血"]


def test_an_emergency_is_not_also_registered_as_a_matter(config) -> None:
    # "有人" heard as 油烟 (an environment keyword) must not add an enquiry to a fight
    draft = extract("油烟在街上打架，还拿着刀", config)
    assert draft["emergency"] == "110"
    assert draft["demands"] == [] and draft["seat"] is None


def test_misheard_fire_is_still_fire(config) -> None:
    draft = extract("我家旁边找火了，快来人", config)
    assert draft["emergency"] == "119"
    assert draft["emergency_words"] == ["着火"]


def test_no_fire_is_no_emergency(config) -> None:
    assert extract("我家没有着火，就是有点烟味", config)["emergency"] is None


def test_a_crash_where_nobody_was_hurt_goes_to_122(config) -> None:
    draft = extract("前面车祸了，没有人受伤", config)
    assert draft["emergency"] == "122"
    assert "120" not in draft["emergency_heard"]


def test_fire_soon_after_something_is_still_fire(config) -> None:
    assert extract("装修完没多久就着火了", config)["emergency"] == "119"


def test_everyday_words_that_sound_like_emergencies_are_not(config) -> None:
    for said in ("大家好，我想问一下", "我手上有个材料", "我儿子在国外留学", "快递什么时候运到"):
        assert extract(said, config)["emergency"] is None, said


def test_fire_with_injured_goes_to_119_and_tells_all_lines(config) -> None:
    draft = extract("厨房起火了，我老公被烧伤晕倒了", config)
    assert draft["emergency"] == "119"
    assert list(draft["emergency_heard"]) == ["119", "120"]


def test_bleeding_after_a_crash_goes_to_120(config) -> None:
    draft = extract("有人被车撞了，流了很多血", config)
    assert draft["emergency"] == "120"
    assert "122" in draft["emergency_heard"]


def test_a_question_about_fire_is_mentioned_not_offered_119(config) -> None:
    # issue 14: a question about an emergency is not one happening (no false 119 offer)
    draft = extract("如果家里着火了怎么办", config)
    assert draft["emergency"] is None
    assert draft["emergency_context"] == "question"
    assert "119" in draft["emergency_mentioned"]
    assert "emergency" not in draft["low_confidence"]


def test_emergency_words_are_the_configs() -> None:
    rules = {
        "emergency_words": {"119": ["煤气泄漏"], "120": ["急救"], "110": ["报警"], "122": ["车祸"]}
    }
    city = config_with(caller_rules=rules)
    assert extract("楼道里煤气泄漏了", city)["emergency"] == "119"
    only_fire = config_with(caller_rules={"emergency_words": {"119": ["煤气泄漏"]}})
    assert extract("外面有人打架，还拿着刀", only_fire)["emergency"] is None


# ---- out of scope (第九条) ----------------------------------------------------------------
@pytest.mark.parametrize(
    ("said", "key"),
    [
        ("我要起诉我的邻居", "litigation"),
        ("劳动仲裁怎么申请", "arbitration"),
        ("我想查一下他的住址", "privacy"),
        ("帮我买张彩票", "non_government"),
        ("我的事已经在信访了", "petition"),
    ],
)
def test_matters_12345_does_not_take(said: str, key: str, config) -> None:
    draft = extract(said, config)
    assert draft["out_of_scope"] == key
    assert draft["out_of_scope_name"] == config.caller_rules.out_of_scope[key].name


def test_new_flat_is_not_a_petition(config) -> None:
    # 新房 and 信访 are both xin fang
    assert extract("我买的新房漏水", config)["out_of_scope"] is None


# ---- personal data (第二十条) ---------------------------------------------------------------
def test_identity_number_is_masked_everywhere(config) -> None:
    draft = extract("我要投诉，我身份证号是33010619900101123X，社保查不到", config)
    stored = json.dumps(draft, ensure_ascii=False)
    assert "33010619900101123" not in stored
    assert "**************123X" in draft["transcript"]
    assert "123X" in draft["demands"][0]["text"] and "3301061990" not in draft["summary"]


def test_spoken_identity_number_ending_in_cha_is_masked(config) -> None:
    said = "身份证三三零一零六一九九零零一零一一二三叉"
    masked = mask_text(said)
    assert masked == "身份证**************123X"
    assert "三三零一零六" not in extract(said, config)["transcript"]


def test_bank_card_in_groups_is_masked(config) -> None:
    assert mask_text("卡号6222 0212 3456 7890") == "卡号************7890"
    assert mask_text("卡号六二二二零二一二三四五六七八九零一二三") == "卡号***************0123"


def test_phone_masking_can_be_left_out() -> None:
    assert mask_text("电话13805712345", phones=False) == "电话13805712345"
    assert mask_text("电话13805712345") == "电话138****2345"


def test_ordinary_numbers_are_left_alone() -> None:
    said = "我打了12345三次，欠了三个月工资两千五百元，住在三幢二单元"
    assert mask_text(said) == said


def test_number_runs_join_groups_but_not_words() -> None:
    runs = number_runs("号码一三八，零五七一，二三四五，三个月了")
    assert [r.digits for r in runs] == ["13805712345"]


# ---- the draft as a whole ---------------------------------------------------------------
def test_draft_is_json_with_every_field_and_confidence(config) -> None:
    draft = extract("我姓王，我要投诉拱墅区莫干山路的工地噪音，电话幺三八零五七一二三四五", config)
    again = json.loads(json.dumps(draft, ensure_ascii=False))
    assert again == draft
    for key in ("type", "seat", "department", "district", "address", "callback", "name"):
        assert draft[key] is not None, key
        assert 0.0 < draft["confidence"][key] <= 1.0, key
    assert all(0.0 <= v <= 1.0 for v in draft["confidence"].values())
    assert set(draft["low_confidence"]) <= {k for k, v in draft["confidence"].items() if v < 0.6}


def test_summary_is_one_masked_line(config) -> None:
    draft = extract("我要投诉\n小区门口占道经营，\r\n电话13805712345", config)
    assert "\n" not in draft["summary"] and "\r" not in draft["summary"]
    assert draft["summary"].startswith("【投诉/城管】")
    assert "13805712345" not in draft["summary"]


# ---- the pinyin matcher -----------------------------------------------------------------
def test_similar_syllables() -> None:
    assert similarity("gong", "gong") == 1.0
    assert similarity("zhi", "zi") == similarity("ying", "yin") == 0.9
    assert similarity("xing", "xun") == similarity("gou", "gong") == 0.6
    assert similarity("ban", "bao") == 0.0
    assert similarity("xing", "xun", primary=False) == 0.0


def test_matcher_scores_characters_above_sound_above_guesses() -> None:
    m = PinyinMatcher([("公积金", "gjj"), ("咨询", "ask")])
    for text, how in (("公积金", "char"), ("攻击金", "pinyin"), ("公积经", "fuzzy")):
        found = [x for x in m.find(text, text_readings(text)) if x.payload == "gjj"]
        assert [x.how for x in found] == [how], text
    scores = [m.find(t, text_readings(t))[0].score for t in ("公积金", "攻击金", "公积经")]
    assert scores == sorted(scores, reverse=True)
    assert [x.how for x in m.find("自行", text_readings("自行"))] == ["close"]


def test_one_character_keywords_match_only_as_characters() -> None:
    m = PinyinMatcher([("火", "fire")])
    assert [x.start for x in m.find("伙火", text_readings("伙火"))] == [1]


def test_matchers_are_built_once_per_config(config) -> None:
    from speech import fields

    extract("公积金", config)
    tables = fields._tables(config)
    extract("社保", config)
    assert fields._tables(config) is tables
    other = config_with(city={"name": "宁波市", "districts": ["海曙区"]})
    assert fields._tables(other) is not tables


# ---- hotline speech analyze -------------------------------------------------------------
def test_analyze_text_prints_the_draft_as_json(capsys) -> None:
    from cli.commands.speech import main

    assert (
        main(["analyze", "--text", "我想咨询一下公积金", "--config", str(REPO / "hotline.yaml")])
        == 0
    )
    out = capsys.readouterr().out
    assert "公积金专席" in out  # not \u escapes
    assert json.loads(out)["seat"] == "gjj"


def test_analyze_reads_the_transcript_from_stdin(capsys, monkeypatch) -> None:
    import io

    from cli.commands.speech import main

    monkeypatch.setattr("sys.stdin", io.StringIO("我要投诉工地噪音\n"))
    assert main(["analyze", "--text", "-", "--compact"]) == 0
    draft = json.loads(capsys.readouterr().out)
    assert draft["type"] == "投诉" and draft["transcript"] == "我要投诉工地噪音"


def test_analyze_a_missing_recording_is_a_clear_error(capsys, tmp_path) -> None:
    from cli.commands.speech import main

    assert main(["analyze", str(tmp_path / "nope.wav")]) == 2
    assert "nope.wav: no such file" in capsys.readouterr().err


def test_analyze_with_a_broken_config_names_the_problem(capsys, tmp_path) -> None:
    from cli.commands.speech import main

    bad = tmp_path / "bad.yaml"
    bad.write_text("seats: [\n", encoding="utf-8")
    assert main(["analyze", "--text", "公积金", "--config", str(bad)]) == 2
    assert "bad.yaml" in capsys.readouterr().err


def test_analyze_without_a_recogniser_says_so(capsys, tmp_path, monkeypatch) -> None:
    import sys

    from cli.commands.speech import main

    wav = tmp_path / "call.wav"
    wav.write_bytes(b"RIFF")
    monkeypatch.setitem(sys.modules, "speech.recognize", None)  # as if E2's module were absent
    assert main(["analyze", str(wav)]) == 3
    err = capsys.readouterr().err
    assert "speech recognition is not available" in err and "--text" in err
