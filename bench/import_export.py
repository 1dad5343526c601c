"""Import and export throughput and peak memory, through the real management commands.

Import: flat pairs (`id`, `prompt`, `response_a`, `response_b`, `model_a`, `model_b`;
responses of 200-600 characters) generated deterministically into a temp folder as
JSONL and as Parquet (pyarrow, row groups of 100,000 rows), imported with
`manage.py import_items` into a fresh migrated SQLite file (SQLITE_PATH) and a fresh
PostgreSQL database (`feedback_io_bench`, created and dropped here). Export:
the same judgments seeded with SQL (`INSERT ... SELECT`, overlap 1, every assignment
submitted) into a SQLite file and into PostgreSQL, and written with
`manage.py export_preferences SLUG --out DIR` (hf format, default config).

Every command runs in its own process; the figures are its wall time (Django start-up
included), its CPU time, its peak RSS (VmHWM polled from /proc/<pid>/status) and its
largest anonymous memory (RssAnon: without pages of memory-mapped files), and the growth
of both over a 1,000-row run of the same kind. The PostgreSQL server's own memory is not
counted. A run that passes 15 minutes is killed and reported as "over 15 min". Load
average and machine CPU use are recorded around every run, because other work may share
the machine. Exports run first, then imports by size (so that a cut-short run still has
every kind). Results go to bench/results/import_export.json and .md (rewritten after
every run, so an interrupted run keeps what finished).

    .venv/bin/python bench/import_export.py [--sizes 100000,1000000] [--quick]
        [--skip-sqlite] [--skip-postgres] [--budget-minutes 35] [--profile | --profile-only]

`--quick` runs 10,000 and 100,000 rows; `--profile` adds cProfile summaries of a
100,000-row import (JSONL, both databases) and a 100,000-judgment export after the
measurements (without it, the profiles of the last results are kept); `--profile-only`
re-makes just those summaries and keeps the measured runs of the last results;
`--budget-minutes` starts no run after that many minutes and stops the one running then
(reported as such, with the rows it had read).
"""

import argparse
import contextlib
import hashlib
import importlib.metadata
import json
import os
import platform
import pstats
import random
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
PYTHON = sys.executable
PG_SERVER = "postgres://postgres@127.0.0.1:5432"
PG_DB = "feedback_io_bench"
OUT = "import_export"  # bench/results/<OUT>.json and .md
SLUG = "bench"
BASELINE_ROWS = 1_000
TIMEOUT_SECONDS = 15 * 60
PARQUET_ROW_GROUP = 100_000
PROFILE_ROWS = 100_000
SEED = 20250
TARGET_IMPORT_PER_S = 50_000
TARGET_EXPORT_PER_S = 100_000
TARGET_GROWTH_MB = 500
VERDICTS = {True: "met", False: "NOT met", None: "not measured"}
ANNOTATORS = 20
SCRATCH: Path | None = None  # the run's temp folder: Django's file cache goes there, not to var/cache
DEADLINE: float | None = None  # perf_counter() after which no run starts and a running one is stopped
STATS_FIRST = False  # compute and store the project's stats before each timed export (untimed)
KEEP_DB = False  # --keep-db: reuse the export projects already seeded in --db-name, and keep the database
RESPONSE_POOL = 2**17
PROMPT_POOL = 2**15


# --------------------------------------------------------------------------- machine


def machine_cpu_seconds() -> tuple[float, float]:
    """(busy, total) CPU jiffies of the whole machine since boot, all cores."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = values[3] + (values[4] if len(values) > 4 else 0)
    return sum(values) - idle, sum(values)


def busy_fraction(seconds: float = 0.5) -> float:
    b0, t0 = machine_cpu_seconds()
    time.sleep(seconds)
    b1, t1 = machine_cpu_seconds()
    return round((b1 - b0) / max(t1 - t0, 1), 3)


def top_processes(n: int = 5) -> list[str]:
    with contextlib.suppress(OSError, subprocess.CalledProcessError):
        out = subprocess.run(
            ["ps", "-eo", "pcpu,etime,args", "--sort=-pcpu"], capture_output=True, text=True, check=True
        ).stdout
        return [line.strip()[:110] for line in out.splitlines()[1 : n + 1]]
    return []


def package_version(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def describe_machine(postgres: bool) -> dict:
    cpu_model = mem_gb = None
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu_model = line.split(":", 1)[1].strip()
            break
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            mem_gb = round(int(line.split()[1]) / 1024 / 1024, 1)
            break
    machine = {
        "cpu_model": cpu_model,
        "cores": os.cpu_count(),
        "cores_usable": len(os.sched_getaffinity(0)),
        "ram_gb": mem_gb,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "django": package_version("Django"),
        "datasets": package_version("datasets"),
        "pyarrow": package_version("pyarrow"),
        "psycopg": package_version("psycopg"),
        "sqlite": sqlite3.sqlite_version,
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
        "cpu_busy_fraction_at_start": busy_fraction(1.0),
        "top_processes_at_start": top_processes(),
    }
    with contextlib.suppress(subprocess.CalledProcessError):
        machine["git_commit"] = subprocess.run(
            ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
    if postgres:
        with pg_admin() as conn:
            machine["postgresql"] = conn.execute("SELECT version()").fetchone()[0].split(" on ")[0]
            machine["postgresql_settings"] = {
                name: conn.execute("SELECT current_setting(%s)", (name,)).fetchone()[0]
                for name in ("shared_buffers", "work_mem", "synchronous_commit", "fsync", "max_wal_size")
            }
    return machine


def machine_line(machine: dict) -> str:
    pg = f", {machine['postgresql']}" if machine.get("postgresql") else ""
    return (
        f"{machine['cpu_model']}, {machine['cores']} cores, {machine['ram_gb']} GB RAM, Linux {machine['kernel']}; "
        f"Python {machine['python']}, Django {machine['django']}, datasets {machine['datasets']}, "
        f"pyarrow {machine['pyarrow']}, SQLite {machine['sqlite']}{pg}"
    )


# --------------------------------------------------------------------------- data


def sentence_pool(rng: random.Random, size: int = 4096) -> list[str]:
    consonants, vowels = "bcdfghjklmnprstvwz", "aeiou"
    words = ["the", "a", "of", "to", "and", "is", "in", "that", "it", "for", "with", "as", "on", "this", "by"]
    words += [
        "".join(rng.choice(consonants) + rng.choice(vowels) for _ in range(rng.randint(1, 4))) for _ in range(900)
    ]
    words += ["café", "naïve", "über", "日本語", "données", "`code`", "**bold**", "x = 1", "→"]
    pool = []
    for _ in range(size):
        sentence = " ".join(rng.choices(words, k=rng.randint(5, 18)))
        pool.append(sentence[0].upper() + sentence[1:] + rng.choice([".", ".", ".", "!", "?", ":\n"]))
    return pool


def text_of(rng: random.Random, pool: list[str], low: int, high: int) -> str:
    wanted = rng.randint(low, high)
    parts, length = [], 0
    for sentence in rng.choices(pool, k=24):
        parts.append(sentence)
        length += len(sentence) + 1
        if length >= wanted:
            break
    return " ".join(parts)


def generate(folder: Path, rows: int) -> dict[str, Path]:
    """Write `rows` flat pairs as JSONL and Parquet; the same seed gives the same rows (a prefix of larger files).

    Texts come from pools (131,072 responses of 200-600 characters, 32,768 prompt bodies) so
    that a million rows take seconds to write; every row has its own id and prompt number,
    and its two responses always differ.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = random.Random(SEED)
    sentences = sentence_pool(rng)
    responses = [text_of(rng, sentences, 200, 600) for _ in range(RESPONSE_POOL)]
    prompts = [text_of(rng, sentences, 40, 300) for _ in range(PROMPT_POOL)]
    models = [f"model-{letter}" for letter in "abcdefgh"]
    jsonl, parquet = folder / f"pairs-{rows}.jsonl", folder / f"pairs-{rows}.parquet"
    columns = ("id", "prompt", "response_a", "response_b", "model_a", "model_b")
    schema = pa.schema([(name, pa.string()) for name in columns])
    chunk: dict[str, list[str]] = {name: [] for name in columns}
    randrange = rng.randrange
    with jsonl.open("w", encoding="utf-8") as out, pq.ParquetWriter(parquet, schema) as writer:
        for n in range(1, rows + 1):
            a = randrange(RESPONSE_POOL)
            b = (a + 1 + randrange(RESPONSE_POOL - 1)) % RESPONSE_POOL
            m = randrange(len(models))
            row = {
                "id": f"r{n}",
                "prompt": f"Question {n}: {prompts[randrange(PROMPT_POOL)]}",
                "response_a": responses[a],
                "response_b": responses[b],
                "model_a": models[m],
                "model_b": models[(m + 1 + randrange(len(models) - 1)) % len(models)],
            }
            out.write(json.dumps(row, ensure_ascii=False) + "\n")
            for name in columns:
                chunk[name].append(row[name])
            if len(chunk["id"]) == PARQUET_ROW_GROUP or n == rows:
                writer.write_table(pa.table(chunk, schema=schema))
                chunk = {name: [] for name in columns}
    return {"jsonl": jsonl, "parquet": parquet}


