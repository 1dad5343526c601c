"""Judgments: what annotators said, stored once per assignment."""

import uuid
from collections import Counter
from dataclasses import dataclass

from django.contrib.auth.models import User
from django.db import transaction
from django.utils import timezone

from labeling.db import sql, votes
from labeling.models import Assignment, Item, Judgment, JudgmentRevision, Project
from labeling.services.criteria import criteria_answers_validate
from labeling.services.errors import Conflict, InvalidInput, ItemWithdrawn, NotFound
from labeling.services.items import STRENGTH_WORDS, last_user_turn, plain_excerpt, ranking_label
from labeling.services.rankings import ranking_from_numbers
from labeling.services.text import text_checked

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


def ranking_from_ranks(*, assignment: Assignment, ranks: dict) -> Ranking:
    """Rank numbers per response id (1 = best; equal numbers tie) as a ranking."""
    if len(ranks) != len(assignment.shown_order):
        raise InvalidInput(f"Give every one of the {len(assignment.shown_order)} responses a rank.")
    return ranking_from_numbers(ranks, count=len(assignment.shown_order))


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
    assignment_id,
    annotator: User,
    ranking,
    project: Project | None = None,
    strength: int | None = None,
    both_bad: bool = False,
    rationale: str = "",
    criteria: dict | None = None,
    visible_seconds: float | str | None = None,
) -> tuple[Judgment, bool]:
    """Store the annotator's judgment for a leased item, once.

    `assignment_id`: one of the annotator's own assignments, in a project they still belong
    to (in `project`, when given); anything else is not found. Idempotent per assignment: a
    retry or double click returns the stored judgment and `False`. A judgment arriving after
    its lease expired is still stored.
    """
    _check_details(strength=strength, rationale=rationale)
    try:
        lease_id = uuid.UUID(str(assignment_id))
    except ValueError:
        raise NotFound("No such assignment.") from None
    now = timezone.now()
    with sql.writers_in_turn(), transaction.atomic():
        # Lock the assignment: a double submit waits here, then finds the first one's judgment.
        locked = votes.lease_locked(
            annotator_id=annotator.pk, assignment_id=lease_id, project_id=project.pk if project else None
        )
        if locked is None:
            raise NotFound("No such assignment.")
        # The locked row is the latest committed version, and a judgment is only ever stored
        # together with its assignment turning `submitted`, which no other state follows: so
        # only a submitted assignment can have one, and it is read in a fresh statement after the lock.
        if locked.state == Assignment.State.SUBMITTED:
            existing = Judgment.objects.filter(assignment=locked).first()
            if existing is not None:
                return existing, False
        if locked.state == Assignment.State.SKIPPED:
            raise Conflict("You skipped this item, so it cannot be judged any more.")
        if locked.item.withdrawn_at is not None:
            raise ItemWithdrawn("This item was withdrawn by a manager; your answer was not needed. Moving on.")
        answer = _answer_fields(
            project=locked.project,
            shown_order=locked.shown_order,
            ranking=ranking,
            strength=strength,
            both_bad=both_bad,
            rationale=rationale,
            criteria=criteria,
        )
        # The lease becomes a vote. A late submit's lease was already released, so it
        # takes a slot again: stored, never lost, even if that overshoots the target.
        released = locked.state == Assignment.State.EXPIRED
        judgment = Judgment(
            assignment=locked,
            project_id=locked.project_id,
            item_id=locked.item_id,
            annotator=annotator,
            **answer,
            seconds=round((now - locked.created_at).total_seconds(), 3),
            visible_seconds=_seconds(visible_seconds),
            late=released or locked.expires_at < now,
        )
        adaptive = locked.project.adaptive
        if votes.supports_one_statement() and not adaptive:
            votes.judgment_store_counted(judgment=judgment, lease=locked, released=released, finished_at=now)
            return judgment, True
        # The item row is locked (updated) before the judgment is inserted: the insert's
        # foreign key check takes a share lock on it, and upgrading that lock while a
        # claim waits for the same row deadlocks.
        counted = votes.vote_count(item_id=locked.item_id, released=released, settle=not adaptive)
        sql.insert(judgment)
        votes.lease_finish(lease=locked, finished_at=now)
        if adaptive:
            _settle(locked.item_id, *counted, project=locked.project)
        return judgment, True


def _settle(item_id: int, votes_now: int, filled: int, target: int, is_complete: bool, *, project: Project) -> None:
    """Adaptive overlap: the item's vote is counted and its judgment stored; once its votes reach
    its target, is it complete, or how many votes should it get?"""
    if votes_now < target or is_complete:
        return
    min_votes, max_votes = project.min_votes, project.max_votes
    assert min_votes is not None and max_votes is not None  # only adaptive projects settle
    rankings = list(Judgment.objects.filter(item_id=item_id).values_list("ranking", flat=True))
    complete, target = adaptive_settle(rankings, min_votes=min_votes, max_votes=max_votes)
    Item.objects.filter(pk=item_id).update(is_complete=complete, target=target)


