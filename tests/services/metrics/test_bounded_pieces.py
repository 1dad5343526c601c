"""The stats read and compute in bounded pieces: the figures do not depend on the pieces."""

import random
import tracemalloc

import krippendorff
import numpy as np
import pytest

from labeling.db import chunks
from labeling.db.chunks import row_chunks
from labeling.models import Item, Response
from labeling.services.assignment import assignment_next
from labeling.services.importing import items_import
from labeling.services.judgments import judgment_submit
from labeling.services.metrics import agreement, project_stats
from labeling.services.metrics.agreement import NOMINAL_DOMAIN, ORDINAL_DOMAIN, alpha_of_counts
from tests.factories import ItemFactory, MembershipFactory, ProjectFactory


def test_rows_come_in_chunks_of_at_most_the_chunk_size(db):
    project = ProjectFactory(slug="rows")
    ItemFactory.create_batch(10, project=project)
    Response.objects.filter(item__project=project, position=1).update(model='comma, "quote"\nnew line')
    queryset = Response.objects.filter(item__project=project).order_by("id").values_list("id", "item_id", "model")

    chunks = list(row_chunks(queryset, ["id", "item", "model"], text=("model",), chunk_rows=6))

    assert sorted(len(chunk) for chunk in chunks) == [2, 6, 6, 6]
    rows = sorted(tuple(row) for chunk in chunks for row in chunk.itertuples(index=False))
    assert rows == list(queryset)


def _random_ranking(rng: random.Random, ids: list[int]) -> list[list[int]]:
    """Best first; now and then two neighbours tie."""
    rng.shuffle(ids)
    ranking = [[ids[0]]]
    for response in ids[1:]:
        if rng.random() < 0.2:
            ranking[-1].append(response)
        else:
            ranking.append([response])
    return ranking


@pytest.fixture
def mixed_project(db, write_jsonl):
    """Items of 2, 3 and 4 responses, odd model names, references and gold answers, 3 annotators."""
    project = ProjectFactory(slug="mixed", overlap=3, mode="ranking")
    names = ['gpt "4", turbo', "line\nbreak", "", "x", "y"]
    rows = [
        {
            "id": f"m{index}",
            "prompt": f"Question {index}?",
            "responses": [
                {"model": names[(index + position) % len(names)], "content": f"{index}.{position}"}
                for position in range(2 + index % 3)
            ],
        }
        for index in range(15)
    ]
    items_import(project=project, path=write_jsonl(rows))
    rng = random.Random(11)
    for name in ("ann", "ben", "cal"):
        annotator = MembershipFactory(project=project, user__username=name).user
        for _ in rows:
            assignment = assignment_next(project=project, annotator=annotator)
            ids = [response.pk for response in assignment.item.responses.all()]
            strength = rng.choice([None, 1, 2, 3]) if len(ids) == 2 else None
            ranking = _random_ranking(rng, ids)
            judgment_submit(assignment_id=assignment.pk, annotator=annotator, ranking=ranking, strength=strength)
    items = list(Item.objects.filter(project=project).order_by("id"))
    for item in items[::2]:
        item.reference = [[1], [0]] if item.pk % 3 else [[0, 1]]
        item.save(update_fields=["reference"])
    for item in items[1:6]:
        item.is_gold, item.gold_answer = True, [[0], [1]]
        item.save(update_fields=["is_gold", "gold_answer"])
    return project


def _figures(project) -> dict:
    document = project_stats(project=project, use_cache=False)
    document.pop("computed_at")
    return document


def test_the_figures_do_not_depend_on_the_chunk_sizes(mixed_project, monkeypatch):
    whole = _figures(mixed_project)
    monkeypatch.setattr(chunks, "CHUNK_ROWS", 2)
    monkeypatch.setattr(agreement, "ALPHA_CHUNK_UNITS", 3)

    chunked = _figures(mixed_project)

    assert chunked == whole
    assert whole["judgments"] == 45 and whole["agreement"]["units"] > 15
    assert whole["agreement"]["krippendorff_alpha"] is not None
    assert {row["model"] for row in whole["leaderboard"]} == {'gpt "4", turbo', "line\nbreak", "unknown", "x", "y"}
    assert any(row["gold_compared"] for row in whole["annotators"])
    assert whole["agreement"]["with_reference"] is not None


def _count_table(rng: np.random.Generator, units: int, values: int) -> np.ndarray:
    """Units x values: 2 to 5 coders per unit, each picking a value."""
    coders = rng.integers(2, 6, size=units)
    unit = np.repeat(np.arange(units), coders)
    picks = rng.integers(0, values, size=len(unit))
    return np.bincount(unit * values + picks, minlength=units * values).reshape(units, values)


@pytest.mark.parametrize(("domain", "level"), [(NOMINAL_DOMAIN, "nominal"), (ORDINAL_DOMAIN, "ordinal")])
def test_alpha_over_chunks_of_units_is_the_packages_alpha(domain, level, monkeypatch):
    counts = _count_table(np.random.default_rng(4), 1_000, len(domain))
    package = krippendorff.alpha(value_counts=counts.astype(float), value_domain=domain, level_of_measurement=level)

    one_piece = alpha_of_counts(counts, domain=domain, level=level)
    monkeypatch.setattr(agreement, "ALPHA_CHUNK_UNITS", 64)
    chunked = alpha_of_counts(counts, domain=domain, level=level)

    assert one_piece == package
    assert chunked == pytest.approx(package, rel=1e-12)


def test_alpha_memory_does_not_grow_with_the_units():
    # In one piece the package would hold three 200,000 x 7 x 7 arrays of doubles (235 MB).
    counts = _count_table(np.random.default_rng(5), 200_000, len(ORDINAL_DOMAIN))
    tracemalloc.start()
    try:
        alpha_of_counts(counts, domain=ORDINAL_DOMAIN, level="ordinal")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert peak < 64 * 2**20