# --------------------------------------------------------------------------- processes


def django_env(*, sqlite_path: Path | None = None, database_url: str | None = None) -> dict:
    env = {key: value for key, value in os.environ.items() if key not in ("DATABASE_URL", "SQLITE_PATH")}
    env.update(DEBUG="0", SECRET_KEY="bench", ALLOWED_HOSTS="localhost", PYTHONDONTWRITEBYTECODE="1")
    env.pop("DJANGO_SETTINGS_MODULE", None)
    if SCRATCH is not None:
        env["CACHE_DIR"] = str(SCRATCH / "cache")
    if sqlite_path is not None:
        env["SQLITE_PATH"] = str(sqlite_path)
    if database_url is not None:
        env["DATABASE_URL"] = database_url
    return env


def manage(env: dict, *command: str) -> str:
    result = subprocess.run(
        [PYTHON, str(ROOT / "manage.py"), *command], cwd=ROOT, env=env, capture_output=True, text=True
    )
    if result.returncode:
        raise RuntimeError(f"manage.py {' '.join(command)} failed:\n{result.stdout}\n{result.stderr}")
    return result.stdout


def memory_kb(pid: int) -> tuple[int, int]:
    """(VmHWM, RssAnon) of a live process in kB: its peak resident memory, and its anonymous memory now."""
    hwm = anon = 0
    with contextlib.suppress(OSError, ValueError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                hwm = int(line.split()[1])
            elif line.startswith("RssAnon:"):
                anon = int(line.split()[1])
    return hwm, anon


def helpers(pid: int) -> list[int]:
    """Live descendants of `pid` (an import's forkserver and its parsing process), by walking /proc."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, ValueError, IndexError):
                parents[int(entry.name)] = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
    found, frontier = [], [pid]
    while frontier:
        children = [child for child, parent in parents.items() if parent in frontier]
        found += children
        frontier = children
    return found


def helper_usage(pid: int) -> tuple[int, int, float]:
    """(VmRSS kB, RssAnon kB, own CPU seconds) of a live process; zeros once it is gone."""
    rss = anon = 0
    cpu = 0.0
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1])
            elif line.startswith("RssAnon:"):
                anon = int(line.split()[1])
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        cpu = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return rss, anon, cpu


def backend_cpu_seconds(admin, database: str) -> dict[int, float]:
    """CPU seconds so far of each PostgreSQL backend serving `database` (other than `admin`'s own)."""
    pids = admin.execute(
        "SELECT pid FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()", (database,)
    ).fetchall()
    seconds = {}
    for (pid,) in pids:
        with contextlib.suppress(OSError, ValueError, IndexError):
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            seconds[pid] = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return seconds


def measured(command: list[str], env: dict, logs: Path, server_db: str | None = None) -> dict:
    """Run a command alone in a child process; its wall time, CPU time and peak RSS.

    The peak is VmHWM (the high-water mark of the process's resident memory since its
    exec) polled every 20 ms until it exits; beside it the largest RssAnon seen (anonymous
    memory: the heap, without pages of memory-mapped files such as datasets' Arrow cache,
    which the kernel can drop). wait4's ru_maxrss is not used: Linux folds
    the forking parent's pre-exec high-water mark into it, so every child would report
    at least this script's own peak.

    A large import reads its file in a parsing process, forked by multiprocessing's
    forkserver (both descendants of the command): their resident and anonymous memory
    are added to the command's at each poll (an upper bound: pages they share with the
    forkserver count twice) and their CPU time, as last seen, to its CPU time.
    """
    load = [round(x, 2) for x in os.getloadavg()]
    busy0, total0 = machine_cpu_seconds()
    stdout, stderr = logs.with_suffix(".out"), logs.with_suffix(".err")
    with stdout.open("w") as out, stderr.open("w") as err:
        started = time.perf_counter()
        process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=out, stderr=err)
    hwm = anon = 0
    timed_out = stopped = False
    server: dict[int, float] = {}  # the latest CPU reading of each backend serving `server_db` (local server only)
    helper_cpu: dict[int, float] = {}  # the latest CPU reading of each descendant of the command
    admin = pg_admin() if server_db else None
    try:
        while True:
            pid, status, usage = os.wait4(process.pid, os.WNOHANG)
            if pid:
                break
            if admin is not None:
                server.update(backend_cpu_seconds(admin, server_db))
            now_hwm, now_anon = memory_kb(process.pid)
            for helper in helpers(process.pid):
                rss, helper_anon, cpu = helper_usage(helper)
                now_hwm, now_anon = now_hwm + rss, now_anon + helper_anon
                if cpu:
                    helper_cpu[helper] = cpu
            hwm, anon = max(hwm, now_hwm), max(anon, now_anon)
            now = time.perf_counter()
            if now - started > TIMEOUT_SECONDS or (DEADLINE is not None and now > DEADLINE):
                process.kill()
                pid, status, usage = os.wait4(process.pid, 0)
                timed_out = now - started > TIMEOUT_SECONDS
                stopped = not timed_out
                break
            time.sleep(0.02)
    except BaseException:  # interrupted: the child goes too
        process.kill()
        os.wait4(process.pid, 0)
        raise
    finally:
        if admin is not None:
            admin.close()
    seconds = time.perf_counter() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    busy1, total1 = machine_cpu_seconds()
    return {
        "returncode": process.returncode,
        "timed_out": timed_out,
        "stopped_at_budget": stopped,
        "seconds": round(seconds, 2),
        "cpu_seconds": round(usage.ru_utime + usage.ru_stime + sum(helper_cpu.values()), 2),
        "helper_cpu_seconds": round(sum(helper_cpu.values()), 2),
        "server_cpu_seconds": round(sum(server.values()), 2) if server_db else None,
        "peak_rss_mb": round(hwm / 1024, 1),
        "peak_anon_mb": round(anon / 1024, 1),
        "load_average_before": load,
        "machine_busy_cores": round((busy1 - busy0) / max(total1 - total0, 1) * (os.cpu_count() or 1), 2),
        "stdout": stdout.read_text()[-2000:],
        "stderr": stderr.read_text()[-2000:] if process.returncode else "",
    }


# --------------------------------------------------------------------------- databases


def pg_admin():
    import psycopg

    return psycopg.connect(f"{PG_SERVER}/postgres", autocommit=True)


def pg_url() -> str:
    return f"{PG_SERVER}/{PG_DB}"


def pg_recreate() -> None:
    from psycopg import sql

    with pg_admin() as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(PG_DB)))
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(PG_DB)))


