"""Items as a manager sees them: a sortable table, each row's details, gold answers, priority, withdrawal.

The Items page names responses the way annotators name them, by letter, but in one
fixed order: A is the response at position 0 (the first one the page lists), B the
next, and so on (annotators each saw them shuffled). Gold answers and rankings are
stored as groups of positions, best first; the letters are made and read here only.
"""

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

from django.core.paginator import Page, Paginator
from django.db import transaction
from django.db.models import Prefetch, Q, QuerySet, prefetch_related_objects
from django.utils import timezone
from markdown_it import MarkdownIt

from labeling.models import Assignment, Item, Judgment, Project, Response
from labeling.services.assignment import leases_release
from labeling.services.errors import InvalidInput
from labeling.services.rankings import rank_of, ranking_from_numbers

PER_PAGE = 50
PER_PAGE_CHOICES = (50, 100)
MAX_QUERY = 200
EXCERPT_CHARS = 140
PRIORITY_RANGE = (-1_000_000, 1_000_000)
STATUSES = {
    "": "All items",
    "open": "Open",
    "complete": "Complete",
    "gold": "Gold",
    "withdrawn": "Withdrawn",
}
# Sort keys of the table (a leading "-" reverses them), each with its columns; the id breaks ties.
SORTS = {
    "id": ("external_id", "id"),
    "votes": ("votes", "id"),
    "priority": ("priority", "id"),
}
DEFAULT_SORT = ""  # import order
LABELS = "ABCDEFGH"  # responses 0..7 (an item has at most eight)
STRENGTH_WORDS: dict[int | None, str] = {1: "slightly", 2: "clearly", 3: "much"}
_PLAIN = MarkdownIt("commonmark").enable("table").enable("strikethrough")


def response_label(position: int) -> str:
    """The letter of the response at `position` (0 = A): stored on the Items page, as shown on the annotate page."""
    return LABELS[position] if 0 <= position < len(LABELS) else f"#{position + 1}"


def ranking_label(ranking: list[list[int]], *, count: int) -> str:
    """A ranking of positions, best first, as the manager reads it.

    Two responses: "B over A" or "Tie"; more: "C > A = B > D" (= ties, > is better than).
    """
    groups = [[response_label(position) for position in sorted(group)] for group in ranking or []]
    if count == 2 and len(groups) == 1:
        return "Tie"
    if count == 2 and len(groups) == 2:
        return f"{groups[0][0]} over {groups[1][0]}"
    return " > ".join(" = ".join(group) for group in groups)


def pairwise_choice(ranking: list[list[int]] | None) -> str:
    """A two-response ranking of positions as the choice "A", "B" or "tie" ("" for none)."""
    return {((0,), (1,)): "A", ((1,), (0,)): "B", ((0, 1),): "tie"}.get(
        tuple(tuple(sorted(group)) for group in ranking or []), ""
    )


def gold_answer_from_labels(*, count: int, choice: str = "", ranks: dict[str, str] | None = None) -> list[list[int]]:
    """A gold answer as the Items page enters it, as the ranking of positions it is stored as.

    Two responses: the choice A, B or tie. More: a rank number per letter (1 = best;
    equal numbers tie).
    """
    choice = (choice or "").strip()
    if count == 2 and choice:
        answer = {"a": [[0], [1]], "b": [[1], [0]], "tie": [[0, 1]]}.get(choice.lower())
        if answer is None:
            raise InvalidInput(f"Gold answer {choice[:20]!r} is unknown: choose A, B or Tie.")
        return answer
    given = {
        position: rank
        for position, rank in ((LABELS.find(label), rank) for label, rank in (ranks or {}).items())
        if position >= 0 and str(rank).strip() != ""
    }
    if count == 2 and not given:
        raise InvalidInput("Choose the gold answer: A, B or Tie.")
    return gold_answer_from_ranks(ranks=given, count=count)


