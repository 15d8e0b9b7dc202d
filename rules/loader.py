"""Read rules.yaml into a RulesConfig, reporting every problem as PATH:LINE:COL: message."""

from __future__ import annotations

import difflib
import hashlib
from datetime import date, datetime
from functools import cache
from pathlib import Path

from pydantic import BaseModel, ValidationError
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import MarkedYAMLError, YAMLError

from rules import conditions, config
from rules.config import RulesConfig
from rules.errors import RuleIssue, RulesError
from rules.matching import compiled_rules
from rules.positions import Place, locate
from rules.references import check_references


def parse_rules(text: str, path: str = "rules.yaml") -> RulesConfig:
    """Return the validated config for YAML `text`; raise RulesError listing every problem."""
    root = _load_yaml(text, path)
    result, problems = _validate(root)
    problems += check_references(root)
    if problems or result is None:
        raise RulesError(sorted({_issue(path, place, msg) for place, msg in problems}))
    compiled_rules(result)  # compile now, so evaluation never pays for it
    result._source_sha256 = hashlib.sha256(text.encode()).hexdigest()
    return result


def load_rules(path: str | Path) -> RulesConfig:
    """Return the validated config read from `path`; raise RulesError (also for I/O errors)."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise RulesError([RuleIssue(str(path), 1, 1, f"cannot read the file: {exc}")]) from exc
    return parse_rules(text, str(path))


def _issue(path: str, place: Place, message: str) -> RuleIssue:
    prefix = f"{place.path}: " if place.path and not message.startswith(place.path) else ""
    return RuleIssue(path, place.line, place.col, prefix + message)


def _load_yaml(text: str, path: str) -> CommentedMap:
    try:
        root = YAML(typ="rt").load(text)
    except YAMLError as exc:
        raise RulesError([_yaml_issue(exc, path)]) from exc
    if not isinstance(root, CommentedMap):
        raise RulesError([RuleIssue(path, 1, 1, "the file must be a mapping with version, "
                                    "timezone, business_hours, sla, teams, agents and rules")])
    return root


def _yaml_issue(exc: YAMLError, path: str) -> RuleIssue:
    mark = getattr(exc, "problem_mark", None) if isinstance(exc, MarkedYAMLError) else None
    problem = getattr(exc, "problem", None) or str(exc)
    context = getattr(exc, "context", None)
    message = f"YAML syntax: {problem}" + (f" ({context})" if context else "")
    if mark is None:
        return RuleIssue(path, 1, 1, message)
    return RuleIssue(path, mark.line + 1, mark.column + 1, message.split("\n")[0])


def _validate(root: CommentedMap) -> tuple[RulesConfig | None, list[tuple[Place, str]]]:
    try:
        return RulesConfig.model_validate(_plain(root)), []
    except ValidationError as exc:
        return None, [_describe(root, error) for error in exc.errors()]


def _describe(root: CommentedMap, error: dict) -> tuple[Place, str]:
    loc, kind = error["loc"], error["type"]
    if kind == "extra_forbidden":
        return locate(root, loc, at_key=True), f"unknown key {loc[-1]!r}{_suggest(loc[-1])}"
    if kind == "missing":
        return locate(root, loc[:-1]), f"missing required key {loc[-1]!r}"
    message = error["msg"].removeprefix("Value error, ").removeprefix("Assertion failed, ")
    return locate(root, loc), message


def _suggest(key: object) -> str:
    close = difflib.get_close_matches(str(key), _known_keys(), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


@cache
def _known_keys() -> tuple[str, ...]:
    models = [m for module in (conditions, config) for m in vars(module).values()
              if isinstance(m, type) and issubclass(m, BaseModel)]
    return tuple({field.alias or name for model in models
                  for name, field in model.model_fields.items()} | {"holidays"})


def _plain(node: object) -> object:
    """Return plain dict/list/str/int copies of ruamel's round-trip types."""
    if isinstance(node, CommentedMap):
        return {_plain(key): _plain(value) for key, value in node.items()}
    if isinstance(node, CommentedSeq):
        return [_plain(item) for item in node]
    if isinstance(node, bool | None | date | datetime):
        return node
    for kind in (str, int, float):
        if isinstance(node, kind):
            return kind(node)
    return node