def pg_drop() -> None:
    from psycopg import sql

    with pg_admin() as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(PG_DB)))


def pg_size_mb() -> float:
    with pg_admin() as conn:
        return round(conn.execute("SELECT pg_database_size(%s)", (PG_DB,)).fetchone()[0] / 2**20, 1)


def fresh_database(backend: str, folder: Path) -> dict:
    """A new migrated database holding the empty project SLUG; the env that points at it."""
    if backend == "sqlite":
        template = folder / "template.sqlite3"
        if not template.exists():
            env = django_env(sqlite_path=template)
            manage(env, "migrate", "--verbosity", "0")
            manage(env, "createproject", SLUG, "--overlap", "1")
        database = folder / "run.sqlite3"
        for suffix in ("", "-journal", "-wal", "-shm"):
            Path(f"{database}{suffix}").unlink(missing_ok=True)
        shutil.copyfile(template, database)
        return django_env(sqlite_path=database)
    pg_recreate()
    env = django_env(database_url=pg_url())
    manage(env, "migrate", "--verbosity", "0")
    manage(env, "createproject", SLUG, "--overlap", "1")
    return env


def database_size_mb(backend: str, folder: Path) -> float:
    if backend == "sqlite":
        return round((folder / "run.sqlite3").stat().st_size / 2**20, 1)
    return pg_size_mb()


# --------------------------------------------------------------------------- import


def import_run(backend: str, fmt: str, rows: int, path: Path, folder: Path, profile: Path | None = None) -> dict:
    env = fresh_database(backend, folder)
    runner = [PYTHON, "-m", "cProfile", "-o", str(profile)] if profile else [PYTHON]
    command = [*runner, str(ROOT / "manage.py"), "import_items", SLUG, str(path)]
    print(f"  import {backend:8} {fmt:7} {rows:>9,} rows  (load {os.getloadavg()[0]:.2f}) ...", end=" ", flush=True)
    server_db = PG_DB if backend == "postgres" else None
    run = measured(command, env, folder / f"import-{backend}-{fmt}-{rows}", server_db=server_db)
    imported = re.search(r"imported (\d+) items", run["stdout"])
    run.update(operation="import", backend=backend, format=fmt, rows=rows, file_mb=round(path.stat().st_size / 2**20))
    run["imported"] = int(imported.group(1)) if imported else None
    run["ok"] = run["returncode"] == 0 and run["imported"] == rows
    progress = re.findall(r"(\d+)/\d+ \[", run["stderr"])  # tqdm's last "rows read/total"
    if not run["ok"] and progress:
        run["rows_read"] = int(progress[-1])
    if run["ok"]:
        run["rows_per_s"] = round(rows / run["seconds"])
        run["database_mb"] = database_size_mb(backend, folder)
    print(describe(run), flush=True)
    return run


def outcome(run: dict) -> str | None:
    """Why a run has no figures, or None when it finished."""
    if run.get("not_run"):
        return "not run (time budget)"
    if run["timed_out"]:
        return "over 15 min (killed)"
    if run.get("stopped_at_budget"):
        read = f", {run['rows_read']:,} rows read" if run.get("rows_read") else ""
        return f"stopped at the time budget after {run['seconds']:.0f} s{read}"
    if not run["ok"]:
        return f"failed (exit {run['returncode']})"
    return None


def not_run(operation: str, backend: str, fmt: str, rows: int) -> dict:
    print(f"  {operation} {backend} {fmt} {rows:,}: not run (time budget)", flush=True)
    return {"operation": operation, "backend": backend, "format": fmt, "rows": rows, "ok": False, "not_run": True}


def past_deadline() -> bool:
    return DEADLINE is not None and time.perf_counter() > DEADLINE


def describe(run: dict) -> str:
    if outcome(run):
        return outcome(run) + (f": {run['stderr'][-300:]}" if run.get("returncode", 0) > 0 else "")
    rate = run.get("rows_per_s") or run.get("judgments_per_s")
    server = run.get("server_cpu_seconds")
    server = f" (+{server:.1f} s server)" if server is not None else ""
    memory = f"peak RSS {run['peak_rss_mb']:,.0f} MB"
    return f"{run['seconds']:.1f} s, {rate:,}/s, {memory}, cpu {run['cpu_seconds']:.1f} s{server}"


# --------------------------------------------------------------------------- export


