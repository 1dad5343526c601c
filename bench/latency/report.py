"""The report of a run: the targets judged, the markdown files and the summary printed at the end."""

from __future__ import annotations

from common import log

# Targets from the issues (this 2-core machine).
TARGET_P50_ONE_ANNOTATOR_MS = 8.5
TARGET_P99_MS = 50.0
TARGET_SCALE_RATIO = 1.5


def evaluate_targets(configs: list[dict]) -> list[dict]:
    """The issue's targets, judged on what this run measured (each configuration on its own)."""
    targets = []
    for c in configs:
        where = f"{c['db']}, {c['server']}, {c['items']:,} items, {c['concurrency']} annotator(s)"
        rt = c["round_trip_ms"]
        if rt.get("n", 0) == 0:
            continue
        if c["phase"] in ("steady", "after-import-warm") and c["think_ms"] == 0 and c["concurrency"] == 1:
            targets.append(
                {
                    "target": f"{c['phase']}: {where}: round trip p50 <= {TARGET_P50_ONE_ANNOTATOR_MS} ms",
                    "measured": f"{rt['p50']:.2f} ms",
                    "met": rt["p50"] <= TARGET_P50_ONE_ANNOTATOR_MS,
                }
            )
        if c["server"] == "gunicorn" and c["concurrency"] in (1, 8) and c["think_ms"] == 0:
            first = " (first requests included)" if c["phase"] in ("cold", "after-import") else ""
            targets.append(
                {
                    "target": f"{c['phase']}: {where}: round trip p99 <= {TARGET_P99_MS:g} ms{first}",
                    "measured": f"{rt['p99']:.2f} ms (max {rt['max']:.2f})",
                    "met": rt["p99"] <= TARGET_P99_MS,
                }
            )
        if c["errors"]:
            targets.append(
                {
                    "target": f"{c['phase']}: {where}: no errors",
                    "measured": f"{c['errors']} ({c['errors_by_kind']})",
                    "met": False,
                }
            )
    steady = [c for c in configs if c["phase"] == "steady" and c["think_ms"] == 0]
    sizes = sorted({c["items"] for c in steady})
    if len(sizes) > 1:
        for key in sorted({(c["db"], c["server"], c["concurrency"]) for c in steady}):

            def find(items, key=key):
                return next(
                    (c for c in steady if (c["db"], c["server"], c["concurrency"]) == key and c["items"] == items), None
                )

            small, large = find(sizes[0]), find(sizes[-1])
            if small and large and small["round_trip_ms"].get("p50") and large["round_trip_ms"].get("p50"):
                ratio = large["round_trip_ms"]["p50"] / small["round_trip_ms"]["p50"]
                targets.append(
                    {
                        "target": f"steady: {key[0]}, {key[1]}, {key[2]} annotator(s): p50 at {sizes[-1]:,} items "
                        f"<= {TARGET_SCALE_RATIO}x p50 at {sizes[0]:,}",
                        "measured": f"{ratio:.2f}x ({large['round_trip_ms']['p50']:.2f} / "
                        f"{small['round_trip_ms']['p50']:.2f} ms)",
                        "met": ratio <= TARGET_SCALE_RATIO,
                    }
                )
    return targets


def fmt(value) -> str:
    if value is None:
        return "-"
    return f"{value:.0f}" if value >= 1000 else f"{value:.1f}" if value >= 100 else f"{value:.2f}"


def row(cells) -> str:
    return "| " + " | ".join(str(cell) for cell in cells) + " |"


