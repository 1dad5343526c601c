"""The results of import_export.py: memory growth, the targets, cProfile summaries, the markdown
file, and the rows a partial run keeps from the results before it."""

import pstats
from pathlib import Path

from bulk.data import PARQUET_ROW_GROUP
from bulk.runs import outcome

BASELINE_ROWS = 1_000
TARGET_IMPORT_PER_S = 50_000
TARGET_EXPORT_PER_S = 100_000
TARGET_GROWTH_MB = 500
VERDICTS = {True: "met", False: "NOT met", None: "not measured"}
ORDER = {"sqlite": 0, "postgres": 1, "jsonl": 0, "parquet": 1, "hf": 0}

# cProfile parts: (label, [(file suffix, function)]), cumulative time. A large file is read and
# checked in a parsing process and the rows are written by a thread, neither of which cProfile
# sees: their parts show as the main thread's waits.
IMPORT_PARTS = [
    ("whole command (Django start-up included)", [("management/__init__.py", "execute_from_command_line")]),
    ("count_rows: a first pass over the file for the progress bar", [("parsing/readers.py", "count_rows")]),
    ("reading and checking rows in this process (a small file)", [("parsing/batches.py", "parse_batches")]),
    ("  read + parse rows (json / Arrow)", [("parsing/readers.py", "read_rows")]),
    ("  detect shape + validate + normalize", [("parsing/batches.py", "_normalize_row")]),
    ("waiting for the parsing process's batches (a large file)", [("parsing/process.py", "_received")]),
    ("_write_batch (existing ids, then the batch to the writing thread)", [("importing/__init__.py", "_write_batch")]),
    ("  waiting for the writing thread", [("importing/writer.py", "wait")]),
    ("commit", [("backends/base/base.py", "commit")]),
    ("tqdm progress bar", [("tqdm/std.py", "update")]),
]