SEED_SQL = [
    """
    INSERT INTO labeling_item (project_id, external_id, prompt, metadata, reference, is_gold, gold_answer,
                               priority, target, votes, filled, is_complete, withdrawn_at, created_at)
    SELECT %(project)s, 'q' || n,
           jsonb_build_array(jsonb_build_object('role', 'user', 'content',
               'Question ' || n || ': ' || repeat(md5(n::text) || ' ', (2 + n %% 6)::int))),
           '{}'::jsonb, NULL, false, NULL, 0, 1, 1, 1, true, NULL, now() - interval '2 days'
    FROM generate_series(1, %(rows)s) AS n
    """,
    """
    INSERT INTO labeling_response (item_id, position, model, content, metadata)
    SELECT i.id, v.position, 'model-' || ((i.id + v.position) %% 8),
           'Answer ' || v.position || ' to ' || i.external_id || '. '
               || repeat(md5(i.id::text || ':' || v.position) || ' ', (6 + (i.id * 7 + v.position) %% 12)::int),
           '{}'::jsonb
    FROM labeling_item AS i CROSS JOIN (VALUES (0), (1)) AS v(position)
    WHERE i.project_id = %(project)s
    """,
    """
    CREATE TEMP TABLE bench_pairs AS
    SELECT r.item_id, min(r.id) FILTER (WHERE r.position = 0) AS r0, min(r.id) FILTER (WHERE r.position = 1) AS r1
    FROM labeling_response AS r JOIN labeling_item AS i ON i.id = r.item_id
    WHERE i.project_id = %(project)s GROUP BY r.item_id
    """,
    """
    INSERT INTO labeling_assignment (id, project_id, item_id, annotator_id, state, queued, shown_order,
                                     skip_reason, created_at, expires_at, finished_at)
    SELECT md5('assignment:' || p.item_id)::uuid, %(project)s, p.item_id, u.id, 'submitted', false,
           CASE WHEN p.item_id %% 2 = 0 THEN jsonb_build_array(p.r0, p.r1) ELSE jsonb_build_array(p.r1, p.r0) END,
           '', now() - interval '1 day', now() - interval '1 day' + interval '30 minutes',
           now() - interval '1 day' + (p.item_id %% 600) * interval '1 second'
    FROM bench_pairs AS p
    JOIN (SELECT id, row_number() OVER (ORDER BY id) - 1 AS k FROM auth_user
          WHERE username LIKE 'bench-annotator-%%') AS u ON u.k = p.item_id %% %(annotators)s
    """,
    """
    INSERT INTO labeling_judgment (id, assignment_id, project_id, item_id, annotator_id, ranking, strength,
                                   both_bad, rationale, criteria, seconds, visible_seconds, revision, late,
                                   created_at, updated_at)
    SELECT md5('judgment:' || a.item_id)::uuid, a.id, %(project)s, a.item_id, a.annotator_id,
           CASE WHEN a.item_id %% 3 = 0
                THEN jsonb_build_array(jsonb_build_array(p.r1), jsonb_build_array(p.r0))
                ELSE jsonb_build_array(jsonb_build_array(p.r0), jsonb_build_array(p.r1)) END,
           1 + a.item_id %% 3, false, '', '{}'::jsonb, 5 + a.item_id %% 90, NULL, 1, false,
           a.finished_at, a.finished_at
    FROM labeling_assignment AS a JOIN bench_pairs AS p ON p.item_id = a.item_id
    WHERE a.project_id = %(project)s
    """,
    "DROP TABLE bench_pairs",
]


def seed_judgments(slug: str, rows: int) -> float:
    """`rows` items with two responses and one submitted judgment each, in project `slug`."""
    import psycopg

    started = time.perf_counter()
    with psycopg.connect(pg_url(), autocommit=False) as conn:
        project = conn.execute("SELECT id FROM labeling_project WHERE slug = %s", (slug,)).fetchone()[0]
        conn.execute(
            """
            INSERT INTO auth_user (password, last_login, is_superuser, username, first_name, last_name, email,
                                   is_staff, is_active, date_joined)
            SELECT '!', NULL, false, 'bench-annotator-' || lpad(u::text, 3, '0'), '', '', '', false, true, now()
            FROM generate_series(1, %(annotators)s) AS u
            ON CONFLICT (username) DO NOTHING
            """,
            {"annotators": ANNOTATORS},
        )
        conn.execute(
            """
            INSERT INTO labeling_membership (project_id, user_id, role, created_at)
            SELECT %(project)s, id, 'annotator', now() FROM auth_user WHERE username LIKE 'bench-annotator-%%'
            """,
            {"project": project},
        )
        for statement in SEED_SQL:
            conn.execute(statement, {"project": project, "rows": rows, "annotators": ANNOTATORS})
        conn.commit()
    with psycopg.connect(pg_url(), autocommit=True) as conn:
        conn.execute("ANALYZE")
    return round(time.perf_counter() - started, 1)


# SEED_SQL's rows in SQLite's SQL, stored as Django stores them there: JSON as `json.dumps` writes it
# (`[[12], [34]]`), UUIDs as 32 hex digits, booleans as 0/1; `md5` and `repeat` are Python
# functions of the seeding connection (`seed_sqlite_judgments`).
SQLITE_SEED_SQL = [
    """
    INSERT INTO labeling_item (project_id, external_id, prompt, metadata, reference, is_gold, gold_answer,
                               priority, target, votes, filled, is_complete, withdrawn_at, created_at)
    WITH RECURSIVE s(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM s WHERE n < :rows)
    SELECT :project, 'q' || n,
           '[{"role": "user", "content": "Question ' || n || ': ' || repeat(md5(n) || ' ', 2 + n % 6) || '"}]',
           '{}', NULL, 0, NULL, 0, 1, 1, 1, 1, NULL, datetime('now', '-2 days')
    FROM s
    """,
    """
    INSERT INTO labeling_response (item_id, position, model, content, metadata)
    SELECT i.id, v.position, 'model-' || ((i.id + v.position) % 8),
           'Answer ' || v.position || ' to ' || i.external_id || '. '
               || repeat(md5(i.id || ':' || v.position) || ' ', 6 + (i.id * 7 + v.position) % 12),
           '{}'
    FROM labeling_item AS i CROSS JOIN (SELECT 0 AS position UNION ALL SELECT 1) AS v
    WHERE i.project_id = :project ORDER BY i.id, v.position
    """,
    "CREATE TEMP TABLE bench_pairs (item_id INTEGER PRIMARY KEY, r0 INTEGER, r1 INTEGER)",
    """
    INSERT INTO bench_pairs
    SELECT r.item_id, min(r.id) FILTER (WHERE r.position = 0), min(r.id) FILTER (WHERE r.position = 1)
    FROM labeling_response AS r JOIN labeling_item AS i ON i.id = r.item_id
    WHERE i.project_id = :project GROUP BY r.item_id
    """,
    """
    INSERT INTO labeling_assignment (id, project_id, item_id, annotator_id, state, queued, shown_order,
                                     skip_reason, created_at, expires_at, finished_at)
    SELECT md5('assignment:' || p.item_id), :project, p.item_id, u.id, 'submitted', 0,
           CASE WHEN p.item_id % 2 = 0 THEN '[' || p.r0 || ', ' || p.r1 || ']'
                ELSE '[' || p.r1 || ', ' || p.r0 || ']' END,
           '', datetime('now', '-1 day'), datetime('now', '-1 day', '+30 minutes'),
           datetime('now', '-1 day', '+' || (p.item_id % 600) || ' seconds')
    FROM bench_pairs AS p
    JOIN (SELECT id, row_number() OVER (ORDER BY id) - 1 AS k FROM auth_user
          WHERE username LIKE 'bench-annotator-%') AS u ON u.k = p.item_id % :annotators
    """,
    """
    INSERT INTO labeling_judgment (id, assignment_id, project_id, item_id, annotator_id, ranking, strength,
                                   both_bad, rationale, criteria, seconds, visible_seconds, revision, late,
                                   created_at, updated_at)
    SELECT md5('judgment:' || a.item_id), a.id, :project, a.item_id, a.annotator_id,
           CASE WHEN a.item_id % 3 = 0 THEN '[[' || p.r1 || '], [' || p.r0 || ']]'
                ELSE '[[' || p.r0 || '], [' || p.r1 || ']]' END,
           1 + a.item_id % 3, 0, '', '{}', 5 + a.item_id % 90, NULL, 1, 0, a.finished_at, a.finished_at
    FROM labeling_assignment AS a JOIN bench_pairs AS p ON p.item_id = a.item_id
    WHERE a.project_id = :project
    """,
    "DROP TABLE bench_pairs",
]