FIRST_COLUMNS = [
    *("db", "server", "items", "annotators", "phase", "s after import", "n", "1st rt", "1st next"),
    *("rt p50", "rt p99", "rt max", "next p50", "next max", "submit p50", "submit max"),
    *("workers' 1st request, max (server)", "errors", "locked (log)", "load before"),
]
STEADY_COLUMNS = [
    *("db", "server", "items", "annotators", "phase", "think ms", "n", "rt/s", "rt p50", "rt p95", "rt p99"),
    *("next p50", "next p99", "submit p50", "submit p99", "server next p50", "server submit p50"),
    *("errors", "locked (log)", "load before", "busy before"),
]
CPU_COLUMNS = [
    *("db", "server", "items", "annotators", "phase", "think ms", "busy", "client", "server", "pg", "other"),
    *("client ms/rt", "server ms/rt", "pg ms/rt"),
]
PROFILE_COLUMNS = [
    "items",
    "request",
    "in-process",
    "DB wait",
    "Python",
    "SQL statements",
    "BEGIN/COMMIT",
    "DB round trips",
]
FIRST_PHASES = ("cold", "after-import")


def first_row(c: dict) -> list:
    rt, nx, sb, first = c["round_trip_ms"], c["next_ms"], c["submit_ms"], c["first_round_trip_ms"] or {}
    workers = [w["client_ms"] for w in c["worker_first_request"].values()]
    workers_server = [w["server_ms"] for w in c["worker_first_request"].values()]
    worker_text = f"{fmt(max(workers))} ({fmt(max(workers_server))}), {len(workers)} workers" if workers else "-"
    return [
        *(c["db"], c["server"], f"{c['items']:,}", c["concurrency"], c["phase"], c.get("seconds_since_import", "-")),
        *(c["round_trips"], fmt(first.get("round_trip")), fmt(first.get("next"))),
        *(fmt(rt.get("p50")), fmt(rt.get("p99")), fmt(rt.get("max")), fmt(nx.get("p50")), fmt(nx.get("max"))),
        *(fmt(sb.get("p50")), fmt(sb.get("max")), worker_text, c["errors"], c["database_locked_in_server_log"]),
        c["load_average_before"][0],
    ]


def steady_row(c: dict) -> list:
    rt, nx, sb = c["round_trip_ms"], c["next_ms"], c["submit_ms"]
    return [
        *(c["db"], c["server"], f"{c['items']:,}", c["concurrency"], c["phase"], f"{c['think_ms']:g}"),
        *(f"{c['round_trips']:,}", f"{c['round_trips_per_second']:.1f}"),
        *(fmt(rt.get(k)) for k in ("p50", "p95", "p99")),
        *(fmt(nx.get("p50")), fmt(nx.get("p99")), fmt(sb.get("p50")), fmt(sb.get("p99"))),
        *(fmt(c["server_next_ms"].get("p50")), fmt(c["server_submit_ms"].get("p50"))),
        *(c["errors"], c["database_locked_in_server_log"], c["load_average_before"][0]),
        f"{c['machine_busy_before']:.0%}",
    ]


