"""Building blocks of every shape: the item types, the row error, and field checks
(text, messages, transcripts, ids, gold answers) that name the field at fault."""

import hashlib
import json
import re
from dataclasses import dataclass, field

from django.conf import settings
from django.core.signals import setting_changed
from django.dispatch import receiver

ROLES = ("system", "user", "assistant")
MIN_RESPONSES, MAX_RESPONSES = 2, 8
MAX_MODEL_CHARS = MAX_ID_CHARS = 200


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
    limit = max_text_chars()
    if len(text) > limit:
        raise RowInvalid(
            f"`{name}` has {len(text):,} characters, over the limit of {limit:,} (LABELING_MAX_TEXT_CHARS)"
        )
    return text


# Read once: a lazy settings lookup for every text field was a tenth of validating a row.
_max_text_chars = 0
# Row values of `gold` that make an item gold.
GOLD_TRUE = (True, "true", "1", 1)


def max_text_chars() -> int:
    """LABELING_MAX_TEXT_CHARS, read once per process (and again after a settings change)."""
    return _max_text_chars or _read_max_text_chars()


def _read_max_text_chars() -> int:
    global _max_text_chars
    _max_text_chars = settings.LABELING_MAX_TEXT_CHARS
    return _max_text_chars


def use_max_text_chars(value: int) -> None:
    """In an import's parsing process: the importing process's LABELING_MAX_TEXT_CHARS, overrides included."""
    global _max_text_chars
    _max_text_chars = value


@receiver(setting_changed)
def _forget_max_text_chars(*, setting: str, **kwargs) -> None:
    global _max_text_chars
    if setting == "LABELING_MAX_TEXT_CHARS":
        _max_text_chars = 0


def _model(value, name: str) -> str:
    if value is None or value == "":
        return ""
    if not isinstance(value, str) or len(value) > MAX_MODEL_CHARS:
        raise RowInvalid(f"`{name}` must be a model name of at most {MAX_MODEL_CHARS} characters")
    return value.strip()


def _item(
    row: dict,
    prompt: list[dict],
    responses: list[NormalizedResponse],
    reference=None,
    *,
    metadata: dict | None = None,
    external_id: str | None = None,
) -> NormalizedItem:
    if not MIN_RESPONSES <= len(responses) <= MAX_RESPONSES:
        raise RowInvalid(f"an item needs {MIN_RESPONSES} to {MAX_RESPONSES} responses (got {len(responses)})")
    contents = [response.content for response in responses]
    if len(set(contents)) != len(contents):
        raise RowInvalid("two responses are identical; there is nothing to compare")
    given = row.get("metadata") or {}
    if not isinstance(given, dict):
        raise RowInvalid("`metadata` must be an object")
    if external_id is not None and len(external_id) > MAX_ID_CHARS:
        raise RowInvalid(f"the item id {external_id[:40]!r}... is over {MAX_ID_CHARS} characters")
    return NormalizedItem(
        external_id or _external_id(row, prompt, contents),
        prompt,
        responses,
        reference,
        {**given, **(metadata or {})},
        _gold(row, reference, len(responses)),
    )


def _gold(row: dict, reference, count: int) -> list[list[int]] | None:
    """A gold item's known answer: `gold_answer` (a ranking of response positions, best first),
    or `gold: true` on a row whose shape carries a reference preference."""
    answer = row.get("gold_answer")
    if answer is None:
        if row.get("gold") in GOLD_TRUE:
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
        return _content_hash(prompt, contents)
    if isinstance(value, float) and value.is_integer():
        value = int(value)  # pandas turns an integer column with a gap into floats
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise RowInvalid("`id` must be a string or a whole number")
    text = str(value).strip()
    if not text or len(text) > MAX_ID_CHARS:
        raise RowInvalid(f"`id` must be 1 to {MAX_ID_CHARS} characters")
    return text


def _content_hash(prompt: list[dict], contents: list[str]) -> str:
    return hashlib.sha256(json.dumps([prompt, contents], ensure_ascii=False).encode()).hexdigest()[:20]