def seed_sqlite_judgments(path: Path, slug: str, rows: int) -> float:
    """`seed_judgments` for the SQLite file at `path`."""
    started = time.perf_counter()
    conn = sqlite3.connect(path)
    try:
        md5 = lambda value: hashlib.md5(str(value).encode(), usedforsecurity=False).hexdigest()  # noqa: E731
        conn.create_function("md5", 1, md5, deterministic=True)
        conn.create_function("repeat", 2, lambda text, count: text * count, deterministic=True)
        project = conn.execute("SELECT id FROM labeling_project WHERE slug = ?", (slug,)).fetchone()[0]
        conn.execute(
            """
            INSERT OR IGNORE INTO auth_user (password, last_login, is_superuser, username, first_name, last_name,
                                             email, is_staff, is_active, date_joined)
            WITH RECURSIVE s(u) AS (SELECT 1 UNION ALL SELECT u + 1 FROM s WHERE u < :annotators)
            SELECT '!', NULL, 0, 'bench-annotator-' || printf('%03d', u), '', '', '', 0, 1, datetime('now') FROM s
            """,
            {"annotators": ANNOTATORS},
        )
        conn.execute(
            """
            INSERT INTO labeling_membership (project_id, user_id, role, created_at)
            SELECT :project, id, 'annotator', datetime('now') FROM auth_user WHERE username LIKE 'bench-annotator-%'
            """,
            {"project": project},
        )
        for statement in SQLITE_SEED_SQL:
            conn.execute(statement, {"project": project, "rows": rows, "annotators": ANNOTATORS})
        conn.commit()
        conn.execute("ANALYZE")
    finally:
        conn.close()
    return round(time.perf_counter() - started, 1)


def export_env(backend: str, folder: Path) -> dict:
    """The environment of the export runs: the seeded SQLite file, or the seeded PostgreSQL database."""
    if backend == "sqlite":
        return django_env(sqlite_path=folder / "export.sqlite3")
    return django_env(database_url=pg_url())


def export_run(backend: str, slug: str, rows: int, folder: Path, profile: Path | None = None) -> dict:
    out = folder / f"export-{slug}"
    shutil.rmtree(out, ignore_errors=True)
    env = export_env(backend, folder)
    if STATS_FIRST:  # the dataset card then reads the stored figures (as after the dashboard's refresh)
        manage(env, "project_stats", slug)
    runner = [PYTHON, "-m", "cProfile", "-o", str(profile)] if profile else [PYTHON]
    command = [*runner, str(ROOT / "manage.py"), "export_preferences", slug, "--out", str(out)]
    print(f"  export {backend:8} hf      {rows:>9,} judgments (load {os.getloadavg()[0]:.2f}) ...", end=" ", flush=True)
    server_db = PG_DB if backend == "postgres" else None
    run = measured(command, env, folder / f"export-{backend}-{slug}", server_db=server_db)
    found = re.search(r"train (\d+) rows from (\d+) items and (\d+) judgments", run["stdout"])
    run.update(operation="export", backend=backend, format="hf", rows=rows)
    run["exported_rows"], run["judgments"] = (int(found.group(1)), int(found.group(3))) if found else (None, None)
    run["ok"] = run["returncode"] == 0 and run["judgments"] == rows and run["exported_rows"] == rows
    if run["ok"]:
        run["judgments_per_s"] = round(rows / run["seconds"])
        run["output_mb"] = round(sum(f.stat().st_size for f in out.rglob("*") if f.is_file()) / 2**20, 1)
    shutil.rmtree(out, ignore_errors=True)
    print(describe(run), flush=True)
    return run


# --------------------------------------------------------------------------- profiles

IMPORT_PARTS = [
    ("whole command (Django start-up included)", [("management/__init__.py", "execute_from_command_line")]),
    ("count_rows: a first pass over the file for the progress bar", [("importing/readers.py", "count_rows")]),
    ("read + parse rows (json.loads / Arrow to_pylist)", [("importing/readers.py", "read_rows")]),
    ("  of which json.loads", [("json/__init__.py", "loads")]),
    ("detect shape + validate + normalize", [("importing/__init__.py", "_normalize_row")]),
    ("_write_batch (existing ids + bulk_create x2)", [("importing/__init__.py", "_write_batch")]),
    ("  existing-id lookups (SELECT external_id IN ...)", [("models/query.py", "_fetch_all")]),
    ("  bulk_create (Item, Response)", [("models/query.py", "bulk_create")]),
    ("    Model.__init__ (building instances)", [("models/base.py", "__init__")]),
    ("    JSONField get_db_prep_value", [("fields/json.py", "get_db_prep_value")]),
    ("    json.dumps (JSON encoding, wherever called)", [("json/__init__.py", "dumps")]),
    ("    SQL compile (compiler as_sql: per-value prep, placeholders)", [("sql/compiler.py", "as_sql")]),
    (
        "    database execute (CursorWrapper._execute*)",
        [("backends/utils.py", "_execute"), ("backends/utils.py", "_executemany")],
    ),
    ("commit", [("backends/base/base.py", "commit")]),
    ("tqdm progress bar", [("tqdm/std.py", "update")]),
]