def adaptive_settle(rankings: list, *, min_votes: int, max_votes: int) -> tuple[bool, int]:
    """Adaptive overlap: is an item with these judgments complete, and if not, how many votes should it get?

    Complete when the first `min_votes` judgments agree, when the leading answer is
    two votes ahead of the next, or at `max_votes`; otherwise ask for one more.
    """
    votes = len(rankings)
    tally = Counter(tuple(tuple(sorted(group)) for group in ranking) for ranking in rankings)
    counts = [*sorted(tally.values(), reverse=True), 0]
    leader, runner_up = counts[0], counts[1]
    if votes >= max_votes or (votes >= min_votes and runner_up == 0) or (votes > min_votes and leader - runner_up >= 2):
        return True, max(votes, min_votes)
    return False, min(votes + 1, max_votes)


def _check_details(*, strength, rationale) -> None:
    if strength is not None and strength not in STRENGTHS:
        raise InvalidInput("`strength` must be 1 (slightly), 2 (clearly) or 3 (much better).")
    if rationale is not None and not isinstance(rationale, str):
        raise InvalidInput("`rationale` must be text.")
    if rationale:
        text_checked(rationale, "The rationale", limit=MAX_RATIONALE_CHARS)


def _answer_fields(*, project: Project, shown_order, ranking, strength, both_bad, rationale, criteria) -> dict:
    """The judgment's answer (ranking, strength, both_bad, rationale, criteria), checked against
    what was shown and the project's rules (after `_check_details`, which the callers run
    before taking any lock)."""
    ranking = ranking_validate(ranking=ranking, shown_order=shown_order)
    rationale = (rationale or "").strip()
    if project.rationale_required and not rationale:
        raise InvalidInput("This project asks for a rationale: say briefly why.")
    answers = criteria_answers_validate(definitions=project.criteria or [], answers=criteria, response_ids=shown_order)
    tie = len(ranking) == 1
    return {
        "ranking": ranking,
        "strength": None if tie else strength,
        "both_bad": bool(both_bad),
        "rationale": rationale,
        "criteria": answers,
    }


def _seconds(value) -> float | None:
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        return None
    return round(seconds, 3) if 0 <= seconds < 7 * 24 * 3600 else None


def judgment_revise(
    *,
    judgment: Judgment,
    annotator: User,
    ranking,
    strength: int | None = None,
    both_bad: bool = False,
    rationale: str = "",
    criteria: dict | None = None,
) -> Judgment:
    """Change a stored judgment, keeping the earlier version; only while the project is open.

    Vote counters do not move: it is still one judgment of one assignment.
    """
    _check_details(strength=strength, rationale=rationale)
    with transaction.atomic():
        # Lock the judgment so two revisions in flight keep every version.
        locked = (
            Judgment.objects.select_for_update(of=("self",))
            .select_related("project", "assignment")
            .filter(pk=judgment.pk, annotator=annotator)
            .first()
        )
        if locked is None:
            raise NotFound("No such judgment.")
        if locked.project.archived_at is not None:
            raise Conflict("This project is archived; its judgments can no longer change.")
        answer = _answer_fields(
            project=locked.project,
            shown_order=locked.assignment.shown_order,
            ranking=ranking,
            strength=strength,
            both_bad=both_bad,
            rationale=rationale,
            criteria=criteria,
        )
        JudgmentRevision.objects.create(
            judgment=locked,
            revision=locked.revision,
            ranking=locked.ranking,
            strength=locked.strength,
            both_bad=locked.both_bad,
            rationale=locked.rationale,
            criteria=locked.criteria,
            made_at=locked.updated_at,
        )
        for field, value in answer.items():
            setattr(locked, field, value)
        locked.revision += 1
        locked.save()
        return locked


@dataclass(frozen=True)
class HistoryRow:
    """One past judgment as its annotator remembers it: what the item asked, and what they chose."""

    judgment: Judgment
    excerpt: str  # the prompt's last user turn, as plain text
    answer: str  # in the labels the annotator saw: "A over B", "Tie", "C > A = B"
    strength: str  # "slightly", "clearly", "much", or ""


def judgments_history(*, project: Project, annotator: User, limit: int = 200) -> list[HistoryRow]:
    """The annotator's judgments in this project, newest first, in the terms of their own screen."""
    judgments = (
        Judgment.objects.filter(project=project, annotator=annotator)
        .select_related("item", "assignment")
        .order_by("-created_at")[:limit]
    )
    rows = []
    for judgment in judgments:
        shown = {pk: index for index, pk in enumerate(judgment.assignment.shown_order)}
        ranking = [[shown[pk] for pk in group if pk in shown] for group in judgment.ranking]
        rows.append(
            HistoryRow(
                judgment=judgment,
                excerpt=plain_excerpt(last_user_turn(judgment.item.prompt), limit=100),
                answer=ranking_label(ranking, count=len(shown)),
                strength=STRENGTH_WORDS.get(judgment.strength, ""),
            )
        )
    return rows
