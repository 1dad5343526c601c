"""A large import's rows are read and checked in a process of its own; this module starts it,
is what it runs, and receives its batches.

Reading and checking is about half of an import's CPU time (`batches`). Done in the
interpreter that also hands the batches to the database, both take turns at one GIL and
the machine's second core sits mostly idle. For a large file a child process does this
part and sends each batch of checked items over a pipe, while the importing process
writes the batch before it. For small files, where starting a process would cost more
than it saves, the same generator runs in the caller's own thread (`parsed_batches`
decides).

Children are forked from multiprocessing's forkserver: a clean process that imports this
module once, before its first fork (a few imports: nothing here needs Django's app
registry), so each import's child starts in milliseconds. Forking the importing process
itself could copy locks held by its other threads (a web server's, a writer's) into a
child that would then wait on them forever.
"""

import logging
import multiprocessing
import os
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from django.conf import settings

from labeling.services.errors import DomainError
from labeling.services.parsing.batches import Parsed, parse_batches
from labeling.services.parsing.shapes import fields

__all__ = ["parsed_batches", "start"]

logger = logging.getLogger(__name__)

_context = multiprocessing.get_context("forkserver")
_context.set_forkserver_preload([__name__])


@contextmanager
def parsed_batches(path: Path | str, fmt: str = "auto", *, skip_invalid: bool = False) -> Iterator[Iterator[Parsed]]:
    """`parse_batches(...)`, run in a child process when the file is large.

    The child sends each batch as soon as it is checked and blocks while the pipe is
    full, so at most a batch or two wait in memory. An error reading the file is raised
    here as the child raised it; leaving the block early (the import failed) stops the
    child.
    """
    path = Path(path)
    least = settings.LABELING_IMPORT_PROCESS_MIN_BYTES  # smaller files: a process would cost more than it saves
    if least < 0 or _size(path) < least:
        yield parse_batches(path, fmt, skip_invalid=skip_invalid)
        return
    try:
        receiver, process = start(str(path), fmt, skip_invalid, fields.max_text_chars())
    except OSError as error:  # no processes left, say: parsing in this thread is slower, not wrong
        logger.warning("Parsing %s in the importing process: no child process (%s).", path.name, error)
        yield parse_batches(path, fmt, skip_invalid=skip_invalid)
        return
    try:
        yield _received(receiver, process)
    finally:
        receiver.close()
        if process.is_alive():
            process.terminate()
        process.join()


def _received(receiver, process) -> Iterator[Parsed]:
    while True:
        try:
            message = receiver.recv()
        except (EOFError, OSError):
            # EOFError: the pipe closed between messages; OSError ("got end of file during
            # message"): the child died while sending one. Either way it is gone.
            process.join()
            raise RuntimeError(
                f"The import's parsing process stopped unexpectedly (exit code {process.exitcode}); "
                "nothing was imported."
            ) from None
        if message is None:  # the child's last word: everything was sent
            return
        if isinstance(message, BaseException):
            raise message
        yield message


def _size(path: Path) -> int:
    try:
        if path.is_dir():
            return sum(entry.stat().st_size for entry in path.rglob("*") if entry.is_file())
        return os.path.getsize(path)
    except OSError:
        return 0  # missing: read_rows says so, in this thread


def start(path: str, fmt: str, skip_invalid: bool, max_text_chars: int):
    """A child parsing `path`, and the end of the pipe its batches arrive on (then `None`, or an exception)."""
    receiver, sender = _context.Pipe(duplex=False)
    process = _context.Process(
        target=_serve, args=(sender, path, fmt, skip_invalid, max_text_chars), name="import-parse", daemon=True
    )
    process.start()
    sender.close()  # the child holds the only writing end now, so its exit ends the pipe
    return receiver, process


def _serve(sender, path: str, fmt: str, skip_invalid: bool, max_text_chars: int) -> None:
    # The importing process's setting (a test's override included): the child never reads Django's settings.
    fields.use_max_text_chars(max_text_chars)
    try:
        try:
            for parsed in parse_batches(path, fmt, skip_invalid=skip_invalid):
                sender.send(parsed)
        except DomainError as error:  # an unreadable file: the importing process raises it as it is
            sender.send(error)
        except Exception:  # a bug: its traceback is the report
            sender.send(RuntimeError("Parsing the import failed:\n" + traceback.format_exc()))
        else:
            sender.send(None)
    except OSError:  # the importing process stopped listening (it failed, or was stopped)
        pass
    finally:
        sender.close()
