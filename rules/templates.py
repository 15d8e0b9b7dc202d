"""`{contact.first_name}`-style templates: checked at load time, rendered by the caller."""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime, timedelta

from rules.durations import format_duration

_PLACEHOLDER = re.compile(r"\{([A-Za-z_][\w.]*)\}")

CONTACT_FIELDS = frozenset({"contact.name", "contact.first_name", "contact.status",
                            "contact.language", "contact.phone"})
MESSAGE_FIELDS = frozenset({"message.text", "message.type"})
# Titles are rendered by `evaluate`, before a task (or an agent) exists.
TITLE_FIELDS = CONTACT_FIELDS | MESSAGE_FIELDS
REPLY_FIELDS = TITLE_FIELDS | frozenset({
    "task.number", "task.ref", "task.title", "task.category", "task.priority", "task.team",
    "sla.first_response", "sla.resolution", "sla.first_response_eta", "sla.resolution_eta",
    "agent.name", "agent.first_name",
})


def placeholders(template: str) -> list[str]:
    """Return the placeholder names used in `template`, in order."""
    return _PLACEHOLDER.findall(template.replace("{{", "").replace("}}", ""))


def check_template(template: str, allowed: frozenset[str]) -> str:
    """Return `template` unchanged; raise ValueError naming any unknown placeholder."""
    unknown = [name for name in placeholders(template) if name not in allowed]
    if unknown:
        raise ValueError(
            f"unknown placeholder {{{unknown[0]}}}; allowed here: "
            + ", ".join(f"{{{name}}}" for name in sorted(allowed))
        )
    return template


def render_template(template: str, values: Mapping[str, object]) -> str:
    """Return `template` with placeholders filled from a flat (`"task.number"`) or nested
    (`{"task": {"number": 12}}`) mapping. Missing or None values render as ""; timedeltas
    render as "4 h"; `{{`/`}}` are literal braces."""

    def fill(match: re.Match[str]) -> str:
        return _display(_lookup(values, match.group(1)))

    parts = template.split("{{")
    rendered = [_PLACEHOLDER.sub(fill, part).replace("}}", "}") for part in parts]
    return "{".join(rendered)


def _lookup(values: Mapping[str, object], name: str) -> object:
    if name in values:
        return values[name]
    node: object = values
    for piece in name.split("."):
        if not isinstance(node, Mapping) or piece not in node:
            return _derived(values, name)
        node = node[piece]
    return node


def _derived(values: Mapping[str, object], name: str) -> object:
    # Callers usually know a full name; the first name is its first word.
    if name.endswith(".first_name"):
        words = str(_lookup(values, name.removesuffix("first_name") + "name") or "").split()
        return words[0] if words else None
    if name == "task.ref":
        number = _lookup(values, "task.number")
        return f"T-{number}" if number is not None and number != "" else None
    return None


def _display(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, timedelta):
        return format_duration(value)
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


def pick_language_text(texts: Mapping[str, str], language: str | None, default: str) -> str | None:
    """Return the text for `language`, else for `default`, else the first one; None if empty."""
    if not texts:
        return None
    for key in (language, default):
        if key and key in texts:
            return texts[key]
    return next(iter(texts.values()))
