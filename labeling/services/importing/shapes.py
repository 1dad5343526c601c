"""Recognise a row's shape from its columns and normalise it into items.

Shapes (DESIGN.md): native, flat pair, TRL preference, HH-RLHF, Chatbot Arena,
UltraFeedback, OpenAssistant message trees. A row becomes one item, except an
OpenAssistant tree, which becomes one item per prompter message with 2+ replies.
Every function raises `RowInvalid` with a reason naming the field; nothing here
touches the database.
"""

import hashlib
import json
import math
import re
from dataclasses import dataclass, field

from django.conf import settings

ROLES = ("system", "user", "assistant")
MIN_RESPONSES, MAX_RESPONSES = 2, 8
SHAPES = ("native", "flat_pair", "trl_preference", "hh_rlhf", "chatbot_arena", "ultrafeedback", "oasst_tree")


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
    if {"conversation_a", "conversation_b"} <= columns:
        return "chatbot_arena"
    if {"instruction", "completions"} <= columns:
        return "ultrafeedback"
    if {"message_tree_id", "prompt"} <= columns:
        return "oasst_tree"
    raise RowInvalid(
        f"columns {sorted(columns)} match no known shape: expected `prompt` + `responses` (native), "
        "`prompt`, `response_a`, `response_b` (flat pair), `prompt`, `chosen`, `rejected` (TRL preference), "
        "`chosen`, `rejected` transcripts (HH-RLHF), `conversation_a`, `conversation_b` (Chatbot Arena), "
        "`instruction` + `completions` (UltraFeedback) or `message_tree_id` + `prompt` (OpenAssistant tree)"
    )


def normalize(row: dict, shape: str) -> list[NormalizedItem]:
    """The items a row holds: one, or for an OpenAssistant tree one per prompter message with 2+ replies."""
    if shape == "oasst_tree":
        return _oasst_tree(row)
    single = {
        "native": _native,
        "flat_pair": _flat_pair,
        "trl_preference": _trl,
        "hh_rlhf": _hh,
        "chatbot_arena": _arena,
        "ultrafeedback": _ultrafeedback,
    }
    return [single[shape](row)]


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


ARENA_WINNERS = {"model_a": [[0], [1]], "model_b": [[1], [0]], "tie": [[0, 1]], "tie (bothbad)": [[0, 1]]}
ARENA_METADATA = ("question_id", "language", "turn")


def _arena(row: dict) -> NormalizedItem:
    """Chatbot Arena battles: the shared conversation is the prompt, the two last answers the responses.

    In a multi-turn battle the two conversations continue separately after the first
    answers, so no later turn has one shared context; the item keeps the first user
    turn and the two first answers. The vote judged the whole conversations, not these
    answers, so it is kept in metadata (`arena_winner`) instead of becoming the reference.
    """
    conversation_a = _arena_conversation(row.get("conversation_a"), "conversation_a")
    conversation_b = _arena_conversation(row.get("conversation_b"), "conversation_b")
    winner = row.get("winner")
    if winner in (None, ""):
        winner = None
    elif not isinstance(winner, str) or winner not in ARENA_WINNERS:
        allowed = ", ".join(repr(value) for value in ARENA_WINNERS)
        raise RowInvalid(f"`winner` is {winner!r}; use one of {allowed} or leave it empty")
    metadata = {key: row[key] for key in ARENA_METADATA if row.get(key) not in (None, "")}
    if conversation_a[:-1] == conversation_b[:-1]:
        prompt = _check_prompt(conversation_a[:-1], "conversation_a")
        answers = (conversation_a[-1], conversation_b[-1])
        reference = ARENA_WINNERS.get(winner)
        if winner == "tie (bothbad)":
            metadata["both_bad"] = True
    else:
        prompt, answers = _arena_first_turn(conversation_a, conversation_b)
        reference = None
        metadata.update(truncated_to_first_turn=True, arena_winner=winner)
    responses = [
        NormalizedResponse(answers[0]["content"], _model(row.get("model_a"), "model_a")),
        NormalizedResponse(answers[1]["content"], _model(row.get("model_b"), "model_b")),
    ]
    return _item(row, prompt, responses, reference, metadata=metadata)


def _arena_conversation(value, name: str) -> list[dict]:
    if not isinstance(value, list):
        raise RowInvalid(f"`{name}` must be a list of {{role, content}} messages")
    messages = _messages(value, name, must_end_with_user=False)
    if messages[-1]["role"] != "assistant":
        raise RowInvalid(f"`{name}` must end with the model's answer (an assistant message)")
    return messages