EXPORT_PARTS = [
    ("whole command (Django start-up included)", [("management/__init__.py", "execute_from_command_line")]),
    ("rows to the save_to_disk layout (_stream, everything below)", [("exporting/__init__.py", "_stream")]),
    ("  columnar read (pair_tables: streams, joins in Arrow)", [("exporting/reading.py", "pair_tables")]),
    ("    waiting for the streams' threads", [("exporting/streams.py", "_received")]),
    ("  waiting for the writing thread", [("futures/_base.py", "result")]),
    ("  one-vote rows built by Arrow", [("exporting/columnar.py", "one_vote_rows")]),
    ("  general path (_rows_for_batch)", [("exporting/__init__.py", "_rows_for_batch")]),
    ("  merging in item order", [("exporting/columnar.py", "in_item_order")]),
    ("dataset card (project_stats: agreement, leaderboard)", [("exporting/card.py", "dataset_card")]),
]


def summarize_profile(path: Path, parts: list) -> dict:
    stats = pstats.Stats(str(path))
    entries = stats.stats  # (file, line, function) -> (primitive calls, calls, tottime, cumtime, callers)
    total = stats.total_tt  # replaced below by the whole command's cumulative time, when it is there

    def cumulative(patterns) -> float:
        return sum(
            value[3]
            for (file, _line, function), value in entries.items()
            if any(file.endswith(suffix) and function == name for suffix, name in patterns)
        )

    summary = [{"part": label, "seconds": round(cumulative(patterns), 2)} for label, patterns in parts]
    total = summary[0]["seconds"] or total
    top = sorted(entries.items(), key=lambda entry: entry[1][2], reverse=True)[:15]
    own = [
        {
            "function": f"{'/'.join(Path(file).parts[-2:])}:{line} {function}" if line else function,
            "calls": value[1],
            "own_seconds": round(value[2], 2),
        }
        for (file, line, function), value in top
    ]
    return {"total_seconds": round(total, 2), "parts": summary, "top_own_time": own}


# --------------------------------------------------------------------------- report


def mb(value) -> str:
    return f"{value:,.0f}" if isinstance(value, int | float) else "-"


def add_growth(runs: list[dict]) -> None:
    baselines = {(r["operation"], r["backend"], r["format"]): r for r in runs if r["rows"] == BASELINE_ROWS}
    for run in runs:
        base = baselines.get((run["operation"], run["backend"], run["format"]))
        if base and base["ok"] and run["ok"]:
            run["growth_mb"] = round(run["peak_rss_mb"] - base["peak_rss_mb"], 1)
            run["anon_growth_mb"] = round(run["peak_anon_mb"] - base["peak_anon_mb"], 1)


def targets(runs: list[dict], largest: int) -> list[dict]:
    verdicts = []
    for run in runs:
        if run["rows"] != largest:
            continue
        label = f"{run['operation']} {run['backend']} {run['format']} {largest:,}"
        if not run["ok"]:
            verdicts.append({"run": label, "target": "all", "figure": outcome(run), "met": None})
            continue
        if run["operation"] == "import":
            rate, goal, unit = run["rows_per_s"], TARGET_IMPORT_PER_S, "pairs/s"
        else:
            rate, goal, unit = run["judgments_per_s"], TARGET_EXPORT_PER_S, "judgments/s"
        verdicts.append({"run": label, "target": f">= {goal:,} {unit}", "figure": f"{rate:,}", "met": rate >= goal})
        if "growth_mb" in run:
            verdicts.append(
                {
                    "run": label,
                    "target": f"memory growth < {TARGET_GROWTH_MB} MB",
                    "figure": f"{run['growth_mb']:,.0f} MB (anonymous {run['anon_growth_mb']:,.0f} MB)",
                    "met": run["growth_mb"] < TARGET_GROWTH_MB,
                }
            )
    return verdicts


def write_report(report: dict) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{OUT}.json").write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    machine = report["machine"]
    lines = [
        "# Import and export: throughput and peak memory",
        "",
        f"Machine: {machine_line(machine)}. Load average at start {machine['load_average_at_start']}, "
        f"CPU busy {machine['cpu_busy_fraction_at_start']:.0%} of the machine before the first run"
        + (": other work was sharing it." if machine["cpu_busy_fraction_at_start"] > 0.2 else "."),
        "",
        "Every figure is one run of the real command in its own process, Django start-up (about 3 s) included. "
        "Peak RSS is that process (VmHWM) plus, for a large import, its forkserver and parsing process "
        "(VmRSS at the same poll; the PostgreSQL server is not counted); peak anon is their "
        "largest anonymous memory (RSS without pages of memory-mapped files, such as datasets' Arrow files, "
        "which the kernel can drop); growth is over the 1,000-row run of the same kind. `busy cores` is the "
        f"whole machine's CPU use during the run, out of {machine['cores']}: this run, the PostgreSQL server and "
        "any other work; `CPU s` is the CPU time of this process and its parsing process. Input files were "
        "just written, so they are "
        f"read from the page cache. Parquet files have row groups of {PARQUET_ROW_GROUP:,} rows. "
        f"{report['status']}",
        "",
    ]
    imports = [r for r in report["runs"] if r["operation"] == "import"]
    if imports:
        lines += [
            "## Import (`manage.py import_items`, flat pairs)",
            "",
            "| database | format | rows | file MB | seconds | pairs/s | peak RSS MB | growth MB | peak anon MB | "
            "anon growth MB | CPU s | load before | busy cores | DB MB |",
            "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
        ]
        lines += [row_line(r, "rows_per_s", r.get("file_mb"), r.get("database_mb")) for r in imports]
        lines.append("")
    exports = [r for r in report["runs"] if r["operation"] == "export"]
    if exports:
        reused = report.get("export_database_reused", {})
        seeding = "; ".join(
            f"{backend}: earlier, --keep-db reused the projects of a kept database"
            if reused.get(backend)
            else f"{backend}: " + ", ".join(f"{int(k):,}: {v} s" for k, v in seconds.items())
            for backend, seconds in report.get("export_seeding_seconds", {}).items()
        )
        lines += [
            "## Export (`manage.py export_preferences SLUG --out DIR`, hf, default config)",
            "",
            f"The same rows seeded with SQL into each database, overlap 1, one exported pair per judgment "
            f"(seeding took {seeding}). "
            + (
                "The project's stats were computed and stored before each export (untimed, `--stats-first`), "
                "so the dataset card reads them."
                if report.get("stats_first")
                else "The dataset card computes the project's stats inside the timed run."
            ),
            "",
            "| database | format | judgments | seconds | judgments/s | peak RSS MB | growth MB | peak anon MB | "
            "anon growth MB | CPU s | load before | busy cores | output MB |",
            "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
        ]
        lines += [row_line(r, "judgments_per_s", None, r.get("output_mb"), file_column=False) for r in exports]
        lines.append("")
    if report["targets"]:
        lines += [
            f"## Targets at {report['largest']:,} rows",
            "",
            "| run | target | figure | met |",
            "| --- | --- | ---: | --- |",
        ]
        lines += [f"| {v['run']} | {v['target']} | {v['figure']} | {VERDICTS[v['met']]} |" for v in report["targets"]]
        lines += [
            "",
            "For scale: Label Studio 1.23 on this machine imports about 5,000 tasks/s (979 MB at 100,000) and "
            "exports about 850 annotated tasks/s.",
            "",
        ]
    for name, profile in report.get("profiles", {}).items():
        lines += [
            f"## Where the time goes: {name}",
            "",
            f"cProfile, taken {profile.get('taken', '?')} (load average before {profile.get('load_average_before')}): "
            f"{profile['total_seconds']} s under the profiler, which roughly doubles the cost of Python-heavy "
            "code; read the shares, not the seconds.",
            "",
            "| part (cumulative, nested parts are included in their parent) | seconds | share |",
            "| --- | ---: | ---: |",
        ]
        total = profile["total_seconds"] or 1
        lines += [
            f"| {p['part'].replace('  ', '&nbsp;&nbsp;')} | {p['seconds']} | {p['seconds'] / total:.0%} |"
            for p in profile["parts"]
        ]
        lines += ["", "| function (own time) | calls | seconds |", "| --- | ---: | ---: |"]
        lines += [f"| `{f['function']}` | {f['calls']:,} | {f['own_seconds']} |" for f in profile["top_own_time"]]
        lines.append("")
    (RESULTS / f"{OUT}.md").write_text("\n".join(lines))


