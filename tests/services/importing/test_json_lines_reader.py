"""A JSONL line is read exactly as `json.loads` reads it: the same value or the same error."""

import json

import pytest

from labeling.services.parsing.readers import _json_line

LINES = [
    '{"prompt": "Q?", "response_a": "A", "response_b": "B"}\n',
    '{"prompt": "Q?"}',
    '{"prompt": "Q?"}\r\n',
    '{"prompt": "Q?"}  \n',
    ' {"prompt": "Q?"}\n',
    '\t{"a": 1}\t\r\n',
    '{"a": 1}\x0b\n',
    '{"a": 1} {"b": 2}\n',
    '{"a": 1}x\n',
    '\ufeff{"a": 1}\n',
    '{"a": NaN, "b": -Infinity, "c": 1e999, "d": 12345678901234567890, "e": 1.5}\n',
    '{"a": "\\u00e9\\ud83d\\ude00 \\n", "a": "last wins"}\n',
    '{"a": "unterminated\n',
    '{"a": "bad \\x escape"}\n',
    '{"a": [1, 2,]}\n',
    '{"a": 1,}\n',
    "{'a': 1}\n",
    '[{"a": 1}]\n',
    '"text"\n',
    "null\n",
    "12\n",
    "nul\n",
    "\n",
    "",
]


def outcome(read, line):
    try:
        value = read(line)
    except json.JSONDecodeError as error:
        return ("error", error.msg, error.pos, error.lineno, error.colno)
    return ("value", type(value).__name__, json.dumps(value, sort_keys=True))


@pytest.mark.parametrize("line", LINES)
def test_a_line_reads_as_json_loads_reads_it(line):
    assert outcome(_json_line, line) == outcome(json.loads, line)