def gold_answer_from_ranks(*, ranks: Mapping[int, str | int], count: int) -> list[list[int]]:
    """Rank numbers per response position (1 = best; equal numbers tie) as a ranking of positions."""
    if sorted(ranks) != list(range(count)):
        raise InvalidInput(f"Give each of the {count} responses a rank (1 = best; equal ranks are a tie).")
    return ranking_from_numbers(ranks, count=count, name=lambda position: f"Response {response_label(position)}: ")


def plain_excerpt(text: str, *, limit: int = EXCERPT_CHARS) -> str:
    """Untrusted markdown as one line of plain text (its words, no markup), cut at `limit` characters.

    The template escapes it like any text; nothing here is HTML.
    """
    words = []
    for token in _PLAIN.parse((text or "")[: limit * 4]):
        if token.type in ("fence", "code_block"):
            words.append(token.content)
        for child in token.children or []:
            if child.type in ("text", "code_inline"):
                words.append(child.content)
            elif child.type in ("softbreak", "hardbreak"):
                words.append(" ")
        if token.type.endswith("_close") and token.block:
            words.append(" ")
    line = " ".join("".join(words).split())
    return line if len(line) <= limit else line[: limit - 1].rstrip() + "…"


def last_user_turn(prompt) -> str:
    """The prompt's last user message (what the item asks), whatever its shape."""
    if isinstance(prompt, str):
        return prompt
    for message in reversed(prompt or []):
        if isinstance(message, dict) and message.get("role") == "user":
            return str(message.get("content", ""))
    return ""


@dataclass
class JudgmentRow:
    """One judgment as the Items page shows it: who, what (in letters), how much, when."""

    annotator: str
    ranking: str
    strength: int | None
    strength_word: str
    both_bad: bool
    rationale: str
    created_at: datetime
    revision: int
    late: bool


@dataclass(frozen=True)
class ResponseRow:
    """One response as the Items page lists it: its letter (by position) and its rank in the gold answer."""

    pk: int
    label: str
    model: str
    content: str
    gold_rank: int | str  # 1 = best; "" without a gold answer


@dataclass
class ItemDetail:
    """What opens under a row: the responses, labelled in position order, and who judged what."""

    responses: list[ResponseRow] = field(default_factory=list)
    judgments: list[JudgmentRow] = field(default_factory=list)
    gold_choice: str = ""
    reference: str = ""

    @property
    def pairwise(self) -> bool:
        return len(self.responses) == 2


@dataclass
class ItemRow:
    """One row of the table: the item, its prompt in a line, its votes' majority and gold answer in letters."""

    item: Item
    excerpt: str
    state: str
    count: int
    judged: int = 0
    majority: str = ""
    majority_votes: int = 0
    gold: str = ""
    detail: ItemDetail | None = None

    @property
    def split(self) -> bool:
        """Judged, but no one answer has more votes than every other."""
        return self.judged > 0 and not self.majority


def items_search(*, project: Project, query: str = "", status: str = "", sort: str = DEFAULT_SORT) -> QuerySet[Item]:
    """The project's items matching `query` (in the external id or the prompt text) and `status`,
    in the order `sort` names (a key of SORTS, "-" first to reverse it; import order by default)."""
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
    if not sort:
        return items.order_by("id")
    descending, key = sort.startswith("-"), sort.removeprefix("-")
    if key not in SORTS:
        raise InvalidInput(f"Sort '{sort}' is unknown; use one of {', '.join(SORTS)} (with '-' first to reverse).")
    return items.order_by(*(f"-{column}" if descending else column for column in SORTS[key]))


def items_page(
    *,
    project: Project,
    query: str = "",
    status: str = "",
    sort: str = DEFAULT_SORT,
    per_page: int = PER_PAGE,
    page: int | str = 1,
    open_id: int | None = None,
) -> tuple[Page, list[ItemRow]]:
    """One page of matching items as table rows, in a constant number of queries.

    The row of `open_id`, when it is on the page, comes with its details.
    """
    if per_page not in PER_PAGE_CHOICES:
        per_page = PER_PAGE
    paginator = Paginator(items_search(project=project, query=query, status=status, sort=sort), per_page)
    current = paginator.get_page(page)
    return current, item_rows(items=list(current.object_list), open_ids={open_id} if open_id else set())