def markdown(report: dict) -> str:
    m = report["machine"]
    pg_settings = ", ".join(f"{k}={v}" for k, v in m["postgresql_settings"].items())
    code = report["code"]["served"]
    configs = report["configurations"]
    lines = [
        "# API latency: `next` + `submit` round trips",
        "",
        f"Run {report['started_at']} ({report['mode']}, {report['duration_seconds']:.0f} s): `{report['command']}`.",
        "",
        f"- Code served: {code.get('app_dir')} at commit {code.get('commit')} ({code.get('subject')})"
        f"{', work tree dirty' if code.get('work_tree_dirty') else ', clean work tree'}"
        f"{' (uncommitted app changes)' if code.get('uncommitted_app_changes') else ''}, "
        f"fingerprint {code.get('fingerprint')}.",
        f"- Machine: {m['cpu_model']}, {m['cores']} cores, {m['ram_gb']} GB RAM, Linux {m['kernel']}.",
        f"- Software: Python {m['python']}, Django {m['django']}, gunicorn {m['gunicorn']}, psycopg {m['psycopg']}, "
        f"SQLite {m['sqlite']}, {(m['postgresql'] or 'PostgreSQL not reached').split(' on ')[0]} ({pg_settings}).",
        f"- Load average at start: {' / '.join(str(x) for x in m['load_average_at_start'])} (1/5/15 min); "
        f"machine busy in the second before: {m['cpu_busy_fraction_at_start']:.0%}; at the end: "
        f"{' / '.join(str(x) for x in report['load_average_at_end'])}. Each row below has the 1-min load average "
        "before it.",
        f"- Servers: {'; '.join(f'`{s}`' for s in report['server']['commands'])}; DEBUG=0, "
        f"DB_CONN_MAX_AGE={report['server']['conn_max_age']}. Databases: {report['database']['description']}.",
        f"- Client: {report['client']}.",
        *(
            [
                f"- Priority: the benchmark, the server and the PostgreSQL backends serving it ran at nice "
                f"{report['server']['nice']}, ahead of other work on the machine."
            ]
            if report["server"].get("nice")
            else []
        ),
        f"- Phases: {report['budget']['note']}",
        "",
        "Milliseconds, measured by the client (connect, request, response, close); rt = next + submit.",
    ]
    first = [c for c in configs if c["phase"] in FIRST_PHASES]
    if first:
        lines += [
            "",
            "## First requests: a server just started (`cold`), and right after an import (`after-import`)",
            "",
            f"The first {report['budget']['cold_round_trips']} round trips of a server that has received no "
            "request, the annotators released together, no warm-up. `1st`: the first round trip begun. "
            "`workers' 1st request`: the slowest first request any gunicorn worker served, client time "
            "(gunicorn's own time in brackets).",
            "",
            row(FIRST_COLUMNS),
            row(["---"] * 5 + ["---:"] * (len(FIRST_COLUMNS) - 5)),
            *(row(first_row(c)) for c in first),
        ]
    steady = [c for c in configs if c["phase"] not in FIRST_PHASES]
    if steady:
        lines += [
            "",
            "## Warm: `steady` (after the reset, maintenance and warm-up) and `after-import-warm` "
            "(after the first requests, no maintenance)",
            "",
            "`server` columns: the time gunicorn's access log gives for the same requests (reading the request "
            "to writing the response); the difference is connecting, queueing for a worker and the client's "
            "own scheduling.",
            "",
            row(STEADY_COLUMNS),
            row(["---"] * 5 + ["---:"] * (len(STEADY_COLUMNS) - 5)),
            *(row(steady_row(c)) for c in steady),
        ]
    if report["imports"]:
        lines += [
            "",
            "## Imports (`manage.py import_items`, native JSON Lines, into a fresh database)",
            "",
            row(["db", "server after", "rows", "seconds", "rows/s", "load before", "output"]),
            row(["---", "---", "---:", "---:", "---:", "---:", "---"]),
        ]
        for imp in report["imports"]:
            lines.append(
                row(
                    [
                        *(imp["db"], imp["server"], f"{imp['rows']:,}", imp["seconds"], f"{imp['rows_per_second']:,}"),
                        *(imp["load_average_before"][0], imp["output"]),
                    ]
                )
            )
    errors = [c for c in configs if c["errors"] or c["database_locked_in_server_log"]]
    if errors:
        lines += ["", "## Errors", ""]
        for c in errors:
            samples = "; ".join(
                f"{e.get('where')} {e.get('status')}: {str(e.get('body', e.get('error', '')))[:80]!r}"
                for e in c["error_samples"][:2]
            )
            lines.append(
                f"- {c['db']}, {c['server']}, {c['items']:,} items, {c['concurrency']} annotator(s), {c['phase']}: "
                f"{c['errors']} errors {c['errors_by_kind']}, 'database is locked' "
                f"{c['database_locked_in_server_log']} times in the server log. {samples}"
            )
    lines += [
        "",
        "CPU during each measured phase, in cores (of 2) and ms of CPU per round trip. `server` counts gunicorn "
        "(master and workers) or runserver; `pg` the backends serving the benchmark database; `other` is "
        "everything else on the machine (other work running at the same time).",
        "",
        row(CPU_COLUMNS),
        row(["---"] * 5 + ["---:"] * (len(CPU_COLUMNS) - 5)),
    ]
    for c in configs:
        cpu = c["cpu"]
        lines.append(
            row(
                [
                    *(c["db"], c["server"], f"{c['items']:,}", c["concurrency"], c["phase"], f"{c['think_ms']:g}"),
                    *(cpu["machine_busy_cores"], cpu["client_cores"]),
                    *(cpu["server_cores"], cpu["postgres_backends_cores"], cpu["other_cores"]),
                    *(cpu["client_ms_per_round_trip"], cpu["server_ms_per_round_trip"]),
                    cpu["postgres_ms_per_round_trip"],
                ]
            )
        )
    floors = [c for c in configs if c.get("floor_401_ms")]
    if floors:
        lines += [
            "",
            "Floor over HTTP, same server, new connection each, POST without a token -> 401 (no SQL), p50 ms: "
            + ", ".join(
                f"{c['db']}/{c['server']}/{c['items']:,}/{c['concurrency']}: {fmt(c['floor_401_ms'].get('p50'))}"
                for c in floors
                if c["think_ms"] == report["budget"]["think_ms"][0]
            )
            + ".",
        ]
    lines += ["", "## Targets", ""]
    if report["targets"]:
        lines += [row(["target", "measured", "met"]), row(["---"] * 3)]
    for target in report["targets"]:
        lines.append(row([target["target"], target["measured"], "yes" if target["met"] else "**no**"]))
    profiles = report.get("profile") or {}
    if profiles:
        lines += [
            "",
            "## Where the time goes",
            "",
            "In-process (Django test client through the full middleware stack, same database, one annotator, "
            "no profiler), p50 in ms. DB = SQL statements plus BEGIN/COMMIT, waiting on PostgreSQL.",
            "",
            row(PROFILE_COLUMNS),
            row(["---:", "---"] + ["---:"] * (len(PROFILE_COLUMNS) - 2)),
        ]
        for slug, prof in profiles.items():
            for kind in ("next", "submit"):
                p = prof[kind]
                lines.append(
                    row(
                        [
                            *(slug.removeprefix("bench-"), kind, fmt(p["in_process_ms"]["p50"])),
                            *(fmt(p["db_wait_ms_p50"]), fmt(p["python_ms_p50"]), f"{p['queries_per_request']:g}"),
                            *(len(p["commands"]), f"{p['db_round_trips_per_request']:g}"),
                        ]
                    )
                )
        first = next(iter(profiles.values()))
        lines += ["", "Phases, p50 ms (total, of which SQL):", ""]
        lines += [row(["items", "request", "phase", "total", "SQL"]), row(["---:", "---", "---", "---:", "---:"])]
        for slug, prof in profiles.items():
            for kind in ("next", "submit"):
                for name, phase in prof[kind]["phases"].items():
                    lines.append(
                        row(
                            [
                                slug.removeprefix("bench-"),
                                kind,
                                name,
                                fmt(phase["total_ms_p50"]),
                                fmt(phase["sql_ms_p50"]),
                            ]
                        )
                    )
        floor = first["floor_401_in_process_ms"]
        lines += [
            "",
            f"In-process floor (401 without a token, no SQL): p50 {fmt(floor['p50'])} ms.",
            "",
            f"Query lists, EXPLAIN plans and cProfile output: `{report['out']}_profile.md` beside this file.",
        ]
    if report.get("notes"):
        lines += ["", "## Notes", ""] + [f"- {note}" for note in report["notes"]]
    return "\n".join(lines) + "\n"


