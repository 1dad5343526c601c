"""A flat pair's one-pass path gives exactly what the full rule gives, or leaves the row to it."""

import re

import pytest
from django.test import override_settings
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from labeling.services.parsing.shapes import RowInvalid
from labeling.services.parsing.shapes.preference import _any_flat_pair, _flat_pair, _plain_flat_pair

LIMIT = 12  # LABELING_MAX_TEXT_CHARS in these tests, so that texts over the limit come up
TEXT = st.sampled_from(
    ["", " ", "a", " a ", "a\n", "b", "A", "a\x00", "Human: hi", " Human: x\n\nAssistant:", "x" * LIMIT,
     "x" * (LIMIT + 1), f" {'y' * LIMIT} ", "é\u2003", "\u2028b", "\x1c", "m" * 201, f" {'m' * 199} ",
     "true", "1", "false", "0"]
) | st.text(max_size=LIMIT + 2)  # fmt: skip
VALUE = (
    TEXT
    | st.none()
    | st.booleans()
    | st.integers(-2, 2)
    | st.floats(allow_nan=False)
    | st.lists(st.lists(st.integers(0, 2), max_size=2), max_size=2)
    | st.dictionaries(st.text(max_size=2), st.integers(), max_size=1)
)
ROW = st.fixed_dictionaries(
    {"prompt": VALUE, "response_a": VALUE, "response_b": VALUE},
    optional={name: VALUE for name in ("id", "model_a", "model_b", "metadata", "gold", "gold_answer", "extra")},
)


def full_rule(row: dict):
    try:
        return _any_flat_pair(row)
    except RowInvalid as error:
        return error


@override_settings(LABELING_MAX_TEXT_CHARS=LIMIT)
@given(row=ROW)
@settings(max_examples=400, deadline=None, suppress_health_check=list(HealthCheck))
def test_the_one_pass_path_agrees_with_the_full_rule_or_leaves_the_row_to_it(row):
    plain = _plain_flat_pair(row)
    expected = full_rule(row)
    assert plain is None or plain == expected
    if isinstance(expected, RowInvalid):
        with pytest.raises(RowInvalid, match=f"^{re.escape(str(expected))}$"):
            _flat_pair(row)
    else:
        assert _flat_pair(row) == expected


@override_settings(LABELING_MAX_TEXT_CHARS=LIMIT)
@pytest.mark.parametrize(
    "row",
    [
        {"id": " r1 ", "prompt": " Q? ", "response_a": "A\n", "response_b": "B", "model_a": " m ", "model_b": None},
        {"prompt": "Q?", "response_a": "A", "response_b": "B", "metadata": {}, "gold": False, "gold_answer": None},
        {"id": "", "prompt": "Q?", "response_a": "A", "response_b": "B", "model_a": "", "extra": [1]},
    ],
)
def test_the_usual_flat_pairs_take_the_one_pass_path(row):
    plain = _plain_flat_pair(row)
    assert plain is not None
    assert plain == _any_flat_pair(row)
