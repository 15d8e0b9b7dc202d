"""A card's link to the customer's media: signed, expiring, served through the Graph API."""

import re
from datetime import timedelta

import httpx
import pytest
from rq import SimpleWorker

from bot.core.bootstrap import build_services
from bot.core.media_links import MediaLinkExpired, MediaLinkInvalid, MediaLinks
from bot.worker.drains import drain
from bot.worker.entrypoints import install_services
from tests.bot.whatsapp_kit import IMAGE, make_settings, message_body, post, running_app
from tests.fakes import FakeGraph, FakeSlack

PUBLIC_URL = "https://ops.example.com"
PHOTO = b"\xff\xd8\xff\xe0 a broken box"
LINK = re.compile(r"<(https://ops\.example\.com/media/[^|>]+)\|([^>]*)>")


@pytest.fixture
def graph():
    with FakeGraph(token="TEST-TOKEN") as fake:
        fake.add_media(IMAGE["image"]["id"], PHOTO, "image/jpeg")
        yield fake


@pytest.fixture
def slack():
    with FakeSlack() as fake:
        yield fake


@pytest.fixture
def services(tmp_path, database_url, redis_url, graph, slack):
    settings = make_settings(tmp_path, database_url, redis_url, whatsapp_api_base_url=graph.url,
                             slack_bot_token="xoxb-test", slack_signing_secret="slack-secret",
                             slack_api_base_url=slack.url, public_url=PUBLIC_URL)
    built = build_services(settings, migrate=False)
    install_services(built)
    yield built
    install_services(None)
    built.close()


@pytest.fixture
def app(services, graph):
    """The app's URL, after an image from the customer became a task and its card was sent."""
    with running_app(services) as url:
        assert post(url, message_body(IMAGE, wamid="wamid.IMG")).status_code == 200
        drain(services)  # not the app's request: a burst worker may start before it is queued
        SimpleWorker([services.jobs.queue], connection=services.redis).work(
            burst=True, with_scheduler=False)
        yield url


def card_link(slack: FakeSlack) -> tuple[str, str]:
    texts = [field["text"] for message in slack.sent_messages()
             for block in message.get("blocks") or () for field in block.get("fields") or ()]
    links = [found.groups() for text in texts if (found := LINK.search(text))]
    assert links, "\n".join(texts)
    return links[0]


def get(app: str, link: str) -> httpx.Response:
    return httpx.get(link.replace(PUBLIC_URL, app), timeout=10)


def test_the_card_links_the_image_and_the_link_serves_it(app, slack):
    link, label = card_link(slack)
    assert label == "image"
    answer = get(app, link)
    assert answer.status_code == 200
    assert answer.content == PHOTO
    assert answer.headers["content-type"] == "image/jpeg"
    assert answer.headers["cache-control"] == "private, no-store"
    assert answer.headers["content-disposition"].startswith("inline")


def test_a_tampered_link_is_forbidden(app, slack):
    link, _ = card_link(slack)
    answer = get(app, link[:-2] + ("AA" if not link.endswith("AA") else "BB"))
    assert answer.status_code == 403
    assert "not valid" in answer.text


def test_an_expired_link_is_gone(app, slack, services):
    link, _ = card_link(slack)
    services.media_links.ttl = timedelta(seconds=-1)  # every token is older than that
    answer = get(app, link)
    assert answer.status_code == 410
    assert "expired" in answer.text


def test_a_link_to_an_unknown_message_is_not_found(app, services):
    answer = get(app, services.media_links.url_for(999_999))
    assert answer.status_code == 404
    assert "no media" in answer.text


def test_the_graph_api_failing_is_a_bad_gateway(app, slack, graph):
    link, _ = card_link(slack)
    graph.fail_next(10, status=500, match=IMAGE["image"]["id"])
    answer = get(app, link)
    assert answer.status_code == 502
    assert "WhatsApp did not hand over the media" in answer.text


def test_a_token_says_whether_it_expired_or_is_not_ours():
    links = MediaLinks(PUBLIC_URL, "secret", timedelta(days=7))
    token = links.url_for(42).rsplit("/", 1)[1]
    assert links.message_id_of(token) == 42
    with pytest.raises(MediaLinkInvalid):
        MediaLinks(PUBLIC_URL, "other secret", timedelta(days=7)).message_id_of(token)
    with pytest.raises(MediaLinkExpired):
        MediaLinks(PUBLIC_URL, "secret", timedelta(seconds=-1)).message_id_of(token)


def test_a_file_that_could_run_as_a_page_is_downloaded_not_opened(app, slack, graph):
    # The customer's "image" turns out to be HTML: never shown inline, never run as ours.
    graph.add_media(IMAGE["image"]["id"], b"<script>alert(1)</script>", "text/html")
    link, _ = card_link(slack)
    answer = get(app, link)
    assert answer.status_code == 200
    assert answer.headers["content-disposition"].startswith("attachment")
    assert answer.headers["x-content-type-options"] == "nosniff"
    assert answer.headers["content-security-policy"].startswith("sandbox")
