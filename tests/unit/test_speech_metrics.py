"""Character error rate."""

from __future__ import annotations

import pytest

from speech.metrics import cer, edit_distance, normalise


def test_punctuation_and_spaces_do_not_count() -> None:
    assert normalise("你好，我想 问一下。OK!") == "你好我想问一下ok"
    assert cer("甚至出现交易几乎停滞的情况。", "甚至出现交易几乎停滞的情况") == 0.0


def test_one_misheard_character_in_thirteen() -> None:
    assert cer("甚至出现交易几乎停制的情况", "甚至出现交易几乎停滞的情况") == pytest.approx(1 / 13)


def test_insertions_deletions_and_substitutions_each_cost_one() -> None:
    assert edit_distance("公积金", "公积金") == 0
    assert edit_distance("攻击金", "公积金") == 2
    assert edit_distance("公积金提取", "公积金") == 2
    assert edit_distance("", "公积金") == 3
    assert cer("", "公积金") == 1.0
    assert cer("多余", "") == 1.0 and cer("", "") == 0.0