def _arena_first_turn(conversation_a: list[dict], conversation_b: list[dict]) -> tuple[list[dict], tuple]:
    """The context up to the first answer, and the two first answers, if both battles asked the same."""
    asked_a = [message for message in conversation_a if message["role"] != "assistant"]
    asked_b = [message for message in conversation_b if message["role"] != "assistant"]
    first_a = next(index for index, message in enumerate(conversation_a) if message["role"] == "assistant")
    first_b = next(index for index, message in enumerate(conversation_b) if message["role"] == "assistant")
    if asked_a != asked_b or conversation_a[:first_a] != conversation_b[:first_b]:
        differ = next(
            (number for number, (a, b) in enumerate(zip(asked_a, asked_b, strict=False), start=1) if a != b),
            min(len(asked_a), len(asked_b)) + 1,
        )
        raise RowInvalid(
            "`conversation_a` and `conversation_b` must put the same user turns to both models; "
            f"they differ at user turn {differ}"
        )
    return _check_prompt(conversation_a[:first_a], "conversation_a"), (conversation_a[first_a], conversation_b[first_b])


UF_SCORES = ("overall_score", "fine-grained_score")


def _ultrafeedback(row: dict) -> NormalizedItem:
    """UltraFeedback: one item per instruction with its K completions.

    When every completion has an `overall_score` (else a `fine-grained_score`), the
    scores, highest first and equal scores tied, become the reference; they are kept
    in each response's metadata.
    """
    prompt = [{"role": "user", "content": _text(row.get("instruction"), "instruction")}]
    completions = row.get("completions")
    if not isinstance(completions, list):
        raise RowInvalid("`completions` must be a list of {model, response} objects")
    if len(completions) > MAX_RESPONSES:
        raise RowInvalid(
            f"`completions` holds {len(completions)} completions; an item takes {MIN_RESPONSES} to {MAX_RESPONSES}, "
            "so split the row or drop completions"
        )
    responses = []
    for index, completion in enumerate(completions):
        name = f"completions[{index}]"
        if not isinstance(completion, dict):
            raise RowInvalid(f"`{name}` must be an object with `model` and `response`")
        scores = {key: _score(completion.get(key), f"{name}.{key}") for key in UF_SCORES}
        responses.append(
            NormalizedResponse(
                _text(completion.get("response"), f"{name}.response"),
                _model(completion.get("model"), f"{name}.model"),
                {key: value for key, value in scores.items() if value is not None},
            )
        )
    reference = None
    for key in UF_SCORES:
        scores = [response.metadata.get(key) for response in responses]
        if responses and None not in scores:
            reference = _ranking_by(scores, descending=True)
            break
    metadata = {"source": row["source"]} if isinstance(row.get("source"), str) else {}
    return _item(row, prompt, responses, reference, metadata=metadata)


def _score(value, name: str) -> float | None:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if isinstance(value, str):
        try:
            value = float(value)  # CSV cells arrive as text
        except ValueError:
            raise RowInvalid(f"`{name}` must be a number (got {value!r})") from None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise RowInvalid(f"`{name}` must be a finite number (got {value!r})")
    return float(value)


def _ranking_by(keys: list, *, descending: bool) -> list[list[int]]:
    """Response positions grouped by equal key, best first."""
    ordered = sorted(set(keys), reverse=descending)
    return [[position for position, key in enumerate(keys) if key == value] for value in ordered]


OASST_ROLES = {"prompter": "user", "assistant": "assistant"}


def _oasst_tree(row: dict) -> list[NormalizedItem]:
    """OpenAssistant message trees: one item per prompter message with 2+ assistant replies.

    The conversation from the root down to that message is the prompt and its replies
    the responses. Deleted replies (`deleted: true`) are left out with their subtrees.
    When 2+ replies carry a `rank` (0 = best), only the ranked ones are kept and the
    ranks become the reference; otherwise every reply is kept and there is no
    reference. Of more than 8, the 8 best-ranked (or the first 8) are kept, and the
    item's metadata says how many were dropped.
    """
    tree_id = row.get("message_tree_id")
    if isinstance(tree_id, bool) or not isinstance(tree_id, str | int) or not str(tree_id).strip():
        raise RowInvalid("`message_tree_id` must be a non-empty string")
    tree_id = str(tree_id).strip()
    root = _oasst_message(row.get("prompt"), "prompt")
    if root["deleted"]:
        raise RowInvalid("`prompt` is deleted (`deleted: true`), so the tree holds nothing to compare")
    if root["role"] != "user":
        raise RowInvalid("`prompt.role` must be 'prompter': a message tree starts with the user's message")
    items = []
    pending = [(root, "prompt", [])]
    while pending:
        node, where, before = pending.pop()
        conversation = [*before, {"role": node["role"], "content": node["text"]}]
        replies = [(f"{where}.replies[{index}]", reply) for index, reply in enumerate(node["replies"])]
        children = [(path, _oasst_message(reply, path)) for path, reply in replies]
        for path, child in children:
            if child["role"] == node["role"]:
                raise RowInvalid(f"`{path}.role` must alternate with its parent's (both are {child['role']!r})")
        children = [(path, child) for path, child in children if not child["deleted"]]
        if node["role"] == "user" and len(children) >= MIN_RESPONSES:
            try:
                items.append(_oasst_item(row, tree_id, node, conversation, [child for _, child in children]))
            except RowInvalid as error:
                raise RowInvalid(f"at `{where}`: {error}") from None
        pending.extend((child, path, conversation) for path, child in reversed(children))
    if not items:
        raise RowInvalid(
            "the message tree has no prompter message with 2 or more assistant replies, so there is nothing to compare"
        )
    return items


