"""Operating commands: `opsbot run|serve|worker`, `opsbot db upgrade`, `opsbot events ...`,
`opsbot jobs ...`."""

import os
from dataclasses import asdict
from pathlib import Path
from typing import Annotated

import typer
from rq.registry import FailedJobRegistry

from bot.cli.support import (
    JsonFlag,
    load_settings,
    open_existing_database,
    print_json,
    require_database,
    require_rules,
    say_database,
)
from bot.core import tunables
from bot.core.bootstrap import (
    build_services,
    check_redis,
    connect_redis,
    database_errors_explained,
    freeze_heap,
    open_database,
)
from bot.core.jobs import Jobs, list_failed_jobs, requeue_failed_job
from bot.core.logs import configure_logging
from bot.core.services import Services
from bot.core.settings import DATABASE_HELP, ConfigError, Settings
from store.inbound import list_failed_events, list_unretryable_events, retry_events

db_app = typer.Typer(help="Database schema.")
events_app = typer.Typer(help="Raw inbound events that could not be processed.")
jobs_app = typer.Typer(help="Background jobs that failed.")

NoMigrate = Annotated[
    bool, typer.Option("--no-migrate", help="Skip migrating the database on start.")
]


def register(app: typer.Typer) -> None:
    """Mounts these commands on the `opsbot` app."""
    app.command("run", epilog=DATABASE_HELP)(run)
    app.command("serve", epilog=DATABASE_HELP)(serve)
    app.command("worker", epilog=DATABASE_HELP)(worker)
    app.add_typer(db_app, name="db")
    app.add_typer(events_app, name="events")
    app.add_typer(jobs_app, name="jobs")


def _services(settings: Settings, *, migrate: bool = False,
              for_worker: bool = False) -> Services:
    """Everything a command that processes work needs, the database answering; raises
    ConfigError or RulesError saying what is wrong."""
    require_rules(settings.rules_path)
    services = build_services(settings, migrate=migrate, for_worker=for_worker)
    with database_errors_explained(settings):
        services.db.ping()
    return services


def _require_redis(url: str) -> None:
    """Raises ConfigError when the Redis at `url` does not answer (before anything is built)."""
    redis = connect_redis(url)
    try:
        check_redis(redis, url)
    finally:
        redis.close()


def _jobs() -> Jobs:
    """The job queue alone (no database, no rules), its Redis answering."""
    url = load_settings().redis_url
    if not url:
        raise ConfigError("REDIS_URL is not set: set it to the Redis of `opsbot worker` "
                          "(`opsbot run`'s embedded Redis lives only while it runs)")
    redis = connect_redis(url)
    check_redis(redis, url)
    return Jobs(redis)


def run(
    host: Annotated[str, typer.Option(help="Address of the web app.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port of the web app (default $PORT or 8000).")] = 0,
    workers: Annotated[int, typer.Option(help="How many worker processes.")] = 1,
    rules: Annotated[Path | None, typer.Option(
        "--rules", help="The rules file (default $RULES_PATH or rules.yaml).")] = None,
) -> None:
    """Everything locally: migrate, embedded Redis (when REDIS_URL is unset), web + worker."""
    from bot.core.supervisor import run_all

    if rules is not None:  # the web and worker processes read it from the environment
        os.environ["RULES_PATH"] = str(rules.resolve())
    settings = load_settings()
    say_database(settings)
    say_channels(settings)
    require_rules(settings.rules_path)
    if settings.redis_url:  # else run_all starts an embedded one
        _require_redis(settings.redis_url)
    port = port or int(os.environ.get("PORT", "8000"))
    raise typer.Exit(run_all(settings, host=host, port=port, workers=workers))


def say_channels(settings: Settings) -> None:
    """Which channels are on, or that none is (then nothing reaches opsbot or its agents)."""
    on = [name for name, enabled in (("WhatsApp", settings.whatsapp_enabled),
                                     ("Slack", settings.slack_enabled),
                                     ("Telegram", settings.telegram_enabled)) if enabled]
    if on:
        typer.echo(f"opsbot: channels on: {', '.join(on)}")
    else:
        typer.echo("opsbot: no channel is configured: nothing will arrive or be sent; set "
                   "WHATSAPP_TOKEN, SLACK_BOT_TOKEN or TELEGRAM_BOT_TOKEN with their secrets "
                   "(README: Configuration)")


def serve(
    host: Annotated[str, typer.Option(help="Address to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to bind (default $PORT or 8000).")] = 0,
    no_migrate: NoMigrate = False,
) -> None:
    """The web app (every webhook, /healthz, /readyz); migrates the database first."""
    import uvicorn

    from bot.app import create_app

    settings = load_settings()
    say_database(settings)
    require_rules(settings.rules_path)
    if not no_migrate:
        open_database(settings).dispose()
    port = port or int(os.environ.get("PORT", "8000"))
    configure_logging(settings.secrets(), settings.log_level)
    app = create_app(settings)
    freeze_heap()
    # log_config=None: uvicorn's loggers go through the one set-up above (and its redaction)
    uvicorn.run(app, host=host, port=port, log_config=None,
                log_level=settings.log_level.lower(),
                timeout_graceful_shutdown=tunables.WEB_SHUTDOWN_GRACE)


