"""The in-process profile of `next` and `submit` on PostgreSQL: where the time of one request goes.

`run_profile` starts `api_latency.py --profile-child` in the served checkout's environment;
`profile_child` runs there (Django test client, SQL per request, EXPLAIN, cProfile).
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import HOST, percentile, summary

from latency.client import wait_until_idle
from latency.databases import Database, django_env, reset_project

ENTRY = Path(__file__).resolve().parent.parent / "api_latency.py"  # the child runs the benchmark's own entry


def profile_child(slug: str, token: str, rounds: int, profiled: int, out: str) -> None:
    """Runs inside a subprocess with the Django environment: where the time of one request goes.

    Times each phase of the two views (auth, access check, service, serialization) by
    wrapping the functions labeling.api calls, every SQL statement (execute_wrapper) and
    every transaction command psycopg sends (BEGIN/COMMIT); the rest of a request is
    Django + django-ninja + middleware. Then one cProfile pass and EXPLAIN of a claim.
    """
    import cProfile
    import io
    import pstats

    import django

    django.setup()
    import psycopg
    from django.db import connection, transaction
    from django.test import Client

    import labeling.api as api_module

    state = {"sql_ms": 0.0, "commands": [], "queries": [], "phases": {}}

    def record_sql(execute, sql, params, many, context):
        started = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            elapsed = (time.perf_counter() - started) * 1000
            state["sql_ms"] += elapsed
            state["queries"].append((sql, params, elapsed))

    original_exec_command = psycopg.Connection._exec_command

    def exec_command(self, command, *a, **k):
        state["commands"].append(command.decode() if isinstance(command, bytes) else str(command))
        return original_exec_command(self, command, *a, **k)

    psycopg.Connection._exec_command = exec_command
    original_wait = psycopg.Connection.wait

    def timed_wait(self, gen, *a, **k):
        # Commands (BEGIN/COMMIT) and queries both end up here; queries are timed by record_sql.
        started = time.perf_counter()
        try:
            return original_wait(self, gen, *a, **k)
        finally:
            state.setdefault("wait_ms", 0.0)
            state["wait_ms"] += (time.perf_counter() - started) * 1000

    psycopg.Connection.wait = timed_wait

    def phase(name, function):
        def wrapper(*a, **k):
            started, sql_before = time.perf_counter(), state["sql_ms"]
            try:
                return function(*a, **k)
            finally:
                total = (time.perf_counter() - started) * 1000
                entry = state["phases"].setdefault(name, [0.0, 0.0])
                entry[0] += total
                entry[1] += state["sql_ms"] - sql_before

        return wrapper

    for label, name in (
        ("auth: token_user", "token_user"),
        ("access: project_for_user", "project_for_user"),
        ("access: assignment_for_user", "assignment_for_user"),
        ("service: assignment_next", "assignment_next"),
        ("service: judgment_submit", "judgment_submit"),
        ("serialize: _assignment_out", "_assignment_out"),
    ):
        if not hasattr(api_module, name):
            raise SystemExit(f"labeling.api has no {name}: update the profile's phases")
        setattr(api_module, name, phase(label, getattr(api_module, name)))
    # Inside assignment_next (their time is part of it, not added to the total again).
    import labeling.services.assignment as assignment_module

    nested = {}
    for name in ("leases_expire", "_claim", "_claim_window", "_claim_item"):
        if hasattr(assignment_module, name):
            label = f"service: assignment_next > {name}"
            nested[label] = True
            setattr(assignment_module, name, phase(label, getattr(assignment_module, name)))

    client = Client(HTTP_HOST=HOST, headers={"Authorization": f"Bearer {token}"})
    anonymous = Client(HTTP_HOST=HOST)

    def request(kind, call):
        state.update(sql_ms=0.0, commands=[], queries=[], phases={}, wait_ms=0.0)
        started = time.perf_counter()
        with connection.execute_wrapper(record_sql):
            response = call()
        total = (time.perf_counter() - started) * 1000
        return response, {
            "kind": kind,
            "total_ms": total,
            "sql_ms": state["sql_ms"],
            "db_wait_ms": state["wait_ms"],
            "queries": list(state["queries"]),
            "commands": list(state["commands"]),
            "phases": dict(state["phases"]),
        }

    def one_round():
        response, next_sample = request("next", lambda: client.post(f"/api/projects/{slug}/next"))
        assert response.status_code == 200, response.content
        data = response.json()
        body = json.dumps({"ranking": [[r["id"]] for r in data["item"]["responses"]]})
        response, submit_sample = request(
            "submit",
            lambda: client.post(
                f"/api/assignments/{data['assignment']}/judgment", data=body, content_type="application/json"
            ),
        )
        assert response.status_code == 201, response.content
        return next_sample, submit_sample

    for _ in range(20):
        one_round()
    samples = [one_round() for _ in range(rounds)]
    floor = [request("401", lambda: anonymous.post("/api/projects/none/next"))[1]["total_ms"] for _ in range(rounds)]

    def p50(values):
        return round(percentile(sorted(values), 50), 3)

    def per_request(index: int) -> dict:
        chosen = [pair[index] for pair in samples]
        by_sql: dict[str, list[float]] = {}
        for sample in chosen:
            for sql, _, ms in sample["queries"]:
                by_sql.setdefault(sql, []).append(ms)
        names = [name for name in chosen[-1]["phases"] if name not in nested]
        for label in reversed(list(nested)):
            if any(label in sample["phases"] for sample in chosen):
                parent = label.split(" > ")[0]
                names.insert(names.index(parent) + 1 if parent in names else len(names), label)
        phases = {
            name: {
                "total_ms_p50": p50([s["phases"].get(name, [0.0, 0.0])[0] for s in chosen]),
                "sql_ms_p50": p50([s["phases"].get(name, [0.0, 0.0])[1] for s in chosen]),
            }
            for name in names
        }
        rest = [s["total_ms"] - sum(v[0] for k, v in s["phases"].items() if k not in nested) for s in chosen]
        phases["django + ninja + middleware (rest)"] = {"total_ms_p50": p50(rest), "sql_ms_p50": 0.0}
        return {
            "in_process_ms": summary([s["total_ms"] for s in chosen]),
            "sql_execute_ms": summary([s["sql_ms"] for s in chosen]),
            "db_wait_ms_p50": p50([s["db_wait_ms"] for s in chosen]),
            "python_ms_p50": p50([s["total_ms"] - s["db_wait_ms"] for s in chosen]),
            "queries_per_request": round(sum(len(s["queries"]) for s in chosen) / len(chosen), 2),
            "commands": chosen[-1]["commands"],
            "db_round_trips_per_request": round(
                sum(len(s["queries"]) + len(s["commands"]) for s in chosen) / len(chosen), 2
            ),
            "phases": phases,
            "queries": [
                {
                    "sql": sql,
                    "per_request": round(len(ms) / len(chosen), 2),
                    "mean_ms": round(sum(ms) / len(ms), 3),
                    "p50_ms": p50(ms),
                }
                for sql, ms in by_sql.items()
            ],
        }

    result = {
        "slug": slug,
        "rounds": rounds,
        "next": per_request(0),
        "submit": per_request(1),
        "floor_401_in_process_ms": summary(floor),
    }

    # EXPLAIN ANALYZE the SELECTs (and the claim's WITH ... UPDATE) of one `next`, in a transaction rolled back.
    plans = []
    next_sample, _ = one_round()
    for sql, params, _ in next_sample["queries"]:
        if not sql.lstrip().upper().startswith(("SELECT", "WITH")):
            continue
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute("EXPLAIN (ANALYZE, BUFFERS, TIMING ON) " + sql, params)
            plans.append({"sql": sql, "plan": "\n".join(row[0] for row in cursor.fetchall())})
            transaction.set_rollback(True)
    result["explain_next"] = plans

    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(profiled):
        one_round()
    profiler.disable()
    buffer = io.StringIO()
    stats = pstats.Stats(profiler, stream=buffer)
    stats.sort_stats("tottime").print_stats(25)
    buffer.write("\n\n")
    stats.sort_stats("cumulative").print_stats(45)
    result["cprofile_round_trips"] = profiled
    result["cprofile"] = buffer.getvalue().replace(str(Path.cwd()) + "/", "").replace(sys.prefix + "/", "")
    Path(out).write_text(json.dumps(result))


def run_profile(args, db: Database, slug: str, token: str) -> dict:
    reset_project(db, slug)
    wait_until_idle(args)
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as handle:
        out = handle.name
    try:
        completed = subprocess.run(
            [
                sys.executable,
                str(ENTRY),
                "--profile-child",
                slug,
                "--profile-token",
                token,
                "--profile-out",
                out,
                "--profile-rounds",
                str(args.profile_rounds),
            ],
            cwd=args.app_dir,
            env=django_env(args, db),
            capture_output=True,
            text=True,
            check=False,
        )
        if completed.returncode != 0:
            raise SystemExit(f"profiling failed:\n{completed.stdout}\n{completed.stderr}")
        return json.loads(Path(out).read_text())
    finally:
        with contextlib.suppress(OSError):
            os.unlink(out)
