"""Map places in the parsed YAML tree (and pydantic error locations) to line:col."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ruamel.yaml.comments import CommentedMap, CommentedSeq

KEY_MARKER = "[key]"


@dataclass(frozen=True)
class Place:
    """A node found in the tree: 1-based position and a readable path like `rules[2].then`."""

    line: int
    col: int
    path: str


def node_place(container: object, key: object, path: str) -> Place:
    """Return the position of `container[key]` (the value), falling back to the container."""
    line, col = 0, 0
    if isinstance(container, CommentedMap) and key in container:
        line, col = container.lc.value(key)
    elif isinstance(container, CommentedSeq) and isinstance(key, int) and key < len(container):
        line, col = container.lc.item(key)
    elif isinstance(container, CommentedMap | CommentedSeq):
        line, col = container.lc.line, container.lc.col
    return Place(line + 1, col + 1, path)


def key_place(container: CommentedMap, key: object, path: str) -> Place:
    """Return the position of the key itself (for unknown keys and duplicate ids)."""
    line, col = container.lc.key(key)
    return Place(line + 1, col + 1, path)


def locate(root: object, loc: Sequence[object], *, at_key: bool = False) -> Place:
    """Return the deepest node named by a pydantic `loc`. Parts that are not in the tree
    (union tags, model-internal fields) are skipped; `[key]` or `at_key` points at a key."""
    parent, key, node, path = None, None, root, ""
    for part in loc:
        if part == KEY_MARKER:
            at_key = True
            break
        child = _child(node, part)
        if child is _MISSING:
            continue
        parent, key, node = node, part, child
        path = f"{path}[{part}]" if isinstance(part, int) else f"{path}.{part}".lstrip(".")
    if parent is None:
        return Place(1, 1, path)
    if at_key and isinstance(parent, CommentedMap):
        return key_place(parent, key, path)
    return node_place(parent, key, path)


_MISSING = object()


def _child(node: object, part: object) -> object:
    if isinstance(node, CommentedMap) and not isinstance(part, int | bool):
        return node.get(part, _MISSING)
    if isinstance(node, CommentedSeq) and isinstance(part, int) and 0 <= part < len(node):
        return node[part]
    return _MISSING
