"""The stats read and compute in bounded pieces: the figures do not depend on the pieces."""

import tracemalloc

import krippendorff
import numpy as np
import pytest

from labeling.services.metrics import agreement
from labeling.services.metrics.agreement import NOMINAL_DOMAIN, ORDINAL_DOMAIN, alpha_of_counts


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
