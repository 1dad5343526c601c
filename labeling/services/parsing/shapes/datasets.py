"""Public dataset shapes: Chatbot Arena battles, UltraFeedback rows, OpenAssistant message trees."""

import math

from labeling.services.parsing.shapes.fields import (
    MAX_RESPONSES,
    MIN_RESPONSES,
    NormalizedItem,
    NormalizedResponse,
    RowInvalid,
    _check_prompt,
    _content_hash,
    _item,
    _messages,
    _model,
    _text,
)

ARENA_WINNERS: dict[str | None, list[list[int]]] = {
    "model_a": [[0], [1]],
    "model_b": [[1], [0]],
    "tie": [[0, 1]],
    "tie (bothbad)": [[0, 1]],
}
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
        key_scores = [response.metadata.get(key) for response in responses]
        if responses and None not in key_scores:
            reference = _ranking_by(key_scores, descending=True)
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


OASST_ROLES: dict[str | None, str] = {"prompter": "user", "assistant": "assistant"}


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
    pending: list[tuple[dict, str, list[dict]]] = [(root, "prompt", [])]  # (message, where, conversation before it)
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