def _oasst_message(value, where: str) -> dict:
    if not isinstance(value, dict):
        raise RowInvalid(f"`{where}` must be a message object with `text`, `role` and `replies`")
    role = OASST_ROLES.get(value.get("role"))
    if role is None:
        raise RowInvalid(f"`{where}.role` must be 'prompter' or 'assistant' (got {value.get('role')!r})")
    if value.get("deleted") is True:
        return {"role": role, "deleted": True}
    replies = value.get("replies")
    if not isinstance(replies, list | None):
        raise RowInvalid(f"`{where}.replies` must be a list of messages")
    rank = value.get("rank")
    if isinstance(rank, float) and rank.is_integer():
        rank = int(rank)  # JSON readers may give 0.0
    if rank is not None and (type(rank) is not int or rank < 0):
        raise RowInvalid(f"`{where}.rank` must be a whole number from 0 (best), or null (got {rank!r})")
    message_id = value.get("message_id")
    return {
        "role": role,
        "deleted": False,
        "text": _text(value.get("text"), f"{where}.text"),
        "replies": replies or [],
        "rank": rank,
        "message_id": str(message_id) if message_id not in (None, "") else None,
        "model": _model(value.get("model_name"), f"{where}.model_name"),
        "lang": value.get("lang") if isinstance(value.get("lang"), str) else None,
    }


def _oasst_item(row: dict, tree_id: str, node: dict, prompt: list[dict], replies: list[dict]) -> NormalizedItem:
    ranked = [reply for reply in replies if reply["rank"] is not None]
    use_ranks = len(ranked) >= MIN_RESPONSES
    kept = ranked if use_ranks else replies
    metadata = {"message_tree_id": tree_id, "message_id": node["message_id"], "lang": node["lang"]}
    if len(kept) < len(replies):
        metadata["unranked_replies_dropped"] = len(replies) - len(kept)
    if len(kept) > MAX_RESPONSES:
        order = sorted(range(len(kept)), key=lambda index: kept[index]["rank"]) if use_ranks else range(len(kept))
        keep = set(list(order)[:MAX_RESPONSES])
        metadata["replies_dropped"] = len(kept) - MAX_RESPONSES
        which = "best-ranked" if use_ranks else "first"
        metadata["replies_dropped_reason"] = f"more than {MAX_RESPONSES} replies: kept the {which} {MAX_RESPONSES}"
        kept = [reply for index, reply in enumerate(kept) if index in keep]  # tree order: a position reveals no rank
    responses = [
        NormalizedResponse(
            reply["text"], reply["model"], {"message_id": reply["message_id"]} if reply["message_id"] else {}
        )
        for reply in kept
    ]
    reference = _ranking_by([reply["rank"] for reply in kept], descending=False) if use_ranks else None
    suffix = node["message_id"] or _content_hash(prompt, [reply["text"] for reply in kept])
    metadata = {key: value for key, value in metadata.items() if value is not None}
    return _item(row, prompt, responses, reference, metadata=metadata, external_id=f"{tree_id}/{suffix}")


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
    if external_id is not None and len(external_id) > 200:
        raise RowInvalid(f"the item id {external_id[:40]!r}... is over 200 characters")
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
        return _content_hash(prompt, contents)
    if isinstance(value, float) and value.is_integer():
        value = int(value)  # pandas turns an integer column with a gap into floats
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise RowInvalid("`id` must be a string or a whole number")
    text = str(value).strip()
    if not text or len(text) > 200:
        raise RowInvalid("`id` must be 1 to 200 characters")
    return text


def _content_hash(prompt: list[dict], contents: list[str]) -> str:
    return hashlib.sha256(json.dumps([prompt, contents], ensure_ascii=False).encode()).hexdigest()[:20]
