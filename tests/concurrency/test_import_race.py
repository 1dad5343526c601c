"""Two imports of the same file into one project at once: one imports, the other skips."""

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.db import connections

from labeling.models import Item, Response
from labeling.services.importing import items_import
from labeling.services.parsing.readers import BATCH_ROWS
from tests.factories import ProjectFactory

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_second_import_of_the_same_file_waits_and_skips_every_row(write_jsonl):
    """The second import starts while the first has written a batch but not committed.
    Imports into one project take turns, so the second finds every item the first
    committed and skips it, instead of failing on the unique external ids."""
    project = ProjectFactory(slug="race")
    rows = [{"id": f"r-{n}", "prompt": f"Q{n}?", "responses": [f"a{n}", f"b{n}"]} for n in range(2 * BATCH_ROWS + 5)]
    path = write_jsonl(rows)
    first_wrote, second_started = threading.Event(), threading.Event()

    def first():
        def progress(done: int) -> None:
            if done == 2 * BATCH_ROWS:  # a batch is in the table, uncommitted
                first_wrote.set()
                second_started.wait(10)
                time.sleep(0.5)  # the second import is now waiting for this one's turn to end

        try:
            return items_import(project=project, path=path, progress=progress)
        finally:
            connections.close_all()

    def second():
        first_wrote.wait(10)
        second_started.set()
        try:
            return items_import(project=project, path=path)
        finally:
            connections.close_all()

    with ThreadPoolExecutor(max_workers=2) as pool:
        one, two = pool.submit(first), pool.submit(second)
        first_report, second_report = one.result(timeout=60), two.result(timeout=60)

    assert first_report.imported == len(rows)
    assert (second_report.imported, second_report.skipped_existing) == (0, len(rows))
    assert Item.objects.filter(project=project).count() == len(rows)
    assert Response.objects.filter(item__project=project).count() == 2 * len(rows)
