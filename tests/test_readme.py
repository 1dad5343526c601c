"""The README works as written.

Each `python manage.py` line of its Commands section runs, with real values for its
placeholders, in a fresh environment set up as the README says: the `.env` file that
`make run` writes (by the Makefile's own rule), the venv active, a new SQLite file, after
`migrate` and `demo` as `make run` does. The lines are read from the README, so a command
or an option the README names and the code lacks fails here.

Every line runs through manage.py itself, with its own sys.argv, in the working directory
and environment the reader has. They share one Python process: a start costs seconds.
"""

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from unittest import mock

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.core.management import get_commands, load_command_class

from feedback.settings import dotenv_load, dotenv_read

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
SLUG = "readme-check"
SUPERUSER_PASSWORD = "a-long-admin-password-for-the-readme-check"

# Concrete runs of each command the README lists: the README's own line (placeholders
# filled in) plus these extra arguments, once per entry. A command added to or dropped
# from the README fails the test until it is added here (or dropped) as well.
RUNS = {
    "createproject": [["--title", "README check", "--overlap", "2", "--guidelines", "{guidelines}"]],
    "addmember": [["--role", "manager"]],
    "apitoken": [[]],
    "import_items": [["--dry-run"], []],
    "export_preferences": [["--format", "parquet", "--test-size", "0.5", "--seed", "1"]],
    "project_stats": [[], ["--json"]],
    "expire_leases": [[]],
    "demo": [["--address", "127.0.0.1:8080"]],
    "createsuperuser": [["--noinput", "--username", "admin", "--email", "admin@example.org"]],
}
ITEMS = [
    {
        "id": "q1",
        "prompt": "What is 2 + 2?",
        "responses": [{"model": "m1", "content": "4"}, {"model": "m2", "content": "5"}],
    },
    {"id": "q2", "prompt": [{"role": "user", "content": "Hi!"}], "responses": ["Hello! How can I help?", "What?"]},
]

# Runs every line through manage.py's own entry point, as `python manage.py ...` would.
DRIVER = r"""
import contextlib, io, json, runpy, sys, traceback

results = []
for argv in json.loads(sys.argv[1]):
    out, err, code = io.StringIO(), io.StringIO(), 0
    sys.argv = ["manage.py", *argv]
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            runpy.run_path("manage.py", run_name="__main__")
        except SystemExit as exit:
            code = exit.code if isinstance(exit.code, int) else int(exit.code is not None)
        except Exception:
            traceback.print_exc()
            code = 1
    results.append({"argv": argv, "code": code, "out": out.getvalue(), "err": err.getvalue()})
    if code:
        break
print(json.dumps(results))
"""


