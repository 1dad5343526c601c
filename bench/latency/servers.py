"""The servers measured: `gunicorn feedback.wsgi` (sync workers) or `manage.py runserver --noreload`."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import HOST, children_of, free_port, proc_cpu_seconds

from latency.databases import Database, django_env


class Server:
    """`gunicorn feedback.wsgi` (sync workers) or `manage.py runserver --noreload`, from --app-dir.

    start() sends no request: it waits until the port accepts a connection, every gunicorn worker
    exists, and the server's processes have used no CPU for a second (done loading), so that the
    first request timed is the first request the server ever sees.
    """

    def __init__(self, args, db: Database, kind: str):
        self.args, self.db, self.kind = args, db, kind
        self.port = free_port()
        self.log_file = tempfile.NamedTemporaryFile(prefix=f"bench-{kind}-", suffix=".log", delete=False)  # noqa: SIM115
        # gunicorn: one line per request: the client's X-Bench-Id, the time gunicorn spent on it
        # (from reading the request to the last byte written, in microseconds) and the worker's pid.
        self.access_log = tempfile.NamedTemporaryFile(prefix="bench-access-", suffix=".log", delete=False)  # noqa: SIM115
        if kind == "gunicorn":
            self.command = [
                sys.executable,
                "-m",
                "gunicorn",
                "feedback.wsgi",
                "--workers",
                str(args.workers),
                "--bind",
                f"{HOST}:{self.port}",
                "--error-logfile",
                "-",
                "--log-level",
                "warning",
                "--access-logfile",
                self.access_log.name,
                "--access-logformat",
                "%({x-bench-id}i)s %(D)s %(p)s",
            ]
            self.label = f"gunicorn feedback.wsgi --workers {args.workers}"
        else:
            self.command = [sys.executable, str(args.app_dir / "manage.py"), "runserver", "--noreload"]
            self.command.append(f"{HOST}:{self.port}")
            self.label = "manage.py runserver --noreload"
        self.process: subprocess.Popen | None = None
        self.ready_seconds = None

    def port_open(self) -> bool:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.settimeout(1)
            return s.connect_ex((HOST, self.port)) == 0

    def start(self) -> None:
        started = time.monotonic()
        self.process = subprocess.Popen(
            self.command,
            cwd=self.args.app_dir,
            env=django_env(self.args, self.db),
            stdout=self.log_file,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 120
        history: list[tuple[float, float]] = []
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise SystemExit(f"{self.kind} exited with {self.process.returncode}:\n{self.log_tail()}")
            now, cpu = time.monotonic(), self.cpu_seconds()
            history.append((now, cpu))
            enough_workers = self.kind != "gunicorn" or len(self.worker_pids()) >= self.args.workers
            settled = [cpu0 for t0, cpu0 in history if now - t0 >= 1.0]
            if enough_workers and settled and cpu - settled[-1] < 0.02 and self.port_open():
                self.ready_seconds = round(now - started, 2)
                return
            time.sleep(0.2)
        raise SystemExit(f"{self.kind} did not settle within 120 s:\n{self.log_tail()}")

    def worker_pids(self) -> list[int]:
        return children_of(self.process.pid) if self.process else []

    def cpu_seconds(self) -> float:
        pids = [self.process.pid, *self.worker_pids()] if self.process else []
        return sum(cpu for cpu in (proc_cpu_seconds(pid) for pid in pids) if cpu is not None)

    def served(self) -> dict[str, tuple[int, str]]:
        """Request id -> (microseconds gunicorn spent on it, worker pid), for every request logged so far."""
        times = {}
        with contextlib.suppress(OSError), open(self.access_log.name) as log_lines:
            for line in log_lines:
                parts = line.split()
                if len(parts) == 3 and parts[0] != "-" and parts[1].isdigit():
                    times[parts[0]] = (int(parts[1]), parts[2].strip("<>"))
        return times

    def log_size(self) -> int:
        with contextlib.suppress(OSError):
            return os.path.getsize(self.log_file.name)
        return 0

    def log_since(self, offset: int) -> str:
        with contextlib.suppress(OSError), open(self.log_file.name, "rb") as handle:
            handle.seek(offset)
            return handle.read().decode(errors="replace")
        return ""

    def log_tail(self, lines: int = 40) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(Path(self.log_file.name).read_text(errors="replace").splitlines()[-lines:])
        return ""

    def stop(self) -> None:
        try:
            self._stop()
        finally:
            for file in (self.log_file, self.access_log):
                file.close()
                with contextlib.suppress(OSError):
                    os.unlink(file.name)

    def _stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        workers = self.worker_pids()
        self.process.terminate()
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=5)
            for pid in workers:
                with contextlib.suppress(OSError):
                    os.kill(pid, 9)
