"""Fixed-window rate limits in Redis: the API's per-key limit and the console's sign-in limit."""

from dataclasses import dataclass
from datetime import datetime

from redis import Redis


@dataclass(frozen=True)
class Window:
    hits: int  # in this window, this one included
    retry_after: int  # seconds until the window ends


def count_hit(redis: Redis, key: str, *, window: int, now: datetime) -> Window:
    """Counts one hit of `key` (a `{window}` placeholder in it names the window) in the
    current window of `window` seconds. Raises RedisError or OSError when Redis fails."""
    now_s = int(now.timestamp())
    start = now_s - now_s % window
    name = key.format(window=start)
    pipe = redis.pipeline()
    pipe.incr(name)
    pipe.expire(name, window + 1)
    return Window(hits=pipe.execute()[0], retry_after=start + window - now_s)