def item_rows(*, items: list[Item], open_ids: set[int] | None = None) -> list[ItemRow]:
    """Rows for these (loaded) items, with details for those in `open_ids`.

    Two queries whatever their number, and two more when any row opens.
    """
    ids = [item.pk for item in items]
    position_of: dict[int, int] = {}
    counts: Counter[int] = Counter()
    for pk, item_id, position in Response.objects.filter(item_id__in=ids).values_list("id", "item_id", "position"):
        position_of[pk] = position
        counts[item_id] += 1
    votes: dict[int, Counter] = {pk: Counter() for pk in ids}
    for item_id, ranking in Judgment.objects.filter(item_id__in=ids).values_list("item_id", "ranking"):
        # Of two responses the whole ranking is the vote; of more, the best ones (whole rankings rarely agree).
        positions = _positions(ranking, position_of)
        votes[item_id][positions if counts[item_id] == 2 else positions[:1]] += 1
    opened = _details([item for item in items if item.pk in (open_ids or set())], position_of)
    rows = []
    for item in items:
        count = counts[item.pk]
        row = ItemRow(item=item, excerpt=plain_excerpt(last_user_turn(item.prompt)), state=_state(item), count=count)
        row.judged = sum(votes[item.pk].values())
        ranked = votes[item.pk].most_common(2)
        if ranked and (len(ranked) == 1 or ranked[0][1] > ranked[1][1]):
            ranking, row.majority_votes = ranked[0]
            row.majority = ranking_label([list(group) for group in ranking], count=count)
            if count != 2:
                row.majority += " best"
        if item.is_gold and item.gold_answer:
            row.gold = ranking_label(item.gold_answer, count=count)
        row.detail = opened.get(item.pk)
        rows.append(row)
    return rows


def _positions(ranking, position_of: dict[int, int]) -> tuple[tuple[int, ...], ...]:
    """A ranking of response ids as a ranking of positions (hashable, to be counted)."""
    return tuple(tuple(sorted(position_of.get(pk, -1) for pk in group)) for group in ranking or [])


def _state(item: Item) -> str:
    if item.withdrawn_at is not None:
        return "withdrawn"
    return "complete" if item.is_complete else "open"


def _details(items: list[Item], position_of: dict[int, int]) -> dict[int, ItemDetail]:
    if not items:
        return {}
    prefetch_related_objects(
        items,
        "responses",
        Prefetch(
            "judgments",
            queryset=Judgment.objects.select_related("annotator").order_by("created_at"),
            to_attr="judgments_shown",
        ),
    )
    details = {}
    for item in items:
        gold_ranks = rank_of(item.gold_answer, start=1) if item.is_gold else {}
        responses = [
            ResponseRow(
                pk=response.pk,
                label=response_label(response.position),
                model=response.model,
                content=response.content,
                gold_rank=gold_ranks.get(response.position, ""),
            )
            for response in item.responses.all()
        ]
        count = len(responses)
        shown: list[Judgment] = item.judgments_shown  # type: ignore[attr-defined]  # set by Prefetch(to_attr=...) above
        details[item.pk] = ItemDetail(
            responses=responses,
            judgments=[_judgment_row(judgment, position_of, count) for judgment in shown],
            gold_choice=pairwise_choice(item.gold_answer) if item.is_gold else "",
            reference=ranking_label(item.reference, count=count) if item.reference else "",
        )
    return details


def _judgment_row(judgment: Judgment, position_of: dict[int, int], count: int) -> JudgmentRow:
    ranking = [list(group) for group in _positions(judgment.ranking, position_of)]
    return JudgmentRow(
        annotator=judgment.annotator.get_username(),
        ranking=ranking_label(ranking, count=count),
        strength=judgment.strength,
        strength_word=STRENGTH_WORDS.get(judgment.strength, ""),
        both_bad=judgment.both_bad,
        rationale=judgment.rationale,
        created_at=judgment.created_at,
        revision=judgment.revision,
        late=judgment.late,
    )


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
