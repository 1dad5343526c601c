"""Recognise a row's shape from its columns and normalise it into an item.

Shapes (DESIGN.md): native, flat pair, TRL preference, HH-RLHF. Every function
raises `RowInvalid` with a reason naming the field; nothing here touches the database.
"""

import hashlib
import json
import re
from dataclasses import dataclass, field

from django.conf import settings

ROLES = ("system", "user", "assistant")
MIN_RESPONSES, MAX_RESPONSES = 2, 8
SHAPES = ("native", "flat_pair", "trl_preference", "hh_rlhf")


class RowInvalid(Exception):
    """This row cannot become an item; the message says why."""


@dataclass
class NormalizedResponse:
    content: str
    model: str = ""
    metadata: dict = field(default_factory=dict)


@dataclass
class NormalizedItem:
    external_id: str
    prompt: list[dict]
    responses: list[NormalizedResponse]
    reference: list[list[int]] | None = None
    metadata: dict = field(default_factory=dict)
    gold_answer: list[list[int]] | None = None


def detect_shape(columns: set[str]) -> str:
    """The shape a row's columns announce; raises RowInvalid naming what is missing."""
    if "responses" in columns:
        return "native"
    if {"response_a", "response_b"} <= columns:
        return "flat_pair"
    if {"chosen", "rejected"} <= columns:
        return "trl_preference" if "prompt" in columns else "hh_rlhf"
    raise RowInvalid(
        f"columns {sorted(columns)} match no known shape: expected `prompt` + `responses` (native), "
        "`prompt`, `response_a`, `response_b` (flat pair), `prompt`, `chosen`, `rejected` (TRL preference) "
        "or `chosen`, `rejected` transcripts (HH-RLHF)"
    )


def normalize(row: dict, shape: str) -> NormalizedItem:
    return {"native": _native, "flat_pair": _flat_pair, "trl_preference": _trl, "hh_rlhf": _hh}[shape](row)


# -- shapes ---------------------------------------------------------------


def _native(row: dict) -> NormalizedItem:
    prompt = _prompt(row.get("prompt"), "prompt")
    raw = row.get("responses")
    if not isinstance(raw, list):
        raise RowInvalid("`responses` must be a list of strings or {model, content} objects")
    responses = []
    for index, entry in enumerate(raw):
        name = f"responses[{index}]"
        if isinstance(entry, str):
            responses.append(NormalizedResponse(_text(entry, name)))
        elif isinstance(entry, dict):
            metadata = entry.get("metadata") or {}
            if not isinstance(metadata, dict):
                raise RowInvalid(f"`{name}.metadata` must be an object")
            responses.append(
                NormalizedResponse(
                    _text(entry.get("content"), f"{name}.content"), _model(entry.get("model"), name), metadata
                )
            )
        else:
            raise RowInvalid(f"`{name}` must be a string or an object with `content`")
    return _item(row, prompt, responses)


def _flat_pair(row: dict) -> NormalizedItem:
    prompt = _prompt(row.get("prompt"), "prompt")
    responses = [
        NormalizedResponse(_text(row.get("response_a"), "response_a"), _model(row.get("model_a"), "model_a")),
        NormalizedResponse(_text(row.get("response_b"), "response_b"), _model(row.get("model_b"), "model_b")),
    ]
    return _item(row, prompt, responses)


def _trl(row: dict) -> NormalizedItem:
    """TRL explicit-prompt preference rows; the given preference becomes the hidden reference."""
    prompt = _prompt(row.get("prompt"), "prompt")
    chosen = _completion(row.get("chosen"), "chosen")
    rejected = _completion(row.get("rejected"), "rejected")
    responses = [
        NormalizedResponse(chosen, _model(row.get("chosen_model"), "chosen_model")),
        NormalizedResponse(rejected, _model(row.get("rejected_model"), "rejected_model")),
    ]
    return _item(row, prompt, responses, reference=[[0], [1]])


def _hh(row: dict) -> NormalizedItem:
    """HH-RLHF transcripts (or TRL implicit-prompt conversations): split off the shared context."""
    chosen, rejected = row.get("chosen"), row.get("rejected")
    if isinstance(chosen, str) and isinstance(rejected, str):
        chosen_turns = _parse_transcript(chosen, "chosen")
        rejected_turns = _parse_transcript(rejected, "rejected")
    elif isinstance(chosen, list) and isinstance(rejected, list):
        chosen_turns = _messages(chosen, "chosen", must_end_with_user=False)
        rejected_turns = _messages(rejected, "rejected", must_end_with_user=False)
    else:
        raise RowInvalid("`chosen` and `rejected` must both be transcripts (strings) or both message lists")
    for turns, name in ((chosen_turns, "chosen"), (rejected_turns, "rejected")):
        if turns[-1]["role"] != "assistant":
            raise RowInvalid(f"`{name}` must end with an assistant turn")
    if chosen_turns[:-1] != rejected_turns[:-1]:
        raise RowInvalid("`chosen` and `rejected` do not share the same conversation before their last turn")
    prompt = _check_prompt(chosen_turns[:-1], "chosen")
    responses = [
        NormalizedResponse(_text(chosen_turns[-1]["content"], "chosen")),
        NormalizedResponse(_text(rejected_turns[-1]["content"], "rejected")),
    ]
    return _item(row, prompt, responses, reference=[[0], [1]])


# -- fields ---------------------------------------------------------------

_TURN = re.compile(r"\n\n(Human|Assistant|System):")
_TURN_ROLES = {"Human": "user", "Assistant": "assistant", "System": "system"}


