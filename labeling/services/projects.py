"""Projects: created, their settings changed (and locked once judged), archived and reopened.

Members live in `labeling.services.members`, API tokens in `labeling.services.tokens`.
"""

from django.conf import settings
from django.contrib.auth.models import User
from django.db import transaction
from django.db.models import Case, Value, When
from django.utils import timezone
from django.utils.text import slugify

from labeling.models import Item, Judgment, Membership, Project
from labeling.services.criteria import criteria_definitions_validate
from labeling.services.errors import InvalidInput, NotFound
from labeling.services.text import text_checked


def project_get(*, slug: str) -> Project:
    project = Project.objects.filter(slug=slug).first()
    if project is None:
        raise NotFound(f"Project '{slug}' does not exist. Create it with `manage.py createproject {slug}`.")
    return project


def project_create(
    *,
    slug: str,
    title: str = "",
    mode: str = Project.Mode.PAIRWISE,
    overlap: int = 1,
    guidelines: str = "",
    lease_seconds: int | None = None,
    order: str = Project.Order.DEPTH_FIRST,
    license: str = "",  # empty: not set, and the dataset card says so
    min_votes: int | None = None,
    max_votes: int | None = None,
    gold_rate: float = 0.0,
    criteria: list | None = None,
    skip_reasons: list[str] | None = None,
    rationale_required: bool = False,
    show_model_names: bool = False,
) -> Project:
    """Create a project. Slugs are unique and URL-safe; overlap is at least 1.

    Adaptive overlap takes both `min_votes` and `max_votes` (1 <= min <= max).
    """
    if slugify(slug) != slug or not slug:
        raise InvalidInput(f"'{slug}' is not a valid slug: use lowercase letters, digits and hyphens.")
    texts = _cleaned({"title": title or slug.replace("-", " ").title(), "guidelines": guidelines, "license": license})
    title, guidelines, license = texts["title"], texts["guidelines"], texts["license"]
    _check_settings(
        mode=mode,
        order=order,
        overlap=overlap,
        min_votes=min_votes,
        max_votes=max_votes,
        gold_rate=gold_rate,
        lease_seconds=lease_seconds,
    )
    criteria = criteria_definitions_validate(criteria)
    skip_reasons = _skip_reasons(skip_reasons)
    with transaction.atomic():
        if Project.objects.filter(slug=slug).exists():
            raise InvalidInput(f"A project with slug '{slug}' already exists.")
        return Project.objects.create(
            slug=slug,
            title=title,
            mode=mode,
            overlap=overlap,
            guidelines=guidelines,
            lease_seconds=lease_seconds or settings.LABELING_DEFAULT_LEASE_SECONDS,
            order=order,
            license=license,
            min_votes=min_votes,
            max_votes=max_votes,
            gold_rate=gold_rate,
            criteria=criteria,
            skip_reasons=skip_reasons,
            rationale_required=rationale_required,
            show_model_names=show_model_names,
        )


def _check_settings(*, mode, order, overlap, min_votes, max_votes, gold_rate, lease_seconds) -> None:
    """The rules a project's settings obey, whether new or changed."""
    if mode not in Project.Mode.values:
        raise InvalidInput(f"Mode '{mode}' is unknown; use one of {', '.join(Project.Mode.values)}.")
    if order not in Project.Order.values:
        raise InvalidInput(f"Order '{order}' is unknown; use one of {', '.join(Project.Order.values)}.")
    if overlap < 1:
        raise InvalidInput(f"Overlap must be at least 1 (got {overlap}).")
    if (min_votes is None) != (max_votes is None):
        raise InvalidInput("Adaptive overlap needs both min votes and max votes (--min-votes, --max-votes).")
    if min_votes is not None and not 1 <= min_votes <= max_votes:
        raise InvalidInput(f"Need 1 <= min votes <= max votes (got {min_votes} and {max_votes}).")
    if not 0.0 <= gold_rate <= 1.0:
        raise InvalidInput(f"The gold rate is a share between 0 and 1 (got {gold_rate}).")
    if lease_seconds is not None and lease_seconds < 10:
        raise InvalidInput(f"Lease time must be at least 10 seconds (got {lease_seconds}).")


