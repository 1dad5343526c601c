"""Write an import's batches in a thread of their own, in file order, on the import's connection.

The statements themselves (COPY on PostgreSQL, multi-row INSERTs on SQLite, the lock and
the session settings) are the data layer's (`labeling.db.imports`); here are the rules
they serve: imports into a project take turns, a project that had no items needs no
lookups, new items get the project's initial target, and nothing else uses the
connection while a batch is on its way.
"""

from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import ExitStack, contextmanager, suppress

from django.db import connection

from labeling.db import imports
from labeling.models import Item, Project, Response
from labeling.services.parsing.batches import ItemBatch

__all__ = ["BatchWriter"]


class BatchWriter:
    """Checks and writes the batches of one import, in file order, on the import's connection.

    A batch is written in a thread while the caller takes in the next one (from the
    parsing process for a large file, or parsing it in this thread for a small one): on
    PostgreSQL the server loads rows meanwhile; on SQLite the engine runs without the
    GIL while it inserts them. A connection serves one command at a time, so every use
    of it waits for the batch in flight first; so does leaving the `with` block, before
    the session is set back and the transaction commits or rolls back.
    """

    def __init__(self, project: Project):
        self.project = project
        self._in_flight: Future | None = None

    def __enter__(self) -> "BatchWriter":
        with ExitStack() as stack:
            self._was_empty = _lock_for_import(self.project)
            pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="import-write")
            stack.callback(pool.shutdown)
            stack.enter_context(imports.bulk_load(Item, Response))
            stack.enter_context(self._last_batch_written())
            self._pool, self._open = pool, stack.pop_all()
        return self

    def __exit__(self, *exc_info) -> bool | None:
        return self._open.__exit__(*exc_info)

    @contextmanager
    def _last_batch_written(self):
        try:
            yield
        except BaseException:
            with suppress(Exception):  # the first error is the one to report
                self.wait()
            raise
        self.wait()

    def wait(self) -> None:
        """Until the batch in flight is written; its error, if any, is raised here."""
        if self._in_flight is not None:
            in_flight, self._in_flight = self._in_flight, None
            with connection.wrap_database_errors:  # psycopg's errors become Django's, as on any query
                in_flight.result()

    def existing(self, external_ids: list[str]) -> set[str]:
        """Which of `external_ids` the project held before this import (its own repeats are the caller's)."""
        if self._was_empty:  # nothing to find; on PostgreSQL the lookups were an eighth of the server's work
            return set()
        self.wait()
        return imports.existing_external_ids(project_id=self.project.pk, external_ids=external_ids)

    def write(self, batch: ItemBatch) -> None:
        self.wait()
        insert = imports.batch_insert(
            items=batch.items,
            responses=batch.responses,
            item_shared={"project_id": self.project.pk, "target": self.project.initial_target},
        )
        self._in_flight = self._pool.submit(insert)


def _lock_for_import(project: Project) -> bool:
    """Take the project's import lock until the transaction ends; whether the project then has no items.

    Imports into one project run one at a time, so what one finds in the project stays
    true until it commits: an item another import adds meanwhile cannot turn a skip into
    a unique-constraint error.
    """
    imports.import_lock(project_id=project.pk)
    return not Item.objects.filter(project=project).exists()