def row_line(run: dict, rate_key: str, file_mb, size_mb, *, file_column: bool = True) -> str:
    cells = [run["backend"], run["format"], f"{run['rows']:,}"]
    if file_column:
        cells.append(mb(file_mb))
    if run.get("not_run"):
        return "| " + " | ".join([*cells, outcome(run), *["-"] * 9]) + " |"
    if outcome(run):  # no rate; the peaks so far are still shown
        cells += [outcome(run), "-", mb(run["peak_rss_mb"]), "-", mb(run["peak_anon_mb"]), "-"]
    else:
        cells += [f"{run['seconds']:.1f}", f"{run[rate_key]:,}", mb(run["peak_rss_mb"]), mb(run.get("growth_mb"))]
        cells += [mb(run["peak_anon_mb"]), mb(run.get("anon_growth_mb"))]
    cpu = f"{run['cpu_seconds']:.1f}"
    if run.get("server_cpu_seconds") is not None:  # PostgreSQL runs: the server's backends too
        cpu += f" (+{run['server_cpu_seconds']:.1f} server)"
    cells += [cpu, f"{run['load_average_before'][0]:.2f}", f"{run['machine_busy_cores']:.2f}"]
    cells.append(mb(size_mb))
    return "| " + " | ".join(cells) + " |"


# --------------------------------------------------------------------------- main


def generate_files(folder: Path, sizes: list[int]) -> dict[int, dict[str, Path]]:
    files = {}
    for rows in sizes:
        t0 = time.perf_counter()
        files[rows] = generate(folder, rows)
        print(
            f"Generated {rows:,} pairs in {time.perf_counter() - t0:.1f} s: JSONL "
            f"{files[rows]['jsonl'].stat().st_size / 2**20:,.0f} MB, Parquet "
            f"{files[rows]['parquet'].stat().st_size / 2**20:,.0f} MB",
            flush=True,
        )
    return files


def seeded(slug: str, rows: int) -> bool:
    """Whether the database already holds project `slug` with `rows` judgments (a --keep-db run's)."""
    import psycopg

    with contextlib.suppress(psycopg.Error), psycopg.connect(pg_url()) as conn:
        found = conn.execute(
            "SELECT count(*) FROM labeling_judgment AS j JOIN labeling_project AS p ON p.id = j.project_id"
            " WHERE p.slug = %s",
            (slug,),
        ).fetchone()
        return found[0] == rows
    return False


def export_phase(report: dict, sizes: list[int], backend: str, folder: Path, save) -> None:
    """Seed one database (a SQLite file in `folder`, or PostgreSQL) with a project per size, then export each.

    With --keep-db the projects a kept PostgreSQL database already holds are not seeded again
    (the SQLite file goes with the run's temp folder)."""
    postgres = backend == "postgres"
    reused = postgres and KEEP_DB and all(seeded(f"export-{rows}", rows) for rows in [BASELINE_ROWS, *sizes])
    env = export_env(backend, folder)
    if postgres and not reused:
        pg_recreate()
    if not reused:
        manage(env, "migrate", "--verbosity", "0")
    report.setdefault("export_seeding_seconds", {})[backend] = seeding = {}
    report.setdefault("export_database_reused", {})[backend] = reused
    for rows in [] if reused else [BASELINE_ROWS, *sizes]:
        manage(env, "createproject", f"export-{rows}", "--overlap", "1")
        if postgres:
            seconds = seed_judgments(f"export-{rows}", rows)
        else:
            seconds = seed_sqlite_judgments(folder / "export.sqlite3", f"export-{rows}", rows)
        seeding[str(rows)] = seconds
        print(f"Seeded {rows:,} judgments into {backend} in {seconds} s", flush=True)
    for rows in [BASELINE_ROWS, *sizes]:
        skip = past_deadline()
        report["runs"].append(
            not_run("export", backend, "hf", rows) if skip else export_run(backend, f"export-{rows}", rows, folder)
        )
        save()
    if not postgres:
        for suffix in ("", "-journal", "-wal", "-shm"):
            Path(f"{folder / 'export.sqlite3'}{suffix}").unlink(missing_ok=True)


def measure_phase(report: dict, sizes: list[int], backends: list[str], folder: Path, save, only: str = "") -> None:
    """Exports first (one seeded database each), then imports by size, so that a cut-short run still has every kind."""
    for backend in backends if only != "import" else []:
        export_phase(report, sizes, backend, folder, save)
    if only == "export":
        return
    files = generate_files(folder, sorted({BASELINE_ROWS, *sizes}))
    for rows in [BASELINE_ROWS, *sizes]:
        for backend in backends:
            for fmt in ("jsonl", "parquet"):
                if past_deadline():
                    report["runs"].append(not_run("import", backend, fmt, rows))
                else:
                    report["runs"].append(import_run(backend, fmt, rows, files[rows][fmt], folder))
                save()
    for path in (path for pair in files.values() for path in pair.values()):
        path.unlink()


