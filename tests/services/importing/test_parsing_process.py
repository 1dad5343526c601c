"""A large file is read in a parsing process: it stops with the import, and its death fails the import."""

import multiprocessing
import os
import signal
import struct
from multiprocessing import forkserver
from pathlib import Path

import pytest

from labeling.models import Item, Response
from labeling.services.importing import items_import
from labeling.services.parsing import process
from labeling.services.parsing.readers import BATCH_ROWS


@pytest.fixture(autouse=True)
def in_process(settings):
    settings.LABELING_IMPORT_PROCESS_MIN_BYTES = 0


def rows(count: int) -> list[dict]:
    return [
        {"id": f"p-{n}", "prompt": f"Question {n}?", "response_a": "Yes.", "response_b": "No."} for n in range(count)
    ]


def parsing_children() -> list[int]:
    """Live processes forked by multiprocessing's forkserver: the parsing processes of imports."""
    server = forkserver._forkserver._forkserver_pid
    if server is None:
        return []
    children = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue  # it ended meanwhile
            if int(fields[1]) == server and fields[0] != "Z":
                children.append(int(entry.name))
    return children


def test_a_large_import_is_read_in_another_process_and_stores_every_row(project, write_jsonl):
    path = write_jsonl(rows(2 * BATCH_ROWS + 10) + rows(5))  # the last five repeat earlier ids
    seen = []

    report = items_import(project=project, path=path, progress=lambda done: seen.append(parsing_children()))

    assert (report.rows, report.imported, report.skipped_duplicate) == (2 * BATCH_ROWS + 15, 2 * BATCH_ROWS + 10, 5)
    assert Item.objects.filter(project=project).count() == 2 * BATCH_ROWS + 10
    assert Response.objects.filter(item__project=project, position=1, content="No.").count() == 2 * BATCH_ROWS + 10
    assert any(seen), "no parsing process was running during the import"
    assert parsing_children() == []


def test_an_import_that_fails_midway_stops_its_parsing_process_and_keeps_nothing(project, write_jsonl):
    path = write_jsonl(rows(5 * BATCH_ROWS))

    def progress(done):
        if done > BATCH_ROWS:
            raise RuntimeError("cancelled by the test")

    with pytest.raises(RuntimeError, match="cancelled by the test"):
        items_import(project=project, path=path, progress=progress)

    assert Item.objects.count() == 0
    assert parsing_children() == []


def test_a_parsing_process_that_dies_fails_the_import_with_nothing_kept(project, write_jsonl):
    path = write_jsonl(rows(20 * BATCH_ROWS))

    def progress(done):
        for pid in parsing_children():  # as the kernel's OOM killer would
            os.kill(pid, signal.SIGKILL)

    with pytest.raises(
        RuntimeError, match=r"parsing process stopped unexpectedly \(exit code -9\); nothing was imported"
    ):
        items_import(project=project, path=path, progress=progress)

    assert Item.objects.count() == 0
    assert parsing_children() == []


def test_minus_one_reads_even_a_large_file_in_the_importing_process(project, write_jsonl, settings):
    settings.LABELING_IMPORT_PROCESS_MIN_BYTES = -1
    seen = []

    report = items_import(
        project=project, path=write_jsonl(rows(3 * BATCH_ROWS)), progress=lambda done: seen.append(parsing_children())
    )

    assert report.imported == 3 * BATCH_ROWS
    assert not any(seen)


def test_with_no_process_to_be_had_the_file_is_read_in_the_importing_process(project, write_jsonl, monkeypatch, caplog):
    def no_process(*args):
        raise BlockingIOError(11, "Resource temporarily unavailable")  # what fork() raises at the process limit

    monkeypatch.setattr(process, "start", no_process)

    report = items_import(project=project, path=write_jsonl(rows(3)))

    assert report.imported == 3
    assert "no child process" in caplog.text


def _die_while_sending(sender) -> None:
    """A parsing process killed half-way through writing a batch: the pipe holds a message's
    length and part of its bytes, then nothing."""
    os.write(sender.fileno(), struct.pack("!i", 1 << 20) + b"\x80\x05" * 512)
    os.kill(os.getpid(), signal.SIGKILL)


def test_a_parsing_process_killed_mid_batch_fails_the_import_with_nothing_kept(project, write_jsonl, monkeypatch):
    def start(*args):
        receiver, sender = multiprocessing.Pipe(duplex=False)
        child = multiprocessing.get_context("fork").Process(target=_die_while_sending, args=(sender,), daemon=True)
        child.start()
        sender.close()
        return receiver, child

    monkeypatch.setattr(process, "start", start)  # the kernel's OOM killer, at the worst moment

    with pytest.raises(
        RuntimeError, match=r"parsing process stopped unexpectedly \(exit code -9\); nothing was imported"
    ):
        items_import(project=project, path=write_jsonl(rows(2 * BATCH_ROWS)))

    assert Item.objects.count() == 0
