"""A wrong configuration gives one line that says what to do, exit code 2, never a traceback;
and every command says, or refuses to guess, which database it uses (issue 15 items 9, 10)."""

import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bot.cli import app
from sandbox.stack import free_port
from tests.bot.workers_support import write_rules

CLOSED = free_port()  # nothing listens there
POSTGRES_DOWN = f"postgresql://opsbot:pw@127.0.0.1:{CLOSED}/opsbot"
REDIS_DOWN = f"redis://127.0.0.1:{CLOSED}/0"


def opsbot(folder: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
    """`python -m bot ARGS` in `folder`, with only `env` of opsbot's own settings."""
    clean = {k: v for k, v in os.environ.items()
             if k not in ("DATABASE_URL", "REDIS_URL", "RULES_PATH") and not k.startswith(
                 ("WHATSAPP_", "SLACK_", "TELEGRAM_"))}
    return subprocess.run([sys.executable, "-m", "bot", *args], cwd=folder,
                          env={**clean, **env}, capture_output=True, text=True, timeout=60)


CASES = [
    (["tasks", "list"], {"DATABASE_URL": "foo"}, False,
     "DATABASE_URL is not a URL (no scheme://): use a PostgreSQL URL"),
    (["tasks", "list"], {"DATABASE_URL": "mysql://ops@localhost/ops"}, False,
     "DATABASE_URL mysql:// is not supported"),
    (["tasks", "list"], {"DATABASE_URL": POSTGRES_DOWN}, False,
     "cannot open the database postgresql+psycopg://opsbot:***@127.0.0.1"),
    (["serve"], {"DATABASE_URL": POSTGRES_DOWN}, True, "start it, or fix DATABASE_URL"),
    (["jobs", "failed"], {"REDIS_URL": REDIS_DOWN}, False,
     f"Redis at {REDIS_DOWN} does not answer"),
    (["worker", "--burst"], {"REDIS_URL": REDIS_DOWN}, True, "start it, or fix REDIS_URL"),
    (["run"], {"REDIS_URL": REDIS_DOWN}, True, "start it, or fix REDIS_URL"),
    (["worker"], {"REDIS_URL": "notaurl"}, True, "REDIS_URL is not a URL"),
    (["jobs", "failed"], {"REDIS_URL": "notaurl"}, False, "REDIS_URL is not a URL"),
    (["jobs", "failed"], {}, False, "REDIS_URL is not set"),
    (["run"], {}, False, "no rules file at "),
    (["tasks", "list"], {}, False, "no database at "),
    (["events", "failed"], {}, False, "no database at "),
    (["report"], {}, False, "no database at "),
]


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory) -> list[tuple[Path, subprocess.CompletedProcess]]:
    """Every case's folder and `opsbot` run, the runs side by side (each is a fresh process
    that spends a second or so importing)."""
    folders = [tmp_path_factory.mktemp("case") for _ in CASES]  # here: mktemp is not for threads
    for folder, (_args, _env, with_rules, _says) in zip(folders, CASES, strict=True):
        if with_rules:
            write_rules(folder)

    def run(folder: Path, case: tuple) -> tuple[Path, subprocess.CompletedProcess]:
        args, env, _with_rules, _says = case
        return folder, opsbot(folder, *args, **env)

    with ThreadPoolExecutor(4) as pool:
        return list(pool.map(run, folders, CASES))


# ids without the port of CLOSED: pytest-xdist's workers must collect the same names
@pytest.mark.parametrize("index", range(len(CASES)),
                         ids=[f"{i}-{'-'.join(c[0])}" for i, c in enumerate(CASES)])
def test_a_wrong_setting_is_one_line_and_exit_2(outcomes, index):
    folder, result = outcomes[index]
    says = CASES[index][3]
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    [line] = result.stderr.splitlines()
    assert line.startswith("opsbot: ") and says in line, line
    assert "pw@" not in result.stdout + result.stderr  # the password never shows
    assert not (folder / "var").exists()  # nothing created on the way


def test_jobs_failed_needs_no_rules_file_nor_database(tmp_path, redis_url):
    result = opsbot(tmp_path, "jobs", "failed", REDIS_URL=redis_url)
    assert (result.returncode, result.stdout.strip()) == (0, "no failed jobs"), result.stderr
    assert not (tmp_path / "var").exists()


def test_the_first_line_names_the_database(tmp_path):
    result = opsbot(tmp_path, "worker", "--burst", REDIS_URL=REDIS_DOWN)
    database = tmp_path.resolve() / "var" / "opsbot.db"
    assert result.stdout.splitlines()[0] == (
        f"opsbot: database SQLite at {database} (DATABASE_URL is not set)")


@pytest.mark.parametrize("command", [[], ["run"], ["serve"], ["worker"]])
def test_help_says_where_the_data_is(command):
    result = CliRunner().invoke(app, [*command, "--help"])
    text = " ".join(result.output.replace("│", " ").split())
    assert "DATABASE_URL, else SQLite at var/opsbot.db under the folder it runs in" in text