def profile_phase(report: dict, backends: list[str], folder: Path, save) -> None:
    """cProfile summaries of a PROFILE_ROWS import (JSONL, each database) and export (PostgreSQL)."""
    report["profiles"] = {}
    files = generate_files(folder, [PROFILE_ROWS])
    for backend in backends:
        path = folder / f"import-{backend}.prof"
        run = import_run(backend, "jsonl", PROFILE_ROWS, files[PROFILE_ROWS]["jsonl"], folder, path)
        name = f"import of {PROFILE_ROWS:,} JSONL pairs into {backend}"
        report["profiles"][name] = {**summarize_profile(path, IMPORT_PARTS), **profile_context(run)}
        save()
    if "postgres" in backends:
        pg_recreate()
        env = django_env(database_url=pg_url())
        manage(env, "migrate", "--verbosity", "0")
        manage(env, "createproject", "export-profile", "--overlap", "1")
        seed_judgments("export-profile", PROFILE_ROWS)
        path = folder / "export.prof"
        run = export_run("postgres", "export-profile", PROFILE_ROWS, folder, path)
        name = f"export of {PROFILE_ROWS:,} judgments (PostgreSQL)"
        report["profiles"][name] = {**summarize_profile(path, EXPORT_PARTS), **profile_context(run)}
        save()


def profile_context(run: dict) -> dict:
    return {
        "taken": time.strftime("%Y-%m-%d %H:%M"),
        "wall_seconds_under_profiler": run["seconds"],
        "load_average_before": run["load_average_before"],
    }


def earlier_profiles() -> dict:
    """Profiles of an earlier --profile run, kept (with when they were taken) when this run makes none."""
    with contextlib.suppress(OSError, ValueError, KeyError):
        return json.loads((RESULTS / f"{OUT}.json").read_text())["profiles"]
    return {}


def interrupted(signum, frame):
    raise KeyboardInterrupt


def main() -> None:
    global PG_DB, OUT  # set once here from the arguments, read by the PostgreSQL helpers and the writers
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--sizes", default="100000,1000000", help="Comma-separated row counts (default 100000,1000000)."
    )
    parser.add_argument("--quick", action="store_true", help="10,000 and 100,000 rows only.")
    parser.add_argument("--skip-sqlite", action="store_true")
    parser.add_argument("--skip-postgres", action="store_true")
    parser.add_argument("--profile", action="store_true", help="Add cProfile summaries of 100,000-row runs.")
    parser.add_argument(
        "--budget-minutes",
        type=float,
        default=0,
        help="Start no run after this many minutes and stop the one running then (default: no budget).",
    )
    parser.add_argument("--only", choices=("import", "export"), default="", help="Measure only imports or exports.")
    parser.add_argument("--db-name", default=PG_DB, help=f"PostgreSQL database to create and drop (default {PG_DB}).")
    parser.add_argument("--out", default="import_export", help="Results file name, without .json/.md.")
    parser.add_argument(
        "--stats-first",
        action="store_true",
        help="Run project_stats (untimed) before each export, so the dataset card reads current stored figures.",
    )
    parser.add_argument(
        "--keep-db",
        action="store_true",
        help="With --only export: keep --db-name at the end, and reuse the projects it already holds next time.",
    )
    parser.add_argument(
        "--profile-only",
        action="store_true",
        help="Only re-make the cProfile summaries; keep the measured runs of bench/results/import_export.json.",
    )
    args = parser.parse_args()
    PG_DB, OUT = args.db_name, args.out
    global STATS_FIRST, KEEP_DB  # set once here, read by export_run and export_phase
    STATS_FIRST, KEEP_DB = args.stats_first, args.keep_db
    sizes = [10_000, 100_000] if args.quick else sorted({int(s.replace("_", "")) for s in args.sizes.split(",")})
    backends = [b for b, skip in (("sqlite", args.skip_sqlite), ("postgres", args.skip_postgres)) if not skip]
    started = time.perf_counter()
    global DEADLINE  # set once here, read by the runners
    DEADLINE = started + args.budget_minutes * 60 if args.budget_minutes else None
    signal.signal(signal.SIGINT, signal.default_int_handler)  # also when started in the background
    signal.signal(signal.SIGTERM, interrupted)
    machine = describe_machine(postgres="postgres" in backends)
    print(f"Machine: {machine_line(machine)}")
    print(f"Load average {machine['load_average_at_start']}, CPU busy {machine['cpu_busy_fraction_at_start']:.0%}")
    for line in machine["top_processes_at_start"]:
        print(f"  {line}")
    if args.profile_only:
        report = json.loads((RESULTS / f"{OUT}.json").read_text())
        sizes, status = report["sizes"], report["status"]
    else:
        report = {
            "machine": machine,
            "sizes": sizes,
            "largest": max(sizes),
            "baseline_rows": BASELINE_ROWS,
            "timeout_seconds": TIMEOUT_SECONDS,
            "seed": SEED,
            "parquet_row_group": PARQUET_ROW_GROUP,
            "budget_minutes": args.budget_minutes or None,
            "stats_first": args.stats_first,
            "status": "Running.",
            "runs": [],
            "targets": [],
            "profiles": earlier_profiles(),
        }

    def save(status: str = "Running: the figures so far.") -> None:
        add_growth(report["runs"])
        report["targets"] = targets(report["runs"], max(sizes))
        report["status"] = status
        if not args.profile_only:
            report["elapsed_seconds"] = round(time.perf_counter() - started)
        write_report(report)

    with tempfile.TemporaryDirectory(prefix="import-export-bench-") as name:
        global SCRATCH  # set once here, read by django_env
        folder = SCRATCH = Path(name)
        try:
            if args.profile_only:
                profile_phase(report, backends, folder, lambda: save(status))
            else:
                measure_phase(report, sizes, backends, folder, save, args.only)
                finished = f"Measurements finished in {(time.perf_counter() - started) / 60:.1f} minutes."
                cut = [run for run in report["runs"] if run.get("not_run") or run.get("stopped_at_budget")]
                if cut:
                    finished += (
                        f" The {args.budget_minutes:g}-minute budget cut {len(cut)} run(s) short or out;"
                        " every other run finished."
                    )
                save(finished)
                if args.profile:
                    profile_phase(report, backends, folder, lambda: save(finished))
        except KeyboardInterrupt:
            save(
                f"Interrupted after {(time.perf_counter() - started) / 60:.1f} minutes: only the runs listed finished."
            )
            raise
        finally:
            (folder / "run.sqlite3").unlink(missing_ok=True)
            if "postgres" in backends and not KEEP_DB:
                pg_drop()
    print((RESULTS / f"{OUT}.md").read_text())


if __name__ == "__main__":
    main()
