"""What every `opsbot` command shares: reading the settings, opening the data, printing JSON,
and the one place that turns a wrong configuration into one line and exit code 2."""

import json
from pathlib import Path
from typing import Annotated, Any

import click
import typer
from typer.core import TyperGroup

from bot.core.bootstrap import database_errors_explained, open_database
from bot.core.settings import DEFAULT_DATABASE, ConfigError, Settings
from rules import RulesError, load_rules
from store.crypto import SealBroken
from store.db import Database
from store.keys import KeysError

JsonFlag = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]


class OpsbotGroup(TyperGroup):
    """The `opsbot` command group: a ConfigError (a setting that cannot work, a database or
    Redis that does not answer), a RulesError, a KeysError (a master key that is not listed)
    or a SealBroken (a sealed value changed in the database) raised by any command is told in
    one line (rules: one `PATH:LINE:COL: message` line per problem) on stderr, exit code 2; a
    person never sees a traceback for them."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (ConfigError, RulesError, KeysError, SealBroken) as exc:
            typer.echo(str(exc) if isinstance(exc, RulesError) else f"opsbot: {exc}", err=True)
            raise typer.Exit(2) from exc


def load_settings() -> Settings:
    """The settings from the environment and .env; raises ConfigError when they are invalid."""
    return Settings()


def require_rules(path: Path) -> None:
    """Raises ConfigError when the rules file is missing, RulesError when it is invalid."""
    if not path.is_file():
        raise ConfigError(f"no rules file at {path.resolve()}: write one (README: rules.yaml), "
                          f"or give its path with --rules PATH or RULES_PATH")
    load_rules(path)


def open_existing_database(settings: Settings, *, migrate: bool = True) -> Database:
    """The database of a command that looks at data. It is never created here: in a folder
    without var/opsbot.db (and no DATABASE_URL) this raises ConfigError rather than showing
    a new, empty database."""
    require_database(settings)
    database = open_database(settings, migrate=migrate)
    with database_errors_explained(settings):
        database.ping()
    return database


def require_database(settings: Settings) -> None:
    """Raises ConfigError when the default SQLite database does not exist in this folder."""
    if settings.uses_default_database and not DEFAULT_DATABASE.is_file():
        raise ConfigError(f"no database at {DEFAULT_DATABASE.resolve()}: run opsbot in the "
                          f"folder where `opsbot run` runs, or set DATABASE_URL")


def say_database(settings: Settings) -> None:
    """The first line of a command that runs opsbot: which database it uses."""
    typer.echo(f"opsbot: database {settings.database_label}")


def print_json(value: Any) -> None:
    typer.echo(json.dumps(value, indent=2, ensure_ascii=False, default=str))
