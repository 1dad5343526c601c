"""Each exported column in words, for the dataset card: its type and what it means.

A reader of the Hub page learns from `- `prompt` (list of {role, content} messages) — the
conversation so far` what `List({'role': Value('string'), ...})` would only tell a programmer.
"""

from typing import Any

from datasets import Features, List, Value

from labeling.services.exporting.styles import COLUMN_NOTES

_MESSAGES = "list of {role, content} messages"
_SCALARS = {"string": "string", "bool": "boolean", "float32": "float", "float64": "float"}

# Columns that may hold null, and when.
_NULL_WHEN = {
    "chosen_model": "unknown",
    "rejected_model": "unknown",
    "model": "unknown",
    "ranking_models": "unknown",
    "strength": "not given",
    "seconds": "not measured",
}

_STANDARD_TEXT = "starting with a space (TRL joins `prompt + {0}` as is)"

# (config, conversational) -> meaning; a key of one name serves every config and style.
# (Keys typed Any: a dict of str keys, COLUMN_NOTES, cannot be unpacked into str | tuple keys.)
_MEANINGS: dict[Any, str] = {
    ("prompt", True): "the conversation so far, ending with the user's turn",
    ("prompt", False): (
        "the conversation so far as text: `\\n\\nHuman: …` and `\\n\\nAssistant: …` turns "
        "(a system prompt as `\\n\\nSystem: …`), ending with `\\n\\nAssistant:`"
    ),
    ("chosen", True): "the preferred response: one assistant message",
    ("chosen", False): "the preferred response as text, " + _STANDARD_TEXT.format("chosen"),
    ("rejected", True): "the other response of the pair: one assistant message",
    ("rejected", False): "the other response of the pair as text, " + _STANDARD_TEXT.format("rejected"),
    ("completion", True): "one response to the prompt: one assistant message",
    ("completion", False): "one response to the prompt as text, " + _STANDARD_TEXT.format("completion"),
    "label": (
        "true: the annotators preferred this response (desirable, for KTO); false: they preferred the "
        "other response of its pair (undesirable)"
    ),
    "item_id": "the item's id in the project (the imported `id`, if the file had one); an item's rows share one split",
    "chosen_model": "the model that wrote `chosen`",
    "rejected_model": "the model that wrote `rejected`",
    "model": "the model that wrote `completion`",
    "votes": "how many judgments compared the pair (ties included)",
    "agreement": "the share of those votes that prefer the chosen side (1.0: every vote)",
    "judgment_id": "the judgment's id, the same in every export",
    "annotator": "a pseudonym of the annotator, the same within this project (never their name)",
    "ranking": "the annotator's ranking as response ids, best first; ids in one inner list were tied",
    "ranking_models": "the model of each response in `ranking`, in the same places",
    "shown_order": "the response ids in the order the annotator saw them (A, B, …)",
    "strength": "how much better the first place is, from 1 (slightly) to 3 (much)",
    "both_bad": "true when the annotator marked every response as bad",
    "rationale": "the annotator's reasons in their own words (may be empty)",
    "criteria": "the answers to the project's extra questions, as a JSON object in a string",
    "seconds": "seconds from taking the item to submitting, by the server's clock",
    "late": "true when the judgment arrived after its lease had expired (it still counts)",
    "created_at": "when the judgment was first submitted (ISO 8601, UTC)",
    "updated_at": "when it was last revised (ISO 8601, UTC)",
    **COLUMN_NOTES,
}


def column_lines(features: Features, *, style: str) -> list[str]:
    """One markdown bullet per column, in the export's order: name, type in words, meaning."""
    conversational = style == "conversational"
    return [
        f"- `{name}` ({type_in_words(name, feature)}) — {_meaning(name, conversational)}"
        for name, feature in features.items()
    ]


def type_in_words(name: str, feature) -> str:
    words = _words(feature)
    return f"{words}, null when {_NULL_WHEN[name]}" if name in _NULL_WHEN else words


def _words(feature) -> str:
    if isinstance(feature, Value):
        return _SCALARS.get(feature.dtype, "integer" if "int" in feature.dtype else feature.dtype)
    if isinstance(feature, List):
        inner = feature.feature
        if isinstance(inner, dict) and set(inner) == {"role", "content"}:
            return _MESSAGES
        if isinstance(inner, List):
            return "list of lists of " + _plural(_words(inner.feature))
        return "list of " + _plural(_words(inner))
    return type(feature).__name__  # every column the exporter writes is described above


def _plural(words: str) -> str:
    return {"boolean": "booleans", "string": "strings", "integer": "integers", "float": "floats"}.get(words, words)


def _meaning(name: str, conversational: bool) -> str:
    return _MEANINGS.get((name, conversational)) or _MEANINGS[name]
