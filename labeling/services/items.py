"""Items as a manager sees them: browse and search, gold answers, priority, withdrawal."""

from dataclasses import dataclass, field
from datetime import datetime

from django.core.paginator import Page, Paginator
from django.db import transaction
from django.db.models import Prefetch, Q, QuerySet, prefetch_related_objects
from django.utils import timezone

from labeling.models import Assignment, Item, Judgment, Project
from labeling.services.assignment import leases_release
from labeling.services.errors import InvalidInput
from labeling.services.rankings import rank_of, ranking_from_numbers

PER_PAGE = 25
MAX_QUERY = 200
PRIORITY_RANGE = (-1_000_000, 1_000_000)
STATUSES = {
    "": "All items",
    "open": "Open",
    "complete": "Complete",
    "gold": "Gold",
    "withdrawn": "Withdrawn",
}


@dataclass
class JudgmentRow:
    """One judgment as the items page shows it: who, what (positions, best first), when."""

    annotator: str
    ranking: str
    strength: int | None
    both_bad: bool
    rationale: str
    created_at: datetime
    revision: int
    late: bool


@dataclass
class ItemRow:
    item: Item
    responses: list = field(default_factory=list)
    judgments: list[JudgmentRow] = field(default_factory=list)


def items_search(*, project: Project, query: str = "", status: str = "") -> QuerySet[Item]:
    """The project's items matching `query` (in the external id or the prompt text) and `status`, oldest first."""
    items = Item.objects.filter(project=project)
    query = (query or "").strip()[:MAX_QUERY]
    if query:
        # The prompt is JSON (a list of messages): its text form is searched, case-insensitively.
        items = items.filter(Q(external_id__icontains=query) | Q(prompt__icontains=query))
    if status == "open":
        items = items.filter(is_complete=False, withdrawn_at=None, is_gold=False)
    elif status == "complete":
        items = items.filter(is_complete=True)
    elif status == "gold":
        items = items.filter(is_gold=True)
    elif status == "withdrawn":
        items = items.exclude(withdrawn_at=None)
    elif status:
        raise InvalidInput(f"Status '{status}' is unknown; use one of {', '.join(key for key in STATUSES if key)}.")
    return items.order_by("id")


def items_page(*, project: Project, query: str = "", status: str = "", page: int | str = 1) -> tuple[Page, list]:
    """One page of matching items with their responses and judgments, in a constant number of queries."""
    paginator = Paginator(items_search(project=project, query=query, status=status), PER_PAGE)
    current = paginator.get_page(page)
    return current, item_rows(items=list(current.object_list))


def item_rows(*, items: list[Item]) -> list[ItemRow]:
    """Rows for these (loaded) items: two queries whatever their number."""
    prefetch_related_objects(
        items,
        "responses",
        Prefetch(
            "judgments",
            queryset=Judgment.objects.select_related("annotator").order_by("created_at"),
            to_attr="judgments_shown",
        ),
    )
    rows = []
    for item in items:
        responses = list(item.responses.all())
        position_of = {response.pk: response.position for response in responses}
        gold_ranks = rank_of(item.gold_answer, start=1)
        for response in responses:
            response.gold_rank = gold_ranks.get(response.position, "")
        rows.append(
            ItemRow(
                item=item,
                responses=responses,
                judgments=[_judgment_row(judgment, position_of) for judgment in item.judgments_shown],
            )
        )
    return rows


def _judgment_row(judgment: Judgment, position_of: dict[int, int]) -> JudgmentRow:
    groups = [" = ".join(str(position_of.get(pk, "?")) for pk in group) for group in judgment.ranking]
    return JudgmentRow(
        annotator=judgment.annotator.get_username(),
        ranking=" > ".join(groups),
        strength=judgment.strength,
        both_bad=judgment.both_bad,
        rationale=judgment.rationale,
        created_at=judgment.created_at,
        revision=judgment.revision,
        late=judgment.late,
    )


def gold_answer_from_ranks(*, ranks: dict[int, str | int], count: int) -> list[list[int]]:
    """Rank numbers per response position (1 = best; equal numbers tie) as a ranking of positions."""
    if sorted(ranks) != list(range(count)):
        raise InvalidInput(f"Give each of the {count} responses a rank (1 = best; equal ranks are a tie).")
    return ranking_from_numbers(ranks, count=count, name=lambda position: f"Response {position}: ")


def item_gold_set(*, item: Item, answer: list[list[int]] | None) -> Item:
    """Make the item gold with its known answer (a ranking of response positions), or, with None, not gold.

    A gold item leaves the ordinary queue: every annotator may be served it once, at the
    project's gold rate, and their answers feed their gold accuracy. Judgments stay.
    """
    with transaction.atomic():
        locked = Item.objects.select_for_update().get(pk=item.pk)
        if answer is not None:
            count = locked.responses.count()
            positions = sorted(position for group in answer for position in group) if isinstance(answer, list) else []
            if (
                not isinstance(answer, list)
                or not all(isinstance(group, list) and group for group in answer)
                or positions != list(range(count))
            ):
                raise InvalidInput(
                    f"A gold answer ranks each response position 0..{count - 1} exactly once, e.g. [[0], [1]]."
                )
        locked.is_gold = answer is not None
        locked.gold_answer = answer
        locked.save(update_fields=["is_gold", "gold_answer"])
        return locked


def item_priority_set(*, item: Item, priority: int | str) -> Item:
    """Set the priority: higher is handed out first (within the project's order of work)."""
    try:
        value = int(priority)
    except (TypeError, ValueError):
        raise InvalidInput(f"Priority must be a whole number (got {priority!r}).") from None
    low, high = PRIORITY_RANGE
    if not low <= value <= high:
        raise InvalidInput(f"Priority must be between {low:,} and {high:,} (got {value:,}).")
    Item.objects.filter(pk=item.pk).update(priority=value)
    item.priority = value
    return item


def item_withdraw(*, item: Item) -> Item:
    """Take an item out of the work: it is handed out no more, its judgments are kept, its live leases end.

    An annotator still holding it is told so when they submit (judgment_submit refuses
    a withdrawn item). Idempotent.
    """
    now = timezone.now()
    # First mark it, and commit: from then on no claim can lease it, so the leases
    # released next are all there will ever be. Doing both in one transaction would
    # take the item lock before the assignment locks, the reverse of a submit's order.
    with transaction.atomic():
        Item.objects.filter(pk=item.pk, withdrawn_at=None).update(withdrawn_at=now)
    leases_release(Assignment.objects.filter(item_id=item.pk), now=now)
    item.refresh_from_db()
    return item


def item_restore(*, item: Item) -> Item:
    """Undo a withdrawal: the item is handed out again where it left off."""
    Item.objects.filter(pk=item.pk).update(withdrawn_at=None)
    item.refresh_from_db()
    return item