def profile_markdown(report: dict) -> str:
    lines = ["# API latency: in-process profile of `next` + `submit`", ""]
    for slug, prof in (report.get("profile") or {}).items():
        lines += [f"## {slug} ({prof['rounds']} round trips)", ""]
        for kind in ("next", "submit"):
            p = prof[kind]
            lines += [
                f"### {kind}: {p['queries_per_request']:g} statements + {' '.join(p['commands'])}; "
                f"in-process p50 {fmt(p['in_process_ms']['p50'])} ms, DB wait p50 {fmt(p['db_wait_ms_p50'])} ms",
                "",
                row(["per request", "mean ms", "p50 ms", "SQL"]),
                row(["---:", "---:", "---:", "---"]),
            ]
            for q in p["queries"]:
                sql = q["sql"].replace("|", "\\|").replace("\n", " ")
                lines.append(row([f"{q['per_request']:g}", f"{q['mean_ms']:.3f}", f"{q['p50_ms']:.3f}", f"`{sql}`"]))
            lines.append("")
        lines += ["### EXPLAIN (ANALYZE, BUFFERS) of the SELECTs of one `next`", ""]
        for plan in prof["explain_next"]:
            lines += ["```sql", plan["sql"], "```", "```", plan["plan"], "```", ""]
        lines += [f"### cProfile, {prof['cprofile_round_trips']} round trips", "", "```", prof["cprofile"], "```", ""]
    return "\n".join(lines) + "\n"