def worker(
    burst: Annotated[bool, typer.Option("--burst", help="Quit when the queue is empty.")] = False,
    no_migrate: NoMigrate = False,
) -> None:
    """An RQ worker with the scheduler and the sweeper; SIGTERM finishes the current job."""
    from bot.worker.entrypoints import install_services
    from bot.worker.process import run_worker

    settings = load_settings()
    say_database(settings)
    if settings.redis_url:  # else build_services says it is not set
        _require_redis(settings.redis_url)
    services = _services(settings, migrate=not no_migrate, for_worker=True)
    configure_logging(services.settings.secrets(), services.settings.log_level)
    install_services(services)
    freeze_heap()
    try:
        run_worker(services, burst=burst)
    finally:
        install_services(None)
        services.close()


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Create or migrate the database schema to the latest version."""
    settings = load_settings()
    open_database(settings).dispose()
    typer.echo(f"database {settings.database_label} is up to date")


@events_app.command("failed")
def events_failed(as_json: JsonFlag = False) -> None:
    """Inbound events that failed processing, with the reason."""
    database = open_existing_database(load_settings(), migrate=False)
    with database.transaction(readonly=True) as session:
        rows = [
            {"id": e.id, "provider": e.provider, "provider_event_id": e.provider_event_id,
             "kind": e.kind, "received_at": e.received_at, "attempts": e.attempts,
             "error": e.error}
            for e in list_failed_events(session)
        ]  # fmt: skip
    if as_json:
        print_json(rows)
        return
    for row in rows:
        typer.echo(
            f"{row['id']:>6}  {row['received_at']:%Y-%m-%d %H:%M:%S}  {row['provider']:<8} "
            f"{row['kind']:<10} attempts={row['attempts']}  {row['error'] or ''}"
        )
    if not rows:
        typer.echo("no failed events")


@events_app.command("retry")
def events_retry(
    event_id: Annotated[int | None, typer.Argument(help="The event id.")] = None,
    all_: Annotated[bool, typer.Option("--all", help="Every failed event.")] = False,
) -> None:
    """Set failed events back to pending and dispatch them again."""
    if (event_id is None) == (not all_):
        typer.echo("opsbot: give an event ID or --all", err=True)
        raise typer.Exit(2)
    from bot.worker.drains import request_drain

    settings = load_settings()
    require_database(settings)
    services = _services(settings)
    event_ids = None if all_ else [event_id]
    with services.db.transaction() as session:
        count = len(retry_events(session, event_ids=event_ids))
        unretryable = list_unretryable_events(session, event_ids=event_ids)
        kept = [(e.provider, e.id) for e in unretryable]
    request_drain(services)
    services.close()
    _say_not_retried(kept)
    typer.echo(f"{count} event(s) queued again")
    if event_id is not None and not count:
        raise typer.Exit(1)


def _say_not_retried(kept: list[tuple[str, int]]) -> None:
    """One line per provider whose failed events `retry_events` left failed."""
    for provider in sorted({p for p, _ in kept}):
        ids = ", ".join(str(i) for p, i in kept if p == provider)
        typer.echo(f"opsbot: cannot retry {provider} updates: only WhatsApp events are "
                   f"processed again, and an agent's command or button is not replayed later "
                   f"(the agent sends it again); still failed: {ids}", err=True)


@jobs_app.command("failed")
def jobs_failed(as_json: JsonFlag = False) -> None:
    """Background jobs that failed for good, with their error."""
    jobs = _jobs()
    rows = [asdict(job) for job in list_failed_jobs(jobs)]
    jobs.redis.close()
    if as_json:
        print_json(rows)
        return
    for row in rows:
        typer.echo(f"{row['id']}  {row['func']}{tuple(row['args'])}  ended {row['ended_at']}")
        typer.echo(f"    {row['error']}")
    if not rows:
        typer.echo("no failed jobs")


@jobs_app.command("requeue")
def jobs_requeue(
    job_id: Annotated[str | None, typer.Argument(help="The job id.")] = None,
    all_: Annotated[bool, typer.Option("--all", help="Every failed job.")] = False,
) -> None:
    """Put failed jobs back on the queue."""
    if (job_id is None) == (not all_):
        typer.echo("opsbot: give a job ID or --all", err=True)
        raise typer.Exit(2)
    jobs = _jobs()
    registry = FailedJobRegistry(queue=jobs.queue)
    ids = [job_id] if job_id else registry.get_job_ids()
    done = 0
    for one in ids:
        try:
            requeue_failed_job(jobs, job_id=one)
            done += 1
        except Exception as exc:  # unknown id or not failed: say so, go on
            typer.echo(f"{one}: {exc.__class__.__name__} {exc}", err=True)
    jobs.redis.close()
    typer.echo(f"{done} job(s) requeued")
    if job_id and not done:
        raise typer.Exit(1)
