"""The load generator: simulated annotators (one OS process each) and one measured configuration."""

from __future__ import annotations

import collections
import contextlib
import http.client
import json
import math
import multiprocessing as mp
import os
import random
import resource
import time

from common import HOST, busy_fraction, load_average, log, machine_cpu_seconds, proc_cpu_seconds, summary

from latency.databases import Database, backend_pids
from latency.servers import Server


def http_post(
    port: int, path: str, token: str | None, body: bytes, request_id: str | None = None
) -> tuple[int, bytes, float]:
    """One POST on a NEW TCP connection (Connection: close); returns status, body, seconds."""
    headers = {"Connection": "close", "Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    if request_id:
        headers["X-Bench-Id"] = request_id  # joins the client's time to gunicorn's access log
    started = time.perf_counter()
    conn = http.client.HTTPConnection(HOST, port, timeout=90)
    try:
        conn.request("POST", path, body=body, headers=headers)
        response = conn.getresponse()
        data = response.read()
        status = response.status
    finally:
        conn.close()
    return status, data, time.perf_counter() - started


def round_trip(port: int, slug: str, token: str, request_id: str = "") -> dict:
    """next + submit; times in ms. `outcome`: ok, drained (204) or error (any status or exception)."""
    begin = time.monotonic()
    started = time.perf_counter()
    where = "next"
    try:
        status, body, next_s = http_post(
            port, f"/api/projects/{slug}/next", token, b"", request_id and f"{request_id}n"
        )
        if status == 204:
            return {"outcome": "drained", "next_ms": next_s * 1000}
        if status != 200:
            return {"outcome": "error", "where": "next", "status": status, "body": body[:200].decode(errors="replace")}
        data = json.loads(body)
        ranking = [[response["id"]] for response in data["item"]["responses"]]
        payload = json.dumps({"ranking": ranking}).encode()
        where = "submit"
        status, body, submit_s = http_post(
            port, f"/api/assignments/{data['assignment']}/judgment", token, payload, request_id and f"{request_id}s"
        )
    except (OSError, http.client.HTTPException, ValueError, KeyError, TypeError) as error:
        return {"outcome": "error", "where": where, "status": type(error).__name__, "body": str(error)[:200]}
    ended = time.perf_counter()
    if status != 201:
        return {"outcome": "error", "where": "submit", "status": status, "body": body[:200].decode(errors="replace")}
    return {
        "outcome": "ok",
        "next_ms": next_s * 1000,
        "submit_ms": submit_s * 1000,
        "round_trip_ms": (ended - started) * 1000,
        "end": time.monotonic(),
        "begin": begin,
    }


def annotator_process(port, slug, token, warmup, max_round_trips, duration, think_ms, barrier, counter, queue):
    """One simulated annotator (its own process): warm up, wait for the others, then loop.

    With think_ms > 0 it pauses 0.5x to 1.5x that long after each round trip (a reader), and
    starts at a random point of its first pause: readers do not all click at the same instant,
    whereas releasing them together from the barrier would measure one burst of 32 requests.
    """
    records, errors, drained = [], [], 0
    try:
        for _ in range(warmup):
            result = round_trip(port, slug, token)
            if result["outcome"] == "error":
                errors.append({**result, "warmup": True})
        barrier.wait(timeout=300)
        if think_ms:
            time.sleep(think_ms * random.uniform(0.0, 1.0) / 1000)
        start = time.monotonic()
        usage0 = resource.getrusage(resource.RUSAGE_SELF)
        deadline = start + duration
        while time.monotonic() < deadline:
            with counter.get_lock():
                if counter.value >= max_round_trips:
                    break
                counter.value += 1
            request_id = f"{os.getpid()}-{len(records) + len(errors)}"
            result = round_trip(port, slug, token, request_id)
            if result["outcome"] == "ok":
                records.append(
                    (
                        result["next_ms"],
                        result["submit_ms"],
                        result["round_trip_ms"],
                        result["end"],
                        request_id,
                        result["begin"],
                    )
                )
            elif result["outcome"] == "drained":
                drained += 1
                break
            else:
                errors.append(result)
            if think_ms:
                time.sleep(think_ms * random.uniform(0.5, 1.5) / 1000)
        usage1 = resource.getrusage(resource.RUSAGE_SELF)
        cpu = (usage1.ru_utime - usage0.ru_utime) + (usage1.ru_stime - usage0.ru_stime)
        queue.put({"records": records, "errors": errors, "drained": drained, "start": start, "cpu_s": cpu})
    except Exception as error:  # reported to the parent, which fails the configuration
        queue.put({"records": records, "errors": [*errors, {"outcome": "crash", "error": repr(error)}], "crash": True})


def run_configuration(
    args,
    db: Database,
    server: Server,
    slug: str,
    items: int,
    concurrency: int,
    tokens: list[str],
    *,
    phase: str,
    think_ms: float = 0.0,
    warmup: int = 0,
    round_trips: int,
    duration: float,
) -> dict:
    """One measured run of `concurrency` annotators on a running server; no reset here (the caller decides)."""
    ctx = mp.get_context("spawn")
    busy_before = wait_until_idle(args) if phase == "steady" else busy_fraction(0.5)
    warmup_each = math.ceil(warmup / concurrency) if warmup else 0
    barrier = ctx.Barrier(concurrency + 1)
    counter = ctx.Value("i", 0)
    queue = ctx.Queue()
    load_before = load_average()
    log_offset = server.log_size()
    processes = [
        ctx.Process(
            target=annotator_process,
            args=(server.port, slug, tokens[i], warmup_each, round_trips, duration, think_ms, barrier, counter, queue),
            daemon=True,
        )
        for i in range(concurrency)
    ]
    results = []
    try:
        for process in processes:
            process.start()
        pids_before = backend_pids(db)
        barrier.wait(timeout=600)
        # The measured phase starts now: CPU snapshots.
        start = time.monotonic()
        machine0 = machine_cpu_seconds()
        server0 = server.cpu_seconds()
        pg0 = {pid: proc_cpu_seconds(pid) or 0.0 for pid in pids_before}
        for _ in processes:
            results.append(queue.get(timeout=duration + 600))
        machine1 = machine_cpu_seconds()
        server1 = server.cpu_seconds()
        pids_after = backend_pids(db)
        pg1 = {pid: proc_cpu_seconds(pid) or 0.0 for pid in pids_after}
        for process in processes:
            process.join(timeout=30)
    finally:
        for process in processes:
            if process.is_alive():
                process.terminate()
    records = sorted((record for result in results for record in result["records"]), key=lambda r: r[5])
    errors = [error for result in results for error in result["errors"]]
    if any(result.get("crash") for result in results):
        raise SystemExit(f"an annotator process crashed: {errors[-1]}")
    end = max((record[3] for record in records), default=start)
    wall = max(end - start, 1e-9)
    busy = machine1[0] - machine0[0]
    client_cpu = sum(result["cpu_s"] for result in results)
    server_cpu = server1 - server0
    pg_cpu = sum(max(cpu - pg0.get(pid, 0.0), 0.0) for pid, cpu in pg1.items())
    n = max(len(records), 1)
    served = server.served()
    server_next = [served[r[4] + "n"][0] / 1000 for r in records if r[4] + "n" in served]
    server_submit = [served[r[4] + "s"][0] / 1000 for r in records if r[4] + "s" in served]
    # Each worker's first request (gunicorn): the client's and the server's time for it.
    requests = []
    for r in records:
        requests.append((r[5], "next", r[0], r[4] + "n"))
        requests.append((r[5] + r[0] / 1000, "submit", r[1], r[4] + "s"))
    worker_first = {}
    for _, kind, client_ms, request_id in sorted(requests):
        if request_id in served and served[request_id][1] not in worker_first:
            worker_first[served[request_id][1]] = {
                "request": kind,
                "client_ms": round(client_ms, 2),
                "server_ms": round(served[request_id][0] / 1000, 2),
            }
    server_log = server.log_since(log_offset)
    first = records[0] if records else None
    return {
        "db": db.kind,
        "server": server.kind,
        "phase": phase,
        "items": items,
        "project": slug,
        "concurrency": concurrency,
        "think_ms": think_ms,
        "workers": args.workers if server.kind == "gunicorn" else None,
        "round_trips": len(records),
        "warmup_round_trips": warmup_each * concurrency,
        "wall_seconds": round(wall, 3),
        "round_trips_per_second": round(len(records) / wall, 1),
        "requests_per_second": round(2 * len(records) / wall, 1),
        "round_trip_ms": summary([record[2] for record in records]),
        "next_ms": summary([record[0] for record in records]),
        "submit_ms": summary([record[1] for record in records]),
        "first_round_trip_ms": None
        if first is None
        else {"next": round(first[0], 2), "submit": round(first[1], 2), "round_trip": round(first[2], 2)},
        "server_next_ms": summary(server_next),
        "server_submit_ms": summary(server_submit),
        "worker_first_request": worker_first,
        "errors": len(errors),
        "errors_by_kind": dict(collections.Counter(f"{e.get('where')} {e.get('status')}" for e in errors)),
        "error_samples": errors[:5],
        # One line per failed request: the exception Django logs at the end of its traceback.
        "database_locked_in_server_log": sum(
            1
            for line in server_log.splitlines()
            if line.startswith("django.db.utils.OperationalError: database is locked")
        ),
        "server_errors_logged": server_log.count("Internal Server Error:"),
        "drained": sum(result["drained"] for result in results),
        "server_ready_seconds": server.ready_seconds,
        "load_average_before": load_before,
        "load_average_after": load_average(),
        "machine_busy_before": busy_before,
        "cpu": {
            "machine_busy_cores": round(busy / wall, 2),
            "client_cores": round(client_cpu / wall, 2),
            "server_cores": round(server_cpu / wall, 2),
            "postgres_backends_cores": round(pg_cpu / wall, 2),
            "other_cores": round(max(busy - client_cpu - server_cpu - pg_cpu, 0.0) / wall, 2),
            "client_ms_per_round_trip": round(client_cpu * 1000 / n, 2),
            "server_ms_per_round_trip": round(server_cpu * 1000 / n, 2),
            "postgres_ms_per_round_trip": round(pg_cpu * 1000 / n, 2),
        },
    }


def wait_until_idle(args) -> float:
    """The machine's busy share over one second; with --wait-idle, wait (bounded) until it is below it."""
    busy = busy_fraction(1.0)
    if args.wait_idle is None:
        return busy
    deadline = time.monotonic() + args.wait_max
    while busy > args.wait_idle and time.monotonic() < deadline:
        log(f"   machine {busy:.0%} busy (others' work), waiting for < {args.wait_idle:.0%} ...")
        time.sleep(4)
        busy = busy_fraction(1.0)
    return busy


def baseline(server: Server, count: int) -> dict:
    """Floor: an unauthenticated POST answered 401 by django-ninja before any SQL, new connection each."""
    for _ in range(40):  # every worker imports the URLconf and the API on its first requests
        with contextlib.suppress(OSError, http.client.HTTPException):
            http_post(server.port, "/api/projects/none/next", None, b"")
    times = []
    for _ in range(count):
        with contextlib.suppress(OSError, http.client.HTTPException):
            status, _, seconds = http_post(server.port, "/api/projects/none/next", None, b"")
            if status == 401:
                times.append(seconds * 1000)
    return {"what": "POST /api/projects/none/next without a token -> 401 (no SQL)", "ms": summary(times)}


def describe(config: dict) -> str:
    rt, nx, sb = config["round_trip_ms"], config["next_ms"], config["submit_ms"]
    return (
        f"   {config['round_trips']} round trips, {config['round_trips_per_second']} rt/s, "
        f"rt p50 {rt.get('p50')} p99 {rt.get('p99')} max {rt.get('max')} ms; next p50 {nx.get('p50')} "
        f"max {nx.get('max')}; submit p50 {sb.get('p50')} max {sb.get('max')}; errors {config['errors']} "
        f"{config['errors_by_kind'] or ''} locked(log) {config['database_locked_in_server_log']}; "
        f"load {config['load_average_before'][0]}"
    )