EXPORT_PARTS = [
    ("whole command (Django start-up included)", [("management/__init__.py", "execute_from_command_line")]),
    ("rows to the save_to_disk layout (_saved, everything below)", [("exporting/writing.py", "_saved")]),
    ("  the read path (chunks: Arrow record batches, item order)", [("exporting/reading.py", "chunks")]),
    ("    waiting for the readers' threads or process", [("db/export_readers.py", "_received")]),
    ("  waiting for the writing thread", [("futures/_base.py", "result")]),
    ("  one-vote rows built by Arrow", [("exporting/columnar.py", "one_vote_rows")]),
    ("  general path (rows.general)", [("exporting/rows.py", "general")]),
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


# --------------------------------------------------------------------------- the rows kept


def carried_over(previous: dict | None, measured: set[tuple[str, str]]) -> tuple[list[dict], dict]:
    """The runs of the previous results that this run does not measure again, and their sources.

    One results file holds the latest figure of every kind: a run with `--only`,
    `--skip-sqlite` or `--skip-postgres` replaces the (operation, database) pairs it measures
    and keeps the others, each with the run (time, machine, commit) that measured it.
    """
    if not previous:
        return [], {}
    sources = dict(previous.get("sources") or {})
    default = previous.get("started_at") or "an earlier run"
    kept = []
    for run in previous.get("runs", []):
        if (run["operation"], run["backend"]) in measured:
            continue
        if run.get("source") not in sources:  # written before runs named their source
            run["source"] = default
            sources[default] = {"machine": previous["machine"], "stats_first": previous.get("stats_first", False)}
        kept.append(run)
    used = {run["source"] for run in kept}
    return kept, {key: source for key, source in sources.items() if key in used}


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


def machine_line(machine: dict) -> str:
    pg = f", {machine['postgresql']}" if machine.get("postgresql") else ""
    return (
        f"{machine['cpu_model']}, {machine['cores']} cores, {machine['ram_gb']} GB RAM, Linux {machine['kernel']}; "
        f"Python {machine['python']}, Django {machine['django']}, datasets {machine['datasets']}, "
        f"pyarrow {machine['pyarrow']}, SQLite {machine['sqlite']}{pg}"
    )


def _machine_sentence(machine: dict) -> str:
    busy = machine["cpu_busy_fraction_at_start"]
    return (
        f"Machine: {machine_line(machine)}. Load average at start {machine['load_average_at_start']}, "
        f"CPU busy {busy:.0%} of the machine before the first run"
        + (": other work was sharing it." if busy > 0.2 else ".")
    )


def _runs_header(report: dict) -> list[str]:
    sources = report.get("sources") or {}
    used = [key for key in sorted(sources, reverse=True) if any(r.get("source") == key for r in report["runs"])]
    if len(used) <= 1:
        key = used[0] if used else report.get("started_at")
        machine = sources[key]["machine"] if used else report["machine"]
        run = f"Run {key}, commit {machine.get('git_commit')}. " if key else ""
        return [run + _machine_sentence(machine)]
    lines = [
        "The rows come from more than one run: a run with `--only`, `--skip-sqlite` or `--skip-postgres` "
        "replaces the rows it measures and keeps the others.",
        "",
    ]
    for key in used:
        kinds = sorted({f"{r['operation']} {r['backend']}" for r in report["runs"] if r.get("source") == key})
        machine = sources[key]["machine"]
        lines.append(
            f"- {', '.join(kinds)}: run {key}, commit {machine.get('git_commit')}. {_machine_sentence(machine)}"
        )
    return lines


def _stats_sentence(report: dict, exports: list[dict]) -> str:
    sources = report.get("sources") or {}
    first = {
        r["backend"]: sources.get(r.get("source"), {}).get("stats_first", report.get("stats_first")) for r in exports
    }
    if all(first.values()):
        return (
            "The project's stats were computed and stored before each export (untimed, `--stats-first`), "
            "so the dataset card reads them."
        )
    if not any(first.values()):
        return "The dataset card computes the project's stats inside the timed run."
    stored = ", ".join(backend for backend, value in first.items() if value)
    computed = ", ".join(backend for backend, value in first.items() if not value)
    return (
        f"The project's stats were stored before each export on {stored} (untimed, `--stats-first`), so the "
        f"dataset card reads them; on {computed} the card computes them inside the timed run."
    )


def _imports_section(imports: list[dict]) -> list[str]:
    return [
        "## Import (`manage.py import_items`, flat pairs)",
        "",
        "| database | format | rows | file MB | seconds | pairs/s | peak RSS MB | growth MB | peak anon MB | "
        "anon growth MB | CPU s | load before | busy cores | DB MB |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
        *(row_line(r, "rows_per_s", r.get("file_mb"), r.get("database_mb")) for r in imports),
        "",
    ]


def _exports_section(report: dict, exports: list[dict]) -> list[str]:
    reused = report.get("export_database_reused") or {}
    reused = reused if isinstance(reused, dict) else {}  # a bool in results written before per-database seeding
    seconds = report.get("export_seeding_seconds") or {}
    seeding = "; ".join(
        f"{backend}: earlier, --keep-db reused the projects of a kept database"
        if reused.get(backend)
        else f"{backend}: " + ", ".join(f"{int(k):,}: {v} s" for k, v in seconds[backend].items())
        for backend in dict.fromkeys([*seconds, *reused])
        if reused.get(backend) or backend in seconds
    )
    return [
        "## Export (`manage.py export_preferences SLUG --out DIR`, hf, default config)",
        "",
        f"The same rows seeded with SQL into each database, overlap 1, one exported pair per judgment "
        f"(seeding took {seeding}). " + _stats_sentence(report, exports),
        "",
        "| database | format | judgments | seconds | judgments/s | peak RSS MB | growth MB | peak anon MB | "
        "anon growth MB | CPU s | load before | busy cores | output MB |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
        *(row_line(r, "judgments_per_s", None, r.get("output_mb"), file_column=False) for r in exports),
        "",
    ]


def _targets_section(report: dict) -> list[str]:
    if not report["targets"]:
        return []
    return [
        f"## Targets at {report['largest']:,} rows",
        "",
        "| run | target | figure | met |",
        "| --- | --- | ---: | --- |",
        *(f"| {v['run']} | {v['target']} | {v['figure']} | {VERDICTS[v['met']]} |" for v in report["targets"]),
        "",
        "For scale: Label Studio 1.23 on this machine imports about 5,000 tasks/s (979 MB at 100,000) and "
        "exports about 850 annotated tasks/s.",
        "",
    ]


def _profile_section(name: str, profile: dict) -> list[str]:
    total = profile["total_seconds"] or 1
    return [
        f"## Where the time goes: {name}",
        "",
        f"cProfile, taken {profile.get('taken', '?')} (load average before {profile.get('load_average_before')}): "
        f"{profile['total_seconds']} s under the profiler, which roughly doubles the cost of Python-heavy "
        "code; read the shares, not the seconds.",
        "",
        "| part (cumulative, nested parts are included in their parent) | seconds | share |",
        "| --- | ---: | ---: |",
        *(
            f"| {p['part'].replace('  ', '&nbsp;&nbsp;')} | {p['seconds']} | {p['seconds'] / total:.0%} |"
            for p in profile["parts"]
        ),
        "",
        "| function (own time) | calls | seconds |",
        "| --- | ---: | ---: |",
        *(f"| `{f['function']}` | {f['calls']:,} | {f['own_seconds']} |" for f in profile["top_own_time"]),
        "",
    ]


def markdown(report: dict) -> str:
    machine = report["machine"]
    lines = [
        "# Import and export: throughput and peak memory",
        "",
        *_runs_header(report),
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
    imports = sorted(
        (r for r in report["runs"] if r["operation"] == "import"),
        key=lambda r: (r["rows"], ORDER[r["backend"]], ORDER[r["format"]]),
    )
    exports = sorted(
        (r for r in report["runs"] if r["operation"] == "export"), key=lambda r: (ORDER[r["backend"]], r["rows"])
    )
    if imports:
        lines += _imports_section(imports)
    if exports:
        lines += _exports_section(report, exports)
    lines += _targets_section(report)
    for name, profile in report.get("profiles", {}).items():
        lines += _profile_section(name, profile)
    return "\n".join(lines)


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
