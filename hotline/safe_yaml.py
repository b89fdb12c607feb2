"""The one YAML loader for files that come from outside: bounded, strict, fast to refuse.

PyYAML's ``safe_load`` builds whatever a file describes: an alias bomb (a few lines that
expand to billions of nodes), 20,000-deep nesting (a RecursionError trace), a 50 MB file,
and duplicate keys that silently keep the last value (a menu digit quietly re-routed).  This
loader refuses each of those before any of it is built, with the file and line at fault:

* the file is at most :data:`MAX_BYTES` (checked before it is parsed);
* anchors, aliases and merge keys (``&a``, ``*a``, ``<<``) are refused: a config is written
  out in full, so an alias bomb has nothing to expand (the docker compose file needs them:
  with ``aliases=True`` an alias counts as every value it repeats, so the limits below bound
  the document as it will be built);
* nesting is at most :data:`MAX_DEPTH` deep, a document at most :data:`MAX_NODES` nodes;
* a scalar is at most :data:`MAX_SCALAR_CHARS` characters;
* a key that appears twice in one mapping is an error naming both lines.

Every refusal is a :class:`YamlRefused` (a ``yaml.MarkedYAMLError``: ``problem`` says what,
``problem_mark`` says where).
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any

import yaml

MAX_BYTES = 256 * 1024
"""The example config is 6 KB; a city with a thousand agents stays under 150 KB."""
MAX_DEPTH = 32
MAX_NODES = 20_000
MAX_SCALAR_CHARS = 4096


class YamlRefused(yaml.MarkedYAMLError):
    """A YAML document this loader will not build; ``problem_mark`` is where."""

    def __init__(self, problem: str, mark: yaml.Mark | None) -> None:
        super().__init__(problem=problem, problem_mark=mark)


def _mark(name: str, text: str, index: int) -> yaml.Mark:
    line = text.count("\n", 0, index)
    column = index - (text.rfind("\n", 0, index) + 1)
    return yaml.Mark(name, index, line, column, None, None)


_Loader: type = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
"""libyaml's event parser (no recursion, ~3 µs an event) when PyYAML was built with it."""


class _Named(io.StringIO):
    """Text with a ``name``, so the parser's own marks name the file."""

    def __init__(self, text: str, name: str) -> None:
        super().__init__(text)
        self.name = name


class _Open:
    """A collection being composed: its node, where its values began (for the expanded size
    of an anchor), its height so far, and for a mapping the key waiting for its value."""

    def __init__(self, node: yaml.CollectionNode, anchor: str | None, nodes: int) -> None:
        self.node = node
        self.anchor = anchor
        self.first = nodes
        self.height = 1
        self.key: yaml.Node | None = None
        self.seen: dict[object, yaml.Node] = {}


def _check_key(loader: Any, mapping: _Open, key: yaml.Node, aliases: bool) -> None:
    if not isinstance(key, yaml.ScalarNode):
        raise YamlRefused("a mapping key must be a plain value", key.start_mark)
    if key.tag == "tag:yaml.org,2002:merge":
        if aliases:
            return
        raise YamlRefused("merge keys (<<) are not allowed", key.start_mark)
    value = loader.construct_object(key)
    try:
        earlier = mapping.seen.setdefault(value, key)
    except TypeError:  # unhashable: cannot be a key of the built mapping either
        raise YamlRefused("a mapping key must be a plain value", key.start_mark) from None
    if earlier is not key:
        raise YamlRefused(
            f"duplicate key {key.value!r} (first on line {earlier.start_mark.line + 1}): "
            "a key may appear once in a mapping",
            key.start_mark,
        )


