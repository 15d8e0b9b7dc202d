import pytest

from bot.usecases.conversation import read_rating


@pytest.mark.parametrize(
    ("text", "rating"),
    [("5", 5), (" 4 ", 4), ("3/5", 3), ("1.", 1), ("5!", 5), ("⭐⭐⭐", 3), ("⭐️⭐️", 2),
     ("0", None), ("6", None), ("10", None), ("5 estrellas y gracias", None), ("", None),
     ("pedido 5", None)],
)
def test_a_reply_to_the_closing_message_is_read_as_a_rating_only_when_it_is_one(text, rating):
    assert read_rating(text) == rating
