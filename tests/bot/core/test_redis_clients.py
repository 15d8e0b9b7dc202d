"""Redis clients carry timeouts that fit their process: a Redis that accepts and never answers
fails a web request within seconds, and a worker's blocking wait for a job is not cut short."""

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from rq import Queue, Worker

from bot.core import tunables
from bot.core.bootstrap import build_services, connect_redis, worker_socket_timeout
from tests.bot.whatsapp_kit import make_settings
from tests.store.blackhole import run_bounded, tcp_proxy


def connection_kwargs(client) -> dict:
    return client.connection_pool.connection_kwargs


def test_the_web_client_has_short_timeouts_and_never_retries_a_timeout(redis_url):
    client = connect_redis(redis_url)
    kwargs = connection_kwargs(client)
    assert kwargs["socket_timeout"] == tunables.REDIS_SOCKET_TIMEOUT
    assert kwargs["socket_connect_timeout"] == tunables.REDIS_CONNECT_TIMEOUT
    assert kwargs["health_check_interval"] == tunables.REDIS_HEALTH_CHECK_INTERVAL
    retry = kwargs["retry"]
    assert retry.get_retries() == 1
    assert RedisConnectionError in retry._supported_errors
    assert RedisTimeoutError not in retry._supported_errors
    assert client.ping()
    client.close()


def test_a_black_hole_redis_fails_a_ping_within_the_socket_timeout():
    with tcp_proxy(None) as black_hole:  # accepts, reads, never answers
        client = connect_redis(f"redis://127.0.0.1:{black_hole.port}/0")
        _, error, seconds = run_bounded(30, client.ping)
        client.close()
    assert isinstance(error, RedisTimeoutError), error
    assert tunables.REDIS_SOCKET_TIMEOUT * 0.9 <= seconds < tunables.REDIS_SOCKET_TIMEOUT + 1


def test_the_worker_client_outwaits_rqs_blocking_dequeue(redis_url):
    client = connect_redis(redis_url, for_worker=True)
    worker = Worker([Queue("opsbot-test", connection=client)], connection=client,
                    worker_ttl=tunables.WORKER_TTL)
    timeout = connection_kwargs(client)["socket_timeout"]
    assert timeout == worker_socket_timeout()
    assert timeout >= worker.dequeue_timeout + tunables.WORKER_REDIS_MARGIN  # RQ's formula
    assert connection_kwargs(worker.connection)["socket_timeout"] == timeout  # RQ left it
    client.close()


def test_a_worker_client_waits_out_a_blocking_dequeue_that_a_web_client_cuts_short(
        redis_url, monkeypatch):
    monkeypatch.setattr(tunables, "WORKER_TTL", 15 + 3)  # RQ then blocks 3 s for a job
    monkeypatch.setattr(tunables, "REDIS_SOCKET_TIMEOUT", 1.0)
    worker_client = connect_redis(redis_url, for_worker=True)
    assert worker_client.blpop(["opsbot-test-empty"], timeout=3) is None
    web_client = connect_redis(redis_url)
    with pytest.raises(RedisTimeoutError):
        web_client.blpop(["opsbot-test-empty"], timeout=3)
    worker_client.close()
    web_client.close()


def test_build_services_gives_the_worker_its_long_timeout(tmp_path, redis_url):
    settings = make_settings(tmp_path, f"sqlite:///{tmp_path / 'opsbot.db'}", redis_url)
    for for_worker, expected in ((False, tunables.REDIS_SOCKET_TIMEOUT),
                                 (True, worker_socket_timeout())):
        services = build_services(settings, migrate=False, for_worker=for_worker)
        try:
            assert connection_kwargs(services.redis)["socket_timeout"] == expected
            assert services.jobs.queue.connection is services.redis
        finally:
            services.close()
