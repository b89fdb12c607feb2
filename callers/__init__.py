"""Caller rules: repeat-caller throttling (第二十九条) and caller-number privacy (第二十条)."""
