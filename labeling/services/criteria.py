"""Criteria: a project's extra questions, and the answers to them.

A definition is a list of {key, label, type, per_response, required}:
- `likert`: 1..5, `flag`: yes/no, `text`: free text (at most 2,000 characters);
- `per_response`: asked once per response (answers keyed by response id) or once per item.
Answers are stored as {key: value} or {key: {response id: value}}.
"""

import re

from labeling.services.errors import InvalidInput
from labeling.services.text import text_checked

TYPES = ("likert", "flag", "text")
LIKERT = range(1, 6)
MAX_TEXT = 2000
MAX_KEY = 40
MAX_LABEL = 200
_KEY = re.compile(rf"^[a-z][a-z0-9_]{{0,{MAX_KEY - 1}}}$")


class CriterionInvalid(InvalidInput):
    """One criterion at fault: its place in the list (0-based) and the field, for a form to show the error beside it.

    `message` names the entry as `criteria[i].field` (the API's words); `reason` says the same for a
    form's row ("Key 'x' is used twice.").
    """

    def __init__(self, *, index: int, field: str | None, reason: str):
        super().__init__(f"criteria[{index}]" + (f".{field}" if field else "") + f" {reason}")
        self.index, self.field = index, field
        self.reason = f"{(field or 'this criterion').capitalize()} {reason}"


def criteria_definitions_validate(definitions) -> list[dict]:
    """A project's criteria, normalized; raises naming the entry and field at fault."""
    if definitions in (None, ""):
        return []
    if not isinstance(definitions, list):
        raise InvalidInput("Criteria must be a list of {key, label, type} objects.")
    result, keys = [], set()
    for index, entry in enumerate(definitions):
        if not isinstance(entry, dict):
            raise CriterionInvalid(index=index, field=None, reason="must be an object with key, label and type.")
        key = entry.get("key")
        if not isinstance(key, str) or not _KEY.match(key):
            raise CriterionInvalid(
                index=index,
                field="key",
                reason=f"must be lowercase letters, digits or _ (got {key!r}): "
                f"start with a letter, at most {MAX_KEY} characters.",
            )
        if key in keys:
            raise CriterionInvalid(index=index, field="key", reason=f"'{key}' is used twice.")
        keys.add(key)
        kind = entry.get("type")
        if kind not in TYPES:
            raise CriterionInvalid(
                index=index, field="type", reason=f"must be one of {', '.join(TYPES)} (got {kind!r})."
            )
        label = entry.get("label") or key.replace("_", " ").capitalize()
        if not isinstance(label, str) or len(label) > MAX_LABEL:
            raise CriterionInvalid(
                index=index, field="label", reason=f"must be text of at most {MAX_LABEL} characters."
            )
        if "\x00" in label:
            raise CriterionInvalid(index=index, field="label", reason="contains a NUL byte; remove it.")
        result.append(
            {
                "key": key,
                "label": label,
                "type": kind,
                "per_response": bool(entry.get("per_response", kind != "text")),
                "required": bool(entry.get("required", False)),
            }
        )
    return result


def criteria_answers_validate(*, definitions: list[dict], answers, response_ids: list[int]) -> dict:
    """Check answers against the definitions; returns them normalized (response ids as strings)."""
    answers = answers or {}
    if not isinstance(answers, dict):
        raise InvalidInput("`criteria` must be an object keyed by criterion.")
    known = {definition["key"] for definition in definitions}
    unknown = set(answers) - known
    if unknown:
        raise InvalidInput(f"Unknown criteria: {', '.join(sorted(unknown))}.")
    result = {}
    for definition in definitions:
        key, value = definition["key"], answers.get(definition["key"])
        if definition["per_response"]:
            value = _per_response(definition, value, response_ids)
        else:
            value = _answer(definition, value)
        if definition["required"] and (value is None or value == {} or value == ""):
            raise InvalidInput(f"Answer '{definition['label']}': it is required.")
        if value not in (None, {}, ""):
            result[key] = value
    return result


def _per_response(definition: dict, value, response_ids: list[int]) -> dict:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidInput(f"'{definition['label']}' must be answered per response.")
    allowed = {str(pk) for pk in response_ids}
    result = {}
    for response_id, answer in value.items():
        if str(response_id) not in allowed:
            raise InvalidInput(f"'{definition['label']}' names response {response_id!r}, which is not in this item.")
        checked = _answer(definition, answer)
        if checked is not None:
            result[str(response_id)] = checked
    if definition["required"] and set(result) != allowed:
        raise InvalidInput(f"Answer '{definition['label']}' for every response: it is required.")
    return result


def _answer(definition: dict, value):
    if value is None or value == "":
        return None
    kind, label = definition["type"], definition["label"]
    if kind == "likert":
        wrong = f"'{label}' takes a whole number from 1 to 5 (got {value!r})."
        if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
            raise InvalidInput(wrong)
        try:
            number = int(value)
        except (TypeError, ValueError):
            raise InvalidInput(wrong) from None
        if number not in LIKERT:
            raise InvalidInput(wrong)
        return number
    if kind == "flag":
        if isinstance(value, bool):
            return value
        if str(value).lower() in {"1", "true", "yes", "on"}:
            return True
        if str(value).lower() in {"0", "false", "no", "off"}:
            return False
        raise InvalidInput(f"'{label}' is yes or no (got {value!r}).")
    text = text_checked(str(value).strip(), f"'{label}'", limit=MAX_TEXT)
    return text or None
