"""The child process that reads and checks a large import's rows (`importing.parsing`).

Children are forked from multiprocessing's forkserver: a clean process that imports this
module once, before its first fork, and so sets Django up once rather than once per
import. Forking the importing process itself could copy locks held by its other
threads (a web server's, a writer's) into a child that would wait on them forever.
"""

import multiprocessing
import traceback

import django
from django.apps import apps

if not apps.ready:  # the forkserver (the importing process has long been set up)
    django.setup()

from labeling.services.errors import DomainError  # after setup: the forkserver imports this module first
from labeling.services.importing import parsing
from labeling.services.importing.shapes import fields

_context = multiprocessing.get_context("forkserver")
_context.set_forkserver_preload([__name__])


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
    fields.use_max_text_chars(max_text_chars)  # the importing process's setting, a test's override included
    try:
        try:
            for parsed in parsing.parse_batches(path, fmt, skip_invalid=skip_invalid):
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
