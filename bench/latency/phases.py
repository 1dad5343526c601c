"""The phases of one database and server: `cold` and `steady` on a seeded project, and
`after-import` (the first requests, then more, on a database just imported into)."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from common import load_average, log

from latency.client import baseline, describe, run_configuration
from latency.databases import (
    PROJECTS_SNIPPET,
    PROMPT_TEXT,
    RESPONSE_TEXT,
    BackendRenicer,
    Database,
    create_annotators,
    manage,
    reset_project,
    run_django_snippet,
    slug_for,
)
from latency.servers import Server

IMPORT_SLUG = "bench-import"


def run_seeded(args, db: Database, kind: str, items: int, concurrency: int, tokens: list[str]) -> list[dict]:
    """`cold` then `steady` on a seeded project, on one freshly started server."""
    slug = slug_for(items)
    configs = []
    reset_project(db, slug)
    server = Server(args, db, kind)
    try:
        log(
            f"== {db.kind} / {server.label}: {items:,} items, {concurrency} annotator(s), load {os.getloadavg()[0]:.2f}"
        )
        server.start()
        with BackendRenicer(args, db):
            if "cold" in args.phases:
                config = run_configuration(
                    args,
                    db,
                    server,
                    slug,
                    items,
                    concurrency,
                    tokens,
                    phase="cold",
                    round_trips=args.cold_round_trips,
                    duration=args.duration + 120,
                )
                log("   cold (first requests of a fresh server):")
                log(describe(config))
                configs.append(config)
            if "steady" in args.phases:
                floor = baseline(server, 50 if args.quick else 200)
                for think_ms in args.think_ms:
                    reset_project(db, slug)
                    config = run_configuration(
                        args,
                        db,
                        server,
                        slug,
                        items,
                        concurrency,
                        tokens,
                        phase="steady",
                        think_ms=think_ms,
                        warmup=args.warmup,
                        round_trips=args.round_trips,
                        duration=args.duration,
                    )
                    config["floor_401_ms"] = floor["ms"]
                    log(f"   steady, think {think_ms:g} ms:")
                    log(describe(config))
                    configs.append(config)
    finally:
        server.stop()
    return configs


def write_native_jsonl(path: Path, rows: int) -> None:
    """Native rows: an id, a prompt and two responses (README: the native shape)."""
    with path.open("w", encoding="utf-8") as out:
        for n in range(1, rows + 1):
            row = {
                "id": f"imported-{n}",
                "prompt": f"Q{n}. {PROMPT_TEXT}",
                "responses": [
                    {"model": "model-1", "content": f"Answer 1 to imported-{n}. {RESPONSE_TEXT}"},
                    {"model": "model-2", "content": f"Answer 2 to imported-{n}. {RESPONSE_TEXT}"},
                ],
            }
            out.write(json.dumps(row) + "\n")


def run_after_import(args, db: Database, kind: str, jsonl: Path) -> tuple[dict, list[dict]]:
    """A fresh database, `manage.py import_items` of the native file, no maintenance, then a fresh server."""
    fresh = db.sibling("_import")
    log(f"== after import: {db.kind} / {kind}: fresh database {fresh.where}, load {os.getloadavg()[0]:.2f}")
    fresh.create(drop_first=fresh.exists())
    configs = []
    try:
        manage(args, fresh, "migrate", "--noinput", capture=True)
        run_django_snippet(args, fresh, PROJECTS_SNIPPET, {"slugs": [IMPORT_SLUG]})
        tokens = create_annotators(args, fresh, max(args.concurrency), [IMPORT_SLUG])
        load_before = load_average()
        started = time.perf_counter()
        result = manage(args, fresh, "import_items", IMPORT_SLUG, str(jsonl), "--verbosity", "1", capture=True)
        seconds = time.perf_counter() - started
        imported_at = time.monotonic()
        summary_line = (result.stdout.strip().splitlines() or [""])[-1]
        log(f"   import_items: {seconds:.1f} s: {summary_line}")
        import_facts = {
            "db": db.kind,
            "server": kind,
            "rows": args.import_items,
            "seconds": round(seconds, 1),
            "rows_per_second": round(args.import_items / seconds),
            "output": summary_line,
            "load_average_before": load_before,
        }
        for concurrency in args.concurrency:
            server = Server(args, fresh, kind)
            try:
                server.start()
                with BackendRenicer(args, fresh):
                    since = round(time.monotonic() - imported_at, 1)
                    config = run_configuration(
                        args,
                        fresh,
                        server,
                        IMPORT_SLUG,
                        args.import_items,
                        concurrency,
                        tokens,
                        phase="after-import",
                        round_trips=args.cold_round_trips,
                        duration=args.duration + 120,
                    )
                    config["seconds_since_import"] = since
                    log(f"   after import, {concurrency} annotator(s), first requests ({since} s after the import):")
                    log(describe(config))
                    configs.append(config)
                    if args.after_import_round_trips:
                        config = run_configuration(
                            args,
                            fresh,
                            server,
                            IMPORT_SLUG,
                            args.import_items,
                            concurrency,
                            tokens,
                            phase="after-import-warm",
                            round_trips=args.after_import_round_trips,
                            duration=args.duration,
                        )
                        config["seconds_since_import"] = round(time.monotonic() - imported_at, 1)
                        log("   then, the server warm, still no maintenance:")
                        log(describe(config))
                        configs.append(config)
            finally:
                server.stop()
    finally:
        if not args.keep_import_db:
            fresh.drop()
    return import_facts, configs
