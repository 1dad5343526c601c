"""The child process that reads and checks a large import's rows (`batches.parsed_batches`).

Children are forked from multiprocessing's forkserver: a clean process that imports this
module once, before its first fork (a few imports: nothing here needs Django's app
registry), so each import's child starts in milliseconds. Forking the importing process
itself could copy locks held by its other threads (a web server's, a writer's) into a
child that would then wait on them forever.
"""

import multiprocessing
import traceback

from labeling.services.errors import DomainError
from labeling.services.parsing import batches
from labeling.services.parsing.shapes import fields

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
    # The importing process's setting (a test's override included): the child never reads Django's settings.
    fields.use_max_text_chars(max_text_chars)
    try:
        try:
            for parsed in batches.parse_batches(path, fmt, skip_invalid=skip_invalid):
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
