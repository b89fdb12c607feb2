"""Edits of the config's YAML text that keep everything else as written (comments, order,
flow or block style): the console's forms change one value, add or remove one menu key, and
the diff an admin sees shows only that.

A path is dotted (``menus.main.options.2``, ``seats.1.name``).  Values are written as JSON
scalars or flow sequences, which YAML reads back unchanged.  Every edit is followed by the
full validation of :mod:`admin.lifecycle` before anything is applied.
"""

from __future__ import annotations

import json
import re

import yaml

from hotline import safe_yaml

Scalar = str | int | float | bool
PLAIN = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_:.\-]*$")
"""Strings written without quotes (ids, targets like ``seat:gjj``, prompt names)."""


class EditError(ValueError):
    """An edit that cannot be made to this text (unknown path, a flow-style mapping)."""


def _render(value: Scalar | list[Scalar]) -> str:
    if isinstance(value, list):
        return "[" + ", ".join(_render(v) for v in value) + "]"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return json.dumps(value)
    if not isinstance(value, str):
        raise EditError(f"unsupported value {value!r:.40}")
    text = value
    if PLAIN.match(text) and safe_yaml.load(text) == text:
        return text
    return json.dumps(text, ensure_ascii=False)


def _node(text: str, path: str) -> tuple[yaml.Node, yaml.Node | None, yaml.Node]:
    """``(key node or None for a list item, value node, parent node)`` at ``path``."""
    root, loader = safe_yaml.compose(text, "hotline.yaml")
    loader.dispose()
    node: yaml.Node | None = root
    key: yaml.Node | None = None
    parent = root
    for part in path.split("."):
        parent = node
        if isinstance(node, yaml.MappingNode):
            found = [(k, v) for k, v in node.value if str(k.value) == part]
            if not found:
                raise EditError(f"{path}: no key {part!r} here")
            key, node = found[0]
        elif isinstance(node, yaml.SequenceNode) and part.isdigit() and int(part) < len(node.value):
            key, node = None, node.value[int(part)]
        else:
            raise EditError(f"{path}: no {part!r} here")
    if node is None or parent is None:
        raise EditError(f"{path}: empty document")
    return key, node, parent  # type: ignore[return-value]


def set_value(text: str, path: str, value: Scalar | list[Scalar]) -> str:
    """``text`` with the scalar or list at ``path`` replaced by ``value``."""
    _, node, _ = _node(text, path)
    if isinstance(node, yaml.MappingNode):
        raise EditError(f"{path} is a mapping: edit its keys")
    start, end = node.start_mark.index, node.end_mark.index
    return text[:start] + _render(value) + text[end:]


def add_key(text: str, path: str, key: str, value: Scalar) -> str:
    """``text`` with ``key: value`` added to the block mapping at ``path`` (after its last
    key, at the same indentation)."""
    _, node, _ = _node(text, path)
    if not isinstance(node, yaml.MappingNode) or node.flow_style or not node.value:
        raise EditError(f"{path} is not a block mapping: add {key!r} in the YAML editor")
    if any(str(k.value) == key for k, _ in node.value):
        raise EditError(f"{path}.{key} exists already")
    last_key, last_value = node.value[-1]
    indent = " " * last_key.start_mark.column
    line_end = text.find("\n", last_value.end_mark.index)
    if line_end < 0:
        text, line_end = text + "\n", len(text)
    new = f"{indent}{_render(str(key))}: {_render(value)}"
    if key in ("*", "#") or key.isdigit():
        new = f'{indent}"{key}": {_render(value)}'
    return text[: line_end + 1] + new + "\n" + text[line_end + 1 :]


def remove_key(text: str, path: str) -> str:
    """``text`` without the one-line ``key: value`` at ``path`` (block mappings only)."""
    key, node, parent = _node(text, path)
    if key is None or not isinstance(parent, yaml.MappingNode) or parent.flow_style:
        raise EditError(f"{path} is not a key of a block mapping: remove it in the YAML editor")
    if node.end_mark.line != key.start_mark.line and not (
        node.end_mark.line == key.start_mark.line + 1 and node.end_mark.column == 0
    ):
        raise EditError(f"{path} spans several lines: remove it in the YAML editor")
    start = text.rfind("\n", 0, key.start_mark.index) + 1
    end = text.find("\n", key.start_mark.index)
    return text[:start] + (text[end + 1 :] if end >= 0 else "")
