"""The fake Graph API refuses interactive messages beyond WhatsApp's limits, as the real one
does (error 131009), so that a survey that would be refused in production fails in tests."""

import pytest
from pywa.errors import WhatsAppError
from pywa.types import Button, Section, SectionList, SectionRow

from sandbox.graph import interactive_problem
from tests.fakes import FakeGraph


def buttons(*titles: str, ids: list[str] | None = None) -> dict:
    ids = ids or [f"id{n}" for n in range(len(titles))]
    replies = [{"type": "reply", "reply": {"id": i, "title": t}} for i, t in zip(ids, titles,
                                                                                 strict=True)]
    return {"type": "interactive", "interactive": {"type": "button", "body": {"text": "Q"},
                                                   "action": {"buttons": replies}}}


def listing(button: str, *titles: str) -> dict:
    rows = [{"id": f"r{n}", "title": t} for n, t in enumerate(titles)]
    return {"type": "interactive", "interactive": {
        "type": "list", "body": {"text": "Q"},
        "action": {"button": button, "sections": [{"title": "S", "rows": rows}]}}}


@pytest.mark.parametrize(("body", "problem"), [
    (buttons("😀 Bien", "😐 Regular", "😞 Mal"), None),
    (buttons("a", "b", "c", "d"), "4 buttons (1 to 3 allowed)"),
    (buttons(), "0 buttons"),
    (buttons("x" * 21), "must have 1 to 20 characters"),
    (buttons("a", ids=["x" * 257]), "must have 1 to 256 characters"),
    (buttons("a", "b", ids=["same", "same"]), "the same id"),
    (listing("Valorar", *[f"row {n}" for n in range(10)]), None),
    (listing("Valorar", *[f"row {n}" for n in range(11)]), "11 rows (1 to 10 allowed)"),
    (listing("Valorar", "y" * 25), "must have 1 to 24 characters"),
    (listing("z" * 21, "a"), "button title must have 1 to 20"),
])
def test_interactive_limits(body, problem):
    found = interactive_problem(body)
    assert (found is None) if problem is None else (problem in found)


def test_a_refused_interactive_message_is_a_graph_error_through_pywa():
    with FakeGraph() as graph:
        client = graph.client()
        sent = client.send_message(to="34600000001", text="Q", buttons=[
            Button(title="😀 Bien", callback_data="a"),
            Button(title="😐 Regular", callback_data="b")])
        assert sent.id.startswith("wamid.")
        with pytest.raises(WhatsAppError) as caught:
            client.send_message(to="34600000001", text="Q", buttons=SectionList(
                button_title="Valorar", sections=[Section(title="S", rows=[
                    SectionRow(title="x" * 25, callback_data="r")])]))
        assert caught.value.code == 131009
