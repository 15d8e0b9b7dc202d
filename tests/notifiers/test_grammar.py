"""The command grammar: parsing what an agent typed (no database)."""

import pytest

from notifiers.grammar import Command, parse_command


@pytest.mark.parametrize(
    ("text", "verb", "args"),
    [
        ("accept T-12", "accept", ("T-12",)),
        ("/accept@opsbot_bot 12", "accept", ("12",)),
        ("  NOTE t-3 hola  mundo ", "note", ("t-3", "hola", "mundo")),
        ("", "help", ()),
        ("/ops accept 12", "accept", ("12",)),
        ("/ops", "help", ()),
        ("/OPS@opsbot_bot Tasks team", "tasks", ("team",)),
    ],
)
def test_parse_command(text, verb, args):
    command = parse_command(text)
    assert (command.verb, command.args) == (verb, args)


def test_rest_joins_the_words_after_the_first_arguments():
    command = Command("note", ("T-3", "hola", "mundo"))
    assert (command.rest(1), command.rest(3)) == ("hola mundo", "")
