"""FakeGraph answers the real pywa 4.5 client over HTTP."""

import asyncio

import pytest
from pywa import WhatsApp
from pywa.errors import WhatsAppError
from pywa.types.templates import BodyText, TemplateLanguage
from pywa_async import WhatsApp as AsyncWhatsApp

from sandbox.graph import FakeGraph, pywa_async_http_client, pywa_http_client

PHONE_ID = "1000000001"
CUSTOMER = "34600111222"


@pytest.fixture
def graph():
    with FakeGraph(token="TEST-TOKEN") as fake:
        yield fake


@pytest.fixture
def wa(graph):
    client = WhatsApp(phone_id=PHONE_ID, token="TEST-TOKEN", session=pywa_http_client(graph.url))
    yield client
    client.api._session.close()


def test_send_message_reaches_the_fake_and_returns_its_wamid(graph, wa):
    sent = wa.send_message(to=CUSTOMER, text="Hola, tu solicitud #12 está en marcha.")
    again = wa.send_message(to=CUSTOMER, text="second")
    (call, _) = graph.calls("messages")
    assert sent.id.startswith("wamid.") and sent.id != again.id
    assert sent.chat.id == CUSTOMER
    assert call.path.startswith("/v") and call.path.endswith(f"/{PHONE_ID}/messages")
    assert call.headers["authorization"] == "Bearer TEST-TOKEN"
    assert call.json["to"] == CUSTOMER
    assert call.json["text"]["body"] == "Hola, tu solicitud #12 está en marcha."
    assert [m["type"] for m in graph.sent_messages()] == ["text", "text"]


def test_send_template(graph, wa):
    sent = wa.send_template(
        to=CUSTOMER,
        name="task_update",
        language=TemplateLanguage.ENGLISH_US,
        params=[BodyText.params("12", "Ana")],
    )
    assert sent.id.startswith("wamid.")
    template = graph.sent_messages()[0]["template"]
    assert (template["name"], template["language"]["code"]) == ("task_update", "en_US")


def test_reaction_and_mark_as_read(graph, wa):
    wa.send_reaction(to=CUSTOMER, emoji="👍", message_id="wamid.IN1")
    assert wa.mark_message_as_read(message_id="wamid.IN1", sender=PHONE_ID)
    reaction, read = graph.calls("messages")
    assert reaction.json["reaction"] == {"message_id": "wamid.IN1", "emoji": "👍"}
    assert read.json["status"] == "read"
    assert len(graph.sent_messages()) == 1


def test_media_url_and_download(graph, wa):
    graph.add_media("555", b"\x89PNG fake", "image/png")
    media = wa.get_media_url("555")
    assert media.url == graph.media_url("555")
    assert (media.mime_type, media.file_size) == ("image/png", 9)
    assert wa.get_media_bytes(media.url) == b"\x89PNG fake"
    assert wa.get_media_bytes(wa.get_media_url("777").url) == b"fake media 777"


def test_unknown_routes_answer_a_graph_error(graph, wa):
    with pytest.raises(WhatsAppError) as caught:
        wa.api.send_raw_request(method="POST", endpoint=f"/{PHONE_ID}/nonsense", json={})
    assert caught.value.code == 100


def test_scripted_rate_limit_then_success(graph, wa):
    graph.fail_next(1, status=429, match="/messages")
    with pytest.raises(WhatsAppError) as caught:
        wa.send_message(to=CUSTOMER, text="first try")
    assert caught.value.code == 130429
    assert wa.send_message(to=CUSTOMER, text="retry").id.startswith("wamid.")
    assert [r.status for r in graph.calls("messages")] == [429, 200]


def test_wrong_token_is_refused(graph):
    other = WhatsApp(phone_id=PHONE_ID, token="WRONG", session=pywa_http_client(graph.url))
    with pytest.raises(WhatsAppError) as caught:
        other.send_message(to=CUSTOMER, text="x")
    assert caught.value.code == 190


def test_client_helper_and_async_pywa(graph):
    assert graph.client(token="TEST-TOKEN").send_message(to=CUSTOMER, text="a").id

    async def send():
        wa = AsyncWhatsApp(
            phone_id=PHONE_ID, token="TEST-TOKEN", session=pywa_async_http_client(graph.url)
        )
        return await wa.send_message(to=CUSTOMER, text="async")

    assert asyncio.run(send()).id.startswith("wamid.")
    assert len(graph.sent_messages()) == 2
