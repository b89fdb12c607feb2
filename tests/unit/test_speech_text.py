"""Recogniser text handling: joining words, cutting decoding loops, the Whisper prompt."""

from __future__ import annotations

from pathlib import Path

from hotline.config import load_config
from speech.recognizers import build_prompt, collapse_repeats, full_width_punctuation, join_words

ROOT = Path(__file__).resolve().parents[2]


def test_vosk_words_join_without_spaces_in_chinese_but_keep_them_in_latin() -> None:
    assert join_words(["我 想 咨询", "公积金", ""]) == "我想咨询公积金"
    assert join_words(["call", "12345", "热线"]) == "call 12345 热线"


def test_a_whisper_decoding_loop_is_cut_to_one_occurrence() -> None:
    looped = "给我带来了身体家庭,家庭,家庭,家庭,家庭,家庭"
    assert collapse_repeats(looped) == "给我带来了身体家庭"
    assert collapse_repeats("再狗数期再狗数期再狗数期") == "再狗数期"
    sentence = "公司拖欠我三个业公司,我要投诉。"
    assert collapse_repeats("我想" + sentence * 3 + "公司拖欠") == "我想" + sentence + "公司拖欠"


def test_ordinary_sentences_and_phone_numbers_are_left_alone() -> None:
    for text in (
        "我想咨询一下公积金提取需要哪些材料。",
        "谢谢谢谢",
        "13805712345",
        "一三八零五七一二三四五",
    ):
        assert collapse_repeats(text) == text


def test_prompt_carries_vocabulary_seats_and_districts_once() -> None:
    config = load_config(ROOT / "hotline.yaml")
    prompt = build_prompt(config)
    for word in ("公积金", "拖欠工资", "公积金专席", "拱墅区", "滨江区", config.city.name):
        assert word in prompt
    assert prompt.count("公积金、") == 1
    assert build_prompt(None)


def test_whisper_ascii_punctuation_after_chinese_becomes_full_width() -> None:
    assert full_width_punctuation("不知道去哪里办? 我要起诉,你们能帮我吗?") == (
        "不知道去哪里办？我要起诉，你们能帮我吗？"
    )
    assert full_width_punctuation("13805-712-345, ok?") == "13805-712-345, ok?"