def _skip_reasons(reasons) -> list[str]:
    if not reasons:
        return []
    if not isinstance(reasons, list) or not all(isinstance(reason, str) and reason.strip() for reason in reasons):
        raise InvalidInput("Skip reasons must be a list of non-empty texts.")
    cleaned = [text_checked(reason.strip()[:200], "A skip reason") for reason in reasons]
    if len(set(cleaned)) != len(cleaned):
        raise InvalidInput("A skip reason is listed twice.")
    return cleaned


def project_create_managed(*, creator: User, **fields) -> Project:
    """Create a project (see `project_create` for its settings) with `creator` as its first manager.

    One transaction: a project never exists without a manager to run it.
    """
    with transaction.atomic():
        project = project_create(**fields)
        Membership.objects.create(project=project, user=creator, role=Membership.Role.MANAGER)
        return project


# -- changing a project's settings --------------------------------------------


class _Keep:
    """A setting left out of `project_update`: it keeps its value."""

    def __repr__(self) -> str:
        return "KEEP"


KEEP = _Keep()
_SETTINGS = (
    "title",
    "guidelines",
    "mode",
    "overlap",
    "min_votes",
    "max_votes",
    "lease_seconds",
    "order",
    "gold_rate",
    "criteria",
    "skip_reasons",
    "rationale_required",
    "show_model_names",
    "license",
)


def _judgment_count(project: Project) -> int:
    return Judgment.objects.filter(project=project).count()


def _judgments_exist(count: int) -> str:
    return f"{count:,} judgments already exist" if count != 1 else "1 judgment already exists"


def project_locks(*, project: Project) -> dict[str, str]:
    """The settings that existing judgments freeze, each with the reason; empty while there are none.

    `project_update` enforces these; the settings page shows them.
    """
    count = _judgment_count(project)
    if not count:
        return {}
    why = _judgments_exist(count)
    return {
        "mode": f"Locked: {why}, made in this mode. Start a new project to judge in the other mode.",
        "overlap": f"May only go up: {why}, and fewer votes per item would change what they count for.",
        "adaptive": f"Fixed and adaptive overlap cannot be swapped: {why}.",
        "criteria": (
            f"Existing criteria keep their key, type and per-response setting: {why} and may answer them. "
            "Labels and 'required' may change; new criteria may be added."
        ),
    }


def project_update(
    *,
    project: Project,
    title: str | _Keep = KEEP,
    guidelines: str | _Keep = KEEP,
    mode: str | _Keep = KEEP,
    overlap: int | _Keep = KEEP,
    min_votes: int | _Keep | None = KEEP,
    max_votes: int | _Keep | None = KEEP,
    lease_seconds: int | _Keep = KEEP,
    order: str | _Keep = KEEP,
    gold_rate: float | _Keep = KEEP,
    criteria: list | _Keep | None = KEEP,
    skip_reasons: list[str] | _Keep | None = KEEP,
    rationale_required: bool | _Keep = KEEP,
    show_model_names: bool | _Keep = KEEP,
    license: str | _Keep = KEEP,
) -> Project:
    """Change a project's settings; the ones left out keep their values.

    Protects the meaning of existing judgments: once there are any, the mode, the
    kind of overlap (fixed or adaptive) and the key, type and per-response setting of
    each criterion are frozen, and overlap, min and max votes may only go up. Items'
    vote targets follow a change of overlap (raising it reopens complete items).
    """
    given = {
        "title": title,
        "guidelines": guidelines,
        "mode": mode,
        "overlap": overlap,
        "min_votes": min_votes,
        "max_votes": max_votes,
        "lease_seconds": lease_seconds,
        "order": order,
        "gold_rate": gold_rate,
        "criteria": criteria,
        "skip_reasons": skip_reasons,
        "rationale_required": rationale_required,
        "show_model_names": show_model_names,
        "license": license,
    }
    changes = {name: value for name, value in given.items() if value is not KEEP}
    with transaction.atomic():
        # Two managers saving at once: the second waits and checks against the first's result.
        locked = Project.objects.select_for_update().get(pk=project.pk)
        before = {name: getattr(locked, name) for name in _SETTINGS}
        after = {**before, **_cleaned(changes)}
        _check_settings(
            mode=after["mode"],
            order=after["order"],
            overlap=after["overlap"],
            min_votes=after["min_votes"],
            max_votes=after["max_votes"],
            gold_rate=after["gold_rate"],
            lease_seconds=after["lease_seconds"],
        )
        judged = _judgment_count(locked)
        if judged:
            _check_locks(before, after, judged)
        for name, value in after.items():
            setattr(locked, name, value)
        locked.save()
        if _targets_changed(before, after):
            _retarget_items(locked)
        return locked