def _parse_transcript(text: str, name: str) -> list[dict]:
    """'\\n\\nHuman: ...\\n\\nAssistant: ...' into messages."""
    if not text.startswith("\n\n"):
        text = "\n\n" + text.lstrip()
    parts = _TURN.split(text)
    if parts[0].strip() or len(parts) < 3:
        raise RowInvalid(f"`{name}` is not a `\\n\\nHuman: ... \\n\\nAssistant: ...` transcript")
    return [
        {"role": _TURN_ROLES[speaker], "content": _text(content, f"{name} turn {number}")}
        for number, (speaker, content) in enumerate(zip(parts[1::2], parts[2::2], strict=True), start=1)
    ]


def _prompt(value, name: str) -> list[dict]:
    if isinstance(value, str):
        stripped = value.strip()
        if stripped.startswith("Human:"):  # a standard-style prompt: "\n\nHuman: ...\n\nAssistant:"
            return _check_prompt(_parse_transcript(stripped.removesuffix("Assistant:"), name), name)
        return [{"role": "user", "content": _text(value, name)}]
    if isinstance(value, list):
        return _check_prompt(_messages(value, name, must_end_with_user=True), name)
    raise RowInvalid(f"`{name}` must be a string or a list of {{role, content}} messages")


def _check_prompt(messages: list[dict], name: str) -> list[dict]:
    if not messages:
        raise RowInvalid(f"`{name}` has no messages")
    if messages[-1]["role"] != "user":
        raise RowInvalid(f"`{name}` must end with a user turn (it ends with {messages[-1]['role']})")
    return messages


def _messages(value: list, name: str, *, must_end_with_user: bool) -> list[dict]:
    if not value:
        raise RowInvalid(f"`{name}` is an empty list")
    messages = []
    for index, message in enumerate(value):
        where = f"{name}[{index}]"
        if not isinstance(message, dict):
            raise RowInvalid(f"`{where}` must be an object with `role` and `content`")
        role = message.get("role")
        if role not in ROLES:
            raise RowInvalid(f"`{where}.role` must be one of {', '.join(ROLES)} (got {role!r})")
        messages.append({"role": role, "content": _text(message.get("content"), f"{where}.content")})
    if must_end_with_user:
        _check_prompt(messages, name)
    return messages


def _completion(value, name: str) -> str:
    """A TRL completion: a string, or a list holding the assistant's message(s)."""
    if isinstance(value, str):
        return _text(value, name)
    if isinstance(value, list):
        messages = _messages(value, name, must_end_with_user=False)
        if messages[-1]["role"] != "assistant":
            raise RowInvalid(f"`{name}` must end with an assistant message")
        return messages[-1]["content"]
    raise RowInvalid(f"`{name}` must be a string or a list with one assistant message")


def _text(value, name: str) -> str:
    if value is None:
        raise RowInvalid(f"`{name}` is missing")
    if not isinstance(value, str):
        raise RowInvalid(f"`{name}` must be text (got {type(value).__name__})")
    text = value.strip()
    if not text:
        raise RowInvalid(f"`{name}` is empty")
    if "\x00" in text:
        raise RowInvalid(f"`{name}` contains a NUL byte")
    limit = settings.LABELING_MAX_TEXT_CHARS
    if len(text) > limit:
        raise RowInvalid(
            f"`{name}` has {len(text):,} characters, over the limit of {limit:,} (LABELING_MAX_TEXT_CHARS)"
        )
    return text


def _model(value, name: str) -> str:
    if value is None or value == "":
        return ""
    if not isinstance(value, str) or len(value) > 200:
        raise RowInvalid(f"`{name}` must be a model name of at most 200 characters")
    return value.strip()


def _item(row: dict, prompt: list[dict], responses: list[NormalizedResponse], reference=None) -> NormalizedItem:
    if not MIN_RESPONSES <= len(responses) <= MAX_RESPONSES:
        raise RowInvalid(f"an item needs {MIN_RESPONSES} to {MAX_RESPONSES} responses (got {len(responses)})")
    contents = [response.content for response in responses]
    if len(set(contents)) != len(contents):
        raise RowInvalid("two responses are identical; there is nothing to compare")
    metadata = row.get("metadata") or {}
    if not isinstance(metadata, dict):
        raise RowInvalid("`metadata` must be an object")
    return NormalizedItem(
        _external_id(row, prompt, contents),
        prompt,
        responses,
        reference,
        metadata,
        _gold(row, reference, len(responses)),
    )


def _gold(row: dict, reference, count: int) -> list[list[int]] | None:
    """A gold item's known answer: `gold_answer` (a ranking of response positions, best first),
    or `gold: true` on a row whose shape carries a reference preference."""
    answer = row.get("gold_answer")
    if answer is None:
        if row.get("gold") in (True, "true", "1", 1):
            if reference is None:
                raise RowInvalid("`gold` is set but the row carries no answer; add `gold_answer`")
            return reference
        return None
    if not isinstance(answer, list) or not all(isinstance(group, list) and group for group in answer):
        raise RowInvalid("`gold_answer` must be a ranking of response positions, e.g. [[0], [1]]")
    positions = [position for group in answer for position in group]
    if not all(type(position) is int for position in positions) or sorted(positions) != list(range(count)):
        raise RowInvalid(f"`gold_answer` must place each response position 0..{count - 1} exactly once")
    return answer


def _external_id(row: dict, prompt: list[dict], contents: list[str]) -> str:
    value = row.get("id")
    if value is None or value == "":
        digest = hashlib.sha256(json.dumps([prompt, contents], ensure_ascii=False).encode()).hexdigest()
        return digest[:20]
    if isinstance(value, float) and value.is_integer():
        value = int(value)  # pandas turns an integer column with a gap into floats
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise RowInvalid("`id` must be a string or a whole number")
    text = str(value).strip()
    if not text or len(text) > 200:
        raise RowInvalid("`id` must be 1 to 200 characters")
    return text
