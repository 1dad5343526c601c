"""Preference shapes: native rows, flat pairs, TRL preference rows and HH-RLHF transcripts."""

from labeling.services.parsing.shapes.fields import (
    GOLD_TRUE,
    MAX_ID_CHARS,
    MAX_MODEL_CHARS,
    NormalizedItem,
    NormalizedResponse,
    RowInvalid,
    _check_prompt,
    _completion,
    _content_hash,
    _item,
    _messages,
    _model,
    _parse_transcript,
    _prompt,
    _text,
    max_text_chars,
)


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
    item = _plain_flat_pair(row)
    return _any_flat_pair(row) if item is None else item


def _plain_flat_pair(row: dict) -> NormalizedItem | None:
    """The common flat pair in one pass: texts that need no transcript parsing, model names,
    a text id or none, no metadata or gold. It returns what `_any_flat_pair` would, or None
    for any other row, which `_any_flat_pair` then checks and names the fault of: it is the
    rule; this is the part of it most imported rows take, at a third of the cost."""
    get = row.get
    prompt, first, second = get("prompt"), get("response_a"), get("response_b")
    if type(prompt) is not str or type(first) is not str or type(second) is not str:
        return None
    prompt, first, second = prompt.strip(), first.strip(), second.strip()
    limit = max_text_chars()
    if (
        not prompt
        or not first
        or not second
        or first == second
        or len(prompt) > limit
        or len(first) > limit
        or len(second) > limit
        or "\x00" in prompt
        or "\x00" in first
        or "\x00" in second
        or prompt.startswith("Human:")
    ):
        return None
    model_a, model_b = get("model_a"), get("model_b")
    if model_a is None or model_a == "":
        model_a = ""
    elif type(model_a) is not str or len(model_a) > MAX_MODEL_CHARS:
        return None
    if model_b is None or model_b == "":
        model_b = ""
    elif type(model_b) is not str or len(model_b) > MAX_MODEL_CHARS:
        return None
    if get("metadata") or get("gold_answer") is not None or get("gold") in GOLD_TRUE:
        return None
    messages = [{"role": "user", "content": prompt}]
    external_id = get("id")
    if external_id is None or external_id == "":
        external_id = _content_hash(messages, [first, second])
    elif type(external_id) is str:
        external_id = external_id.strip()
        if not external_id or len(external_id) > MAX_ID_CHARS:
            return None
    else:
        return None
    responses = [NormalizedResponse(first, model_a.strip()), NormalizedResponse(second, model_b.strip())]
    return NormalizedItem(external_id, messages, responses, None, {}, None)


def _any_flat_pair(row: dict) -> NormalizedItem:
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