def print_summary(report: dict) -> None:
    m = report["machine"]
    code = report["code"]["served"]
    log("")
    log("== machine")
    log(f"   {m['cpu_model']}, {m['cores']} cores, {m['ram_gb']} GB RAM, Linux {m['kernel']}")
    log(f"   load average at start {m['load_average_at_start']}, busy {m['cpu_busy_fraction_at_start']:.0%}")
    log(f"   load average at end {report['load_average_at_end']}")
    log(f"   top processes at start: {m['top_processes_at_start'][:4]}")
    log(f"   Python {m['python']}, Django {m['django']}, gunicorn {m['gunicorn']}, psycopg {m['psycopg']}")
    log(f"   SQLite {m['sqlite']}; {m['postgresql']}")
    log(f"   {m['postgresql_settings']}")
    log(
        f"   code served: {code.get('app_dir')} {code.get('commit')} "
        f"({'dirty' if code.get('work_tree_dirty') else 'clean'} work tree)"
    )
    log("")
    log("== results, ms (client time; rt = next + submit; each request on a new connection)")
    header = f"{'db':<10} {'server':<9} {'phase':<17} {'items':>9} {'ann':>3} {'n':>5} {'rt/s':>6} | "
    header += f"{'1st rt':>7} | {'rt p50':>7} {'p99':>7} {'max':>7} | {'next50':>7} {'p99':>7} {'max':>7} | "
    header += f"{'sub50':>7} {'p99':>7} {'max':>7} | err lock load"
    log(header)
    for c in report["configurations"]:
        rt, nx, sb = c["round_trip_ms"], c["next_ms"], c["submit_ms"]
        phase = c["phase"] + (f"/{c['think_ms']:g}" if c["think_ms"] else "")
        log(
            f"{c['db']:<10} {c['server']:<9} {phase:<17} {c['items']:>9,} {c['concurrency']:>3} {c['round_trips']:>5} "
            f"{c['round_trips_per_second']:>6.1f} | {fmt((c['first_round_trip_ms'] or {}).get('round_trip')):>7} | "
            + " | ".join(" ".join(f"{fmt(d.get(k)):>7}" for k in ("p50", "p99", "max")) for d in (rt, nx, sb))
            + f" | {c['errors']:>3} {c['database_locked_in_server_log']:>4} {c['load_average_before'][0]}"
        )
    for imp in report["imports"]:
        log(f"   import ({imp['db']}): {imp['rows']:,} rows in {imp['seconds']} s: {imp['output']}")
    log("")
    log("== targets")
    for target in report["targets"]:
        log(f"   [{'MET' if target['met'] else 'NOT MET'}] {target['target']}: {target['measured']}")
    for slug, prof in (report.get("profile") or {}).items():
        log("")
        log(f"== in-process (PostgreSQL), {slug}")
        for kind in ("next", "submit"):
            p = prof[kind]
            log(
                f"   {kind}: p50 {fmt(p['in_process_ms']['p50'])} ms = DB wait {fmt(p['db_wait_ms_p50'])} "
                f"+ Python {fmt(p['python_ms_p50'])}; {p['queries_per_request']:g} statements "
                f"+ {len(p['commands'])} BEGIN/COMMIT"
            )
            for name, phase in p["phases"].items():
                log(f"      {name:<40} {fmt(phase['total_ms_p50']):>7} ms (SQL {fmt(phase['sql_ms_p50'])})")