class _Composer:
    """Builds the single document's node graph from parser events, without recursion,
    refusing at the first event beyond a limit.  With ``aliases`` an alias counts as the
    whole value it repeats, so the limits bound the document as it will be built."""

    def __init__(self, loader: Any, aliases: bool) -> None:
        self.loader = loader
        self.aliases = aliases
        self.stack: list[_Open] = []
        self.anchors: dict[str, tuple[yaml.Node, int, int]] = {}  # node, size, height
        self.root: yaml.Node | None = None
        self.nodes = 0

    def attach(self, node: yaml.Node, height: int) -> None:
        if not self.stack:
            self.root = node
            return
        top = self.stack[-1]
        top.height = max(top.height, height + 1)
        if not isinstance(top.node, yaml.MappingNode):
            top.node.value.append(node)
        elif top.key is None:
            _check_key(self.loader, top, node, self.aliases)
            top.key = node
        else:
            top.node.value.append((top.key, node))
            top.key = None

    def count(self, event: yaml.Event, size: int, height: int) -> None:
        self.nodes += size
        if self.nodes > MAX_NODES:
            raise YamlRefused(f"more than {MAX_NODES} values in one document", event.start_mark)
        if len(self.stack) + height > MAX_DEPTH:
            raise YamlRefused(f"nested more than {MAX_DEPTH} levels deep", event.start_mark)

    def alias(self, event: yaml.AliasEvent) -> None:
        if not self.aliases:
            raise YamlRefused(
                f"YAML aliases (*{event.anchor}) are not allowed: write the value out in full",
                event.start_mark,
            )
        if event.anchor not in self.anchors:
            raise YamlRefused(f"unknown alias *{event.anchor}", event.start_mark)
        node, size, height = self.anchors[event.anchor]
        self.count(event, size, height)
        self.attach(node, height)

    def node(self, event: yaml.NodeEvent) -> None:
        if event.anchor and not self.aliases:
            raise YamlRefused(
                f"YAML anchors (&{event.anchor}) are not allowed: write the value out in full",
                event.start_mark,
            )
        tag = event.tag if event.tag not in (None, "!") else None
        if isinstance(event, yaml.ScalarEvent):
            self.count(event, 1, 0)
            if len(event.value) > MAX_SCALAR_CHARS:
                raise YamlRefused(
                    f"a value of {len(event.value)} characters (at most {MAX_SCALAR_CHARS})",
                    event.start_mark,
                )
            tag = tag or self.loader.resolve(yaml.ScalarNode, event.value, event.implicit)
            s = yaml.ScalarNode(tag, event.value, event.start_mark, event.end_mark, event.style)
            if event.anchor:
                self.anchors[event.anchor] = (s, 1, 0)
            self.attach(s, 0)
            return
        self.count(event, 1, 1)
        kind = yaml.SequenceNode if isinstance(event, yaml.SequenceStartEvent) else yaml.MappingNode
        tag = tag or self.loader.resolve(kind, None, event.implicit)
        collection = kind(tag, [], event.start_mark, None, event.flow_style)
        self.stack.append(_Open(collection, event.anchor, self.nodes))

    def end(self, event: yaml.CollectionEndEvent) -> None:
        done = self.stack.pop()
        done.node.end_mark = event.end_mark
        if done.anchor:
            self.anchors[done.anchor] = (done.node, self.nodes - done.first + 1, done.height)
        self.attach(done.node, done.height)

    def compose(self) -> yaml.Node | None:
        get = self.loader.get_event
        get()  # StreamStart
        if self.loader.check_event(yaml.StreamEndEvent):
            return None
        get()  # DocumentStart
        while not isinstance(event := get(), yaml.DocumentEndEvent):
            if isinstance(event, yaml.AliasEvent):
                self.alias(event)
            elif isinstance(event, yaml.CollectionEndEvent):
                self.end(event)
            else:
                self.node(event)
        if not isinstance(event := get(), yaml.StreamEndEvent):
            raise YamlRefused("only one YAML document is allowed in the file", event.start_mark)
        return self.root


def compose(text: str, name: str = "<yaml>", aliases: bool = False) -> tuple[yaml.Node | None, Any]:
    """The document's node graph within the limits, and the loader to construct it with
    (call ``loader.dispose()`` when done).  ``aliases`` allows anchors, aliases and merge
    keys (docker compose files use them), counted at their expanded size."""
    if len(text) > MAX_BYTES:
        raise YamlRefused(
            f"the document is longer than {MAX_BYTES} characters", _mark(name, text, MAX_BYTES)
        )
    loader = _Loader(_Named(text, name))
    try:
        return _Composer(loader, aliases).compose(), loader
    except yaml.reader.ReaderError as exc:
        loader.dispose()
        char = exc.character if isinstance(exc.character, int) else ord(exc.character)
        raise YamlRefused(
            f"character U+{char:04X} is not allowed in YAML", _mark(name, text, exc.position)
        ) from None
    except BaseException:
        loader.dispose()
        raise


def load(text: str, name: str = "<yaml>", aliases: bool = False) -> object:
    """``yaml.safe_load`` within the limits (:class:`YamlRefused` otherwise)."""
    node, loader = compose(text, name, aliases)
    try:
        return None if node is None else loader.construct_document(node)
    finally:
        loader.dispose()


def read_text(path: str | Path, max_bytes: int = MAX_BYTES) -> str:
    """A file's UTF-8 text, refused (without reading it all) when it exceeds ``max_bytes``."""
    p = Path(path)
    with open(p, "rb") as fh:
        size = os.fstat(fh.fileno()).st_size
        head = fh.read(max_bytes + 1)
    if size > max_bytes or len(head) > max_bytes:
        line = head[:max_bytes].count(b"\n")
        raise YamlRefused(
            f"the file is {max(size, len(head))} bytes; at most {max_bytes} are read",
            yaml.Mark(str(p), max_bytes, line, 0, None, None),
        )
    try:
        return head.decode("utf-8")
    except UnicodeDecodeError as exc:
        text = head[: exc.start].decode("utf-8")
        raise YamlRefused("the file is not UTF-8", _mark(str(p), text, len(text))) from None


def load_file(path: str | Path, aliases: bool = False) -> object:
    """Read and :func:`load` a YAML file (every YAML file the repo reads goes through here)."""
    return load(read_text(path), str(path), aliases)
