"""Cross-reference checks on the raw YAML tree, so they can be reported with positions
(and together with schema errors): teams, skills, agents, SLA policies, rule names."""

from __future__ import annotations

from collections.abc import Iterator

from ruamel.yaml.comments import CommentedMap, CommentedSeq

from rules.enums import Priority
from rules.positions import Place, key_place, node_place

Problem = tuple[Place, str]


def check_references(root: CommentedMap) -> list[Problem]:
    """Return every dangling or duplicated reference in the tree, with its place."""
    teams = _mapping(root.get("teams"))
    agents = [(i, a) for i, a in enumerate(_sequence(root.get("agents"))) if _is_map(a)]
    agent_ids = {a.get("id") for _, a in agents}
    skills = {skill for _, a in agents for skill in _names(a.get("skills"))}
    problems = list(_duplicate_agents(agents))
    problems += _agent_links(agents, teams)
    problems += _team_supervisors(teams, agent_ids)
    problems += _sla_policies(_mapping(root.get("sla")), root)
    policies = set(_mapping(root.get("sla"))) | {p.value for p in Priority}
    problems += _rule_links(_sequence(root.get("rules")), set(teams), skills, policies)
    return problems


def _duplicate_agents(agents: list[tuple[int, CommentedMap]]) -> Iterator[Problem]:
    first_seen: dict[object, int] = {}
    for index, agent in agents:
        agent_id = agent.get("id")
        if agent_id in first_seen and "id" in agent:
            place = node_place(agent, "id", f"agents[{index}].id")
            first = f"agents[{first_seen[agent_id]}]"
            yield place, f"agent id {agent_id!r} is used twice (first at {first})"
        first_seen.setdefault(agent_id, index)


def _agent_links(agents: list[tuple[int, CommentedMap]], teams: CommentedMap) -> Iterator[Problem]:
    for index, agent in agents:
        for pos, team in _items(agent, "teams", f"agents[{index}].teams"):
            if team not in teams:
                yield pos, f"unknown team {team!r}{_known(teams)}"
        channel = agent.get("preferred_channel")
        if channel in ("slack", "telegram") and agent.get(channel) is None:
            place = node_place(agent, "preferred_channel", f"agents[{index}].preferred_channel")
            yield place, f"preferred_channel is {channel} but the agent has no {channel} id"


def _team_supervisors(teams: CommentedMap, agent_ids: set[object]) -> Iterator[Problem]:
    for name, team in teams.items():
        if _is_map(team) and "supervisor" in team and team["supervisor"] not in agent_ids:
            place = node_place(team, "supervisor", f"teams.{name}.supervisor")
            yield place, f"supervisor {team['supervisor']!r} is not an agent id"


def _sla_policies(sla: CommentedMap, root: CommentedMap) -> Iterator[Problem]:
    # Priorities without a policy of their own fall back to `normal`, so it must exist.
    if "sla" in root and _is_map(root["sla"]) and Priority.normal not in sla:
        yield key_place(root, "sla", ""), "sla: define at least the `normal` policy"


def _rule_links(rules: CommentedSeq, teams: set[object], skills: set[object],
                policies: set[object]) -> Iterator[Problem]:
    names: dict[object, int] = {}
    for index, rule in enumerate(rules):
        if not _is_map(rule):
            continue
        if rule.get("name") in names:
            place = node_place(rule, "name", f"rules[{index}].name")
            first = f"rules[{names[rule['name']]}]"
            yield place, f"rule name {rule['name']!r} is used twice (first at {first})"
        names.setdefault(rule.get("name"), index)
        yield from _action_links(rule.get("then"), f"rules[{index}].then", teams, skills, policies)


def _action_links(then: object, path: str, teams: set[object], skills: set[object],
                  policies: set[object]) -> Iterator[Problem]:
    if not _is_map(then):
        return
    team, sla = then.get("team"), then.get("sla")
    if team is not None and team not in teams:
        yield node_place(then, "team", f"{path}.team"), f"unknown team {team!r}{_known(teams)}"
    if sla is not None and sla not in policies:
        place = node_place(then, "sla", f"{path}.sla")
        yield place, f"unknown sla policy {sla!r}{_known(policies)}"
    for place, skill in _items(then, "skills", f"{path}.skills"):
        if skill not in skills:
            yield place, f"no agent has skill {skill!r}{_known(skills)}"


def _items(parent: CommentedMap, key: str, path: str) -> Iterator[tuple[Place, object]]:
    value = parent.get(key)
    if isinstance(value, CommentedSeq):
        for index, item in enumerate(value):
            yield node_place(value, index, f"{path}[{index}]"), item
    elif isinstance(value, str):
        yield node_place(parent, key, path), value


def _known(names: set[object] | CommentedMap) -> str:
    listed = sorted(str(name) for name in names)
    return f" (known: {', '.join(listed)})" if listed else ""


def _names(value: object) -> list[object]:
    return list(value) if isinstance(value, CommentedSeq) else [value] if value else []


def _is_map(value: object) -> bool:
    return isinstance(value, CommentedMap)


def _mapping(value: object) -> CommentedMap:
    return value if isinstance(value, CommentedMap) else CommentedMap()


def _sequence(value: object) -> CommentedSeq:
    return value if isinstance(value, CommentedSeq) else CommentedSeq()