def readme_command_lines() -> list[list[str]]:
    """The `python manage.py` lines of the README's Commands section, as tokens, comments dropped."""
    section = README.read_text(encoding="utf-8").split("\n## Commands\n", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```bash\n(.*?)```", section, re.DOTALL)
    assert block, "README's Commands section has no bash block"
    lines = block.group(1).replace("\\\n", " ").splitlines()
    return [shlex.split(line, comments=True) for line in lines if line.startswith("python manage.py ")]


def required_part(tokens: list[str]) -> list[str]:
    """The tokens outside [optional] groups, after `python manage.py`."""
    required, depth = [], 0
    for token in tokens[2:]:
        depth += token.count("[")
        if depth == 0:
            required.append(token)
        depth -= token.count("]")
    return required


def fill(tokens: list[str], values: dict[str, str]) -> list[str]:
    """Placeholders (SLUG, PATH, ...) replaced with real values."""
    filled = []
    for token in tokens:
        if re.fullmatch(r"[A-Z][A-Z_]*", token):
            assert token in values, f"README placeholder {token} has no value in tests/test_readme.py"
            token = values[token]
        filled.append(token.format(**values))
    return filled


def make_dotenv(path: Path) -> subprocess.CompletedProcess:
    """The development settings file, written by the Makefile rule `make run` uses."""
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    return subprocess.run(
        ["make", "--no-print-directory", "-C", str(ROOT), f"DOTENV_PATH={path}", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )


def fresh_environment(folder: Path) -> dict[str, str]:
    """A developer's shell: none of the app's settings, only the ones the README sets up."""
    kept = {"PATH", "HOME", "LANG", "LC_ALL", "LC_CTYPE", "TMPDIR", "TERM"}
    base = {key: value for key, value in os.environ.items() if key in kept or key.startswith("HF_")}
    return {
        **base,
        "DOTENV_PATH": str(folder / ".env"),
        "SQLITE_PATH": str(folder / "db.sqlite3"),
        # Kept out of the work tree; the README's lines do not depend on them.
        "LABELING_JOBS_DIR": str(folder / "jobs"),
        "CACHE_DIR": str(folder / "cache"),
        "DJANGO_SUPERUSER_PASSWORD": SUPERUSER_PASSWORD,
    }


def run_in_shell(argvs: list[list[str]], environment: dict[str, str]) -> list[dict]:
    """Run manage.py lines in the venv, activated as the README says, from the repository's root."""
    activate = Path(sys.prefix) / "bin" / "activate"
    driver = ["python", "-c", DRIVER, json.dumps(argvs)]
    if activate.is_file():
        command = ["bash", "-c", f". {shlex.quote(str(activate))} && exec {shlex.join(driver)}"]
    else:  # the tests run outside a venv: the same interpreter, without activation
        command = [sys.executable, *driver[1:]]
    result = subprocess.run(command, cwd=ROOT, env=environment, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.splitlines()[-1])


def test_every_manage_py_line_of_the_readme_runs_as_written(tmp_path):
    lines = readme_command_lines()
    names = [tokens[2] for tokens in lines]
    assert sorted(names) == sorted(RUNS), "README's Commands section and RUNS in this test name different commands"
    make_dotenv(tmp_path / ".env")
    items = tmp_path / "items.jsonl"
    items.write_text("".join(json.dumps(row) + "\n" for row in ITEMS), encoding="utf-8")
    (tmp_path / "guidelines.md").write_text("Prefer the **correct** answer.", encoding="utf-8")
    values = {
        "SLUG": SLUG,
        "USERNAME": "alice",  # a demo account
        "PATH": str(items),
        "DIR": str(tmp_path / "export"),
        "guidelines": str(tmp_path / "guidelines.md"),
    }
    argvs = [["migrate", "--noinput"], ["demo"]]  # what `make run` does first
    argvs += [
        fill(required_part(tokens), values) + fill(extra, values) for tokens in lines for extra in RUNS[tokens[2]]
    ]

    results = run_in_shell(argvs, fresh_environment(tmp_path))

    for result in results:
        assert result["code"] == 0, f"python manage.py {shlex.join(result['argv'])}\n{result['out']}{result['err']}"
    assert len(results) == len(argvs)
    output = {result["argv"][0]: result["out"] for result in results}
    assert "imported 2 items" in output["import_items"]
    assert "log in at http://127.0.0.1:8080/" in output["demo"]
    assert "Superuser created successfully." in output["createsuperuser"]
    assert (tmp_path / "export" / "README.md").is_file()


def test_the_options_the_readme_lists_are_the_commands_own():
    commands = get_commands()
    for tokens in readme_command_lines():
        name = tokens[2]
        assert name in commands, f"README names `manage.py {name}`, which is not a command"
        help_text = load_command_class(commands[name], name).create_parser("manage.py", name).format_help()
        for position, token in enumerate(tokens):
            option = token.strip("[]")
            if not option.startswith("--"):
                continue
            assert re.search(rf"{re.escape(option)}\b", help_text), f"README: `{name} {option}` is not an option"
            following = tokens[position + 1].strip("[]") if position + 1 < len(tokens) else ""
            if "|" in following:  # the README lists the choices: they are the command's
                shown = re.search(rf"{re.escape(option)} \{{([^}}]*)\}}", help_text)
                assert shown, f"README lists choices for `{name} {option}`, which takes none"
                assert sorted(following.split("|")) == sorted(shown.group(1).split(",")), f"{name} {option}"


# -- the development defaults -------------------------------------------------------


def test_make_writes_the_development_settings_once(tmp_path):
    path = tmp_path / ".env"
    make_dotenv(path)
    first = path.read_text()

    make_dotenv(path)

    assert path.read_text() == first  # never overwritten
    values = dotenv_read(path)
    assert values["DEBUG"] == "1" and len(values["SECRET_KEY"]) >= 50
    assert path.stat().st_mode & 0o077 == 0  # the owner's only
    other = tmp_path / "other.env"
    make_dotenv(other)
    assert dotenv_read(other)["SECRET_KEY"] != values["SECRET_KEY"]  # a fresh key for each file


@pytest.mark.skipif(not (ROOT / ".git").exists() or shutil.which("git") is None, reason="not a git work tree")
def test_the_development_settings_are_git_ignored():
    result = subprocess.run(["git", "check-ignore", "-q", ".env"], cwd=ROOT, check=False)
    assert result.returncode == 0


@pytest.fixture
def environment(tmp_path):
    """os.environ as a test leaves it is restored, whatever dotenv_load added."""
    with mock.patch.dict(os.environ, {"DOTENV_PATH": str(tmp_path / ".env")}):
        for name in ("DEBUG", "SECRET_KEY", "ALLOWED_HOSTS", "LOG_LEVEL"):
            os.environ.pop(name, None)
        yield tmp_path / ".env"


def test_dotenv_fills_in_what_the_environment_leaves_out(environment):
    environment.write_text('# development\nDEBUG=1\n\nexport SECRET_KEY="from-the-file"\nLOG_LEVEL=INFO\n')
    os.environ["LOG_LEVEL"] = "ERROR"

    dotenv_load()

    assert (os.environ["DEBUG"], os.environ["SECRET_KEY"]) == ("1", "from-the-file")
    assert os.environ["LOG_LEVEL"] == "ERROR"  # the environment wins


def test_a_process_told_debug_off_ignores_the_dotenv_file(environment):
    environment.write_text("DEBUG=1\nSECRET_KEY=development-only\n")
    os.environ["DEBUG"] = "0"

    dotenv_load()

    assert "SECRET_KEY" not in os.environ


def test_a_dotenv_file_without_debug_is_ignored(environment):
    environment.write_text("SECRET_KEY=development-only\n")

    dotenv_load()

    assert "SECRET_KEY" not in os.environ and "DEBUG" not in os.environ


def test_a_malformed_dotenv_line_names_the_file_and_line(environment):
    environment.write_text("DEBUG=1\nnot a setting\n")

    with pytest.raises(ImproperlyConfigured, match=r"\.env, line 2: 'not a setting' is not KEY=VALUE"):
        dotenv_load()


def test_with_debug_off_the_app_refuses_to_start_despite_a_dotenv_file(tmp_path):
    make_dotenv(tmp_path / ".env")
    environment = {**fresh_environment(tmp_path), "DEBUG": "0", "ALLOWED_HOSTS": "label.example.org"}

    result = subprocess.run(
        [sys.executable, "manage.py", "check"], cwd=ROOT, env=environment, capture_output=True, text=True, timeout=120
    )

    assert result.returncode != 0
    assert "SECRET_KEY must be set" in result.stderr
