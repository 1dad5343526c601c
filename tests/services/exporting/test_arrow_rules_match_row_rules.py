"""The Arrow forms of the export's text and margin rules give what the row-by-row rules give."""

import pyarrow as pa
import pytest

from labeling.services.exporting import styles
from labeling.services.exporting.aggregate import _margin, one_vote_margins
from labeling.services.exporting.columns import Messages, assistant_messages

MESSAGES = styles.messages_type()
PROMPTS = [
    [{"role": "user", "content": "Hi?"}],
    [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "=1+1?"},
        {"role": "assistant", "content": "+2 ünïcode ✓"},
        {"role": "user", "content": ""},
    ],
    [],
]


def test_standard_prompts_are_standard_prompt_of_each_message_list():
    column = pa.array(PROMPTS, MESSAGES)

    assert styles.standard_prompts(column).to_pylist() == [styles.standard_prompt(p) for p in PROMPTS]
    assert styles.standard_prompts(column.slice(1)).to_pylist() == [styles.standard_prompt(p) for p in PROMPTS[1:]]


def test_an_unknown_role_fails_as_in_standard_prompt():
    column = pa.array([[{"role": "tool", "content": "x"}]], MESSAGES)

    with pytest.raises(KeyError, match="tool"):
        styles.standard_prompts(column)


def test_standard_completions_start_with_a_space():
    contents = ["a", "", " b\n"]

    assert styles.standard_completions(pa.array(contents)).to_pylist() == [
        styles.standard_completion(c) for c in contents
    ]


def test_assistant_messages_equal_the_flat_message_column():
    contents = ["one", "", "thr✓e"]
    flat = Messages()
    for content in contents:
        flat.append_assistant(content)

    assert assistant_messages(pa.array(contents), MESSAGES).equals(flat.array(MESSAGES))


def test_one_vote_margins_are_the_margin_of_one_vote():
    strengths = [None, 0, 1, 2, 3]

    assert one_vote_margins(pa.chunked_array([pa.array(strengths, pa.int16())])).tolist() == [
        _margin(1.0, [strength or 1]) for strength in strengths
    ]
