"""Judgments: what annotators said, stored once per assignment."""

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.db.models import Case, F, Value, When
from django.utils import timezone

from labeling.models import Assignment, Item, Judgment
from labeling.services.errors import Conflict, InvalidInput, NotFound

Ranking = list[list[int]]
PAIRWISE_CHOICES = ("A", "B", "tie")
STRENGTHS = (1, 2, 3)
MAX_RATIONALE_CHARS = 10_000


def ranking_from_choice(*, assignment: Assignment, choice: str) -> Ranking:
    """A pairwise answer (A = left, B = right, as shown to this annotator) as a ranking."""
    if len(assignment.shown_order) != 2:
        raise InvalidInput("A/B/tie answers need exactly two responses; rank them instead.")
    left, right = assignment.shown_order
    normalized = {"a": "A", "1": "A", "b": "B", "2": "B", "tie": "tie", "t": "tie", "3": "tie"}.get(
        str(choice).strip().lower()
    )
    if normalized is None:
        raise InvalidInput("Choose A, B or tie.")
    return {"A": [[left], [right]], "B": [[right], [left]], "tie": [[left, right]]}[normalized]


def ranking_validate(*, ranking, shown_order: list[int]) -> Ranking:
    """Every shown response exactly once, best first; a group of several ids is a tie."""
    if not isinstance(ranking, list) or not ranking:
        raise InvalidInput("`ranking` must be a non-empty list of groups of response ids, best first.")
    expected = {int(pk) for pk in shown_order}
    seen: list[int] = []
    result: Ranking = []
    for index, group in enumerate(ranking):
        if not isinstance(group, list) or not group:
            raise InvalidInput(f"`ranking[{index}]` must be a non-empty list of response ids.")
        ids = []
        for value in group:
            try:
                pk = int(value)
            except (TypeError, ValueError):
                raise InvalidInput(f"`ranking[{index}]` holds {value!r}, which is not a response id.") from None
            if pk not in expected:
                raise InvalidInput(f"Response {value!r} does not belong to this item.")
            ids.append(pk)
        seen.extend(ids)
        result.append(ids)
    if len(seen) != len(set(seen)):
        raise InvalidInput("A response appears more than once in `ranking`.")
    if set(seen) != expected:
        raise InvalidInput(f"`ranking` must place all {len(expected)} responses of the item.")
    return result


def judgment_submit(
    *,
    assignment: Assignment,
    annotator: AbstractBaseUser,
    ranking,
    strength: int | None = None,
    both_bad: bool = False,
    rationale: str = "",
    criteria: dict | None = None,
) -> tuple[Judgment, bool]:
    """Store the annotator's judgment for a leased item, once.

    Idempotent per assignment: a retry or double click returns the stored judgment
    and `False`. A judgment arriving after its lease expired is still stored.
    """
    if strength is not None and strength not in STRENGTHS:
        raise InvalidInput("`strength` must be 1 (slightly), 2 (clearly) or 3 (much better).")
    rationale = rationale or ""
    if len(rationale) > MAX_RATIONALE_CHARS:
        raise InvalidInput(
            f"The rationale is too long ({len(rationale):,} characters; at most {MAX_RATIONALE_CHARS:,})."
        )
    if criteria is not None and not isinstance(criteria, dict):
        raise InvalidInput("`criteria` must be an object.")
    now = timezone.now()
    with transaction.atomic():
        # Lock the assignment: a double submit waits here, then finds the first one's judgment.
        locked = Assignment.objects.select_for_update().filter(pk=assignment.pk, annotator=annotator).first()
        if locked is None:
            raise NotFound("No such assignment.")
        existing = Judgment.objects.filter(assignment=locked).first()
        if existing is not None:
            return existing, False
        if locked.state == Assignment.State.SKIPPED:
            raise Conflict("You skipped this item, so it cannot be judged any more.")
        validated = ranking_validate(ranking=ranking, shown_order=locked.shown_order)
        released = locked.state == Assignment.State.EXPIRED
        judgment = Judgment.objects.create(
            assignment=locked,
            project_id=locked.project_id,
            item_id=locked.item_id,
            annotator=annotator,
            ranking=validated,
            strength=strength,
            both_bad=bool(both_bad),
            rationale=rationale.strip(),
            criteria=criteria or {},
            seconds=round((now - locked.created_at).total_seconds(), 3),
            late=released or locked.expires_at < now,
        )
        Assignment.objects.filter(pk=locked.pk).update(state=Assignment.State.SUBMITTED, finished_at=now)
        # The lease becomes a vote. A late submit's lease was already released, so it
        # takes a slot again: stored, never lost, even if that overshoots the target.
        Item.objects.filter(pk=locked.item_id).update(
            votes=F("votes") + 1,
            filled=F("filled") + (1 if released else 0),
            is_complete=Case(When(votes__gte=F("target") - 1, then=Value(True)), default=F("is_complete")),
        )
        return judgment, True