def _cleaned(changes: dict) -> dict:
    """Settings as given, checked and normalized; shared by project_create and project_update."""
    cleaned = dict(changes)
    for field in ("title", "guidelines", "license"):
        if field in cleaned:
            text_checked(cleaned[field] or "", f"The {field}")
    if "title" in cleaned:
        cleaned["title"] = (cleaned["title"] or "").strip()
        if not cleaned["title"] or len(cleaned["title"]) > 200:
            raise InvalidInput("A project needs a title of 1 to 200 characters.")
    if "license" in cleaned:
        cleaned["license"] = (cleaned["license"] or "").strip()
        if len(cleaned["license"]) > 64:
            raise InvalidInput("Name the export license in at most 64 characters, e.g. cc-by-4.0 (empty: not set).")
    if "guidelines" in cleaned:
        cleaned["guidelines"] = cleaned["guidelines"] or ""
    if "criteria" in cleaned:
        cleaned["criteria"] = criteria_definitions_validate(cleaned["criteria"])
    if "skip_reasons" in cleaned:
        cleaned["skip_reasons"] = _skip_reasons(cleaned["skip_reasons"])
    for flag in ("rationale_required", "show_model_names"):
        if flag in cleaned:
            cleaned[flag] = bool(cleaned[flag])
    return cleaned


def _check_locks(before: dict, after: dict, judged: int) -> None:
    """Refuse, naming every one, the changes that would alter what existing judgments mean."""
    problems = []
    if after["mode"] != before["mode"]:
        problems.append(f"the mode cannot change from {before['mode']} to {after['mode']}")
    was_adaptive, is_adaptive = before["min_votes"] is not None, after["min_votes"] is not None
    if was_adaptive != is_adaptive:
        problems.append("fixed and adaptive overlap cannot be swapped")
    elif not is_adaptive and after["overlap"] < before["overlap"]:
        problems.append(f"overlap may only go up (from {before['overlap']}, got {after['overlap']})")
    elif is_adaptive:
        for name in ("min_votes", "max_votes"):
            if after[name] < before[name]:
                problems.append(f"{name.replace('_', ' ')} may only go up (from {before[name]}, got {after[name]})")
    new_criteria = {definition["key"]: definition for definition in after["criteria"] or []}
    for old in before["criteria"] or []:
        new = new_criteria.get(old["key"])
        if new is None:
            problems.append(f"criterion '{old['key']}' cannot be removed")
        elif (new["type"], new["per_response"]) != (old["type"], old["per_response"]):
            problems.append(f"criterion '{old['key']}' must stay {old['type']}, {_scope(old)}")
    if problems:
        raise InvalidInput(
            f"These settings are locked because {_judgments_exist(judged)}: "
            + "; ".join(problems)
            + ". Start a new project to change them."
        )


def _scope(definition: dict) -> str:
    return "asked per response" if definition["per_response"] else "asked once per item"


def _targets_changed(before: dict, after: dict) -> bool:
    if (before["min_votes"] is None) != (after["min_votes"] is None):
        return True
    if after["min_votes"] is None:
        return before["overlap"] != after["overlap"]
    return before["min_votes"] != after["min_votes"]


def _retarget_items(project: Project) -> None:
    """Give every item the vote target of the new settings.

    Fixed overlap: the target is the overlap; an item is complete once it has that
    many votes (raising the overlap reopens items). Adaptive overlap: items with
    fewer votes than the new minimum ask for the minimum; the others settle as votes
    come in, against the new maximum.
    """
    items = Item.objects.filter(project=project)
    if project.adaptive:
        items.filter(votes__lt=project.min_votes).update(target=project.min_votes, is_complete=False)
        return
    items.update(
        target=project.overlap,
        is_complete=Case(When(votes__gte=project.overlap, then=Value(True)), default=Value(False)),
    )


def project_archive(*, project: Project) -> Project:
    """Archive: no more work is handed out; items, judgments and exports stay. Idempotent."""
    Project.objects.filter(pk=project.pk, archived_at=None).update(archived_at=timezone.now())
    project.refresh_from_db(fields=["archived_at"])
    return project


def project_reopen(*, project: Project) -> Project:
    """Undo an archive: work is handed out again. Idempotent."""
    Project.objects.filter(pk=project.pk).update(archived_at=None)
    project.refresh_from_db(fields=["archived_at"])
    return project
