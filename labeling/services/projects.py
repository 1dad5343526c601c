"""Projects, memberships and API tokens."""

import copy
import hashlib
import secrets
from time import monotonic

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Case, Count, OuterRef, Q, QuerySet, Subquery, Value, When
from django.db.models.functions import Coalesce
from django.utils import timezone
from django.utils.text import slugify

from labeling.models import ApiToken, Assignment, Item, Judgment, Membership, Project
from labeling.services.assignment import leases_release
from labeling.services.criteria import criteria_definitions_validate
from labeling.services.errors import InvalidInput, NotFound
from labeling.services.text import text_checked

User = get_user_model()

TOKEN_PREFIX = "hf_lbl_"  # noqa: S105 - a public prefix, not a secret
TOKEN_NAME_MAX = 100


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


def _check_role(role: str) -> None:
    if role not in Membership.Role.values:
        raise InvalidInput(f"Role '{role}' is unknown; use one of {', '.join(Membership.Role.values)}.")


def membership_add(
    *,
    project: Project,
    username: str,
    role: str = Membership.Role.ANNOTATOR,
    create: bool = False,
    password: str | None = None,
) -> Membership:
    """Make `username` a member of `project` with `role` (updating the role if already a member).

    A role change goes through `membership_role_set`, so the last manager stays one.
    """
    text_checked(username or "", "The username", limit=150)
    _check_role(role)
    with transaction.atomic():
        user = User.objects.filter(username=username).first()
        if user is None:
            if not create:
                raise NotFound(f"User '{username}' does not exist; pass --create to create it.")
            user = _new_user(username)
            if password:
                user.set_password(password)
            else:
                user.set_unusable_password()
            user.save()
        elif password:
            user.set_password(password)
            user.save(update_fields=["password"])
        membership = Membership.objects.filter(project=project, user=user).first()
        if membership is not None:
            return membership_role_set(membership=membership, role=role)
        return Membership.objects.create(project=project, user=user, role=role)


def _hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def token_create(*, username: str, name: str = "") -> tuple[ApiToken, str]:
    """Create an API token for the user; returns the row and the token, which is never stored."""
    user = User.objects.filter(username=username).first()
    if user is None:
        raise NotFound(f"User '{username}' does not exist.")
    name = text_checked((name or "").strip(), "A token's name")
    if len(name) > TOKEN_NAME_MAX:
        raise InvalidInput(f"A token's name is at most {TOKEN_NAME_MAX} characters (got {len(name)}).")
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    row = ApiToken.objects.create(user=user, name=name, prefix=token[:12], key_hash=_hash_token(token))
    return row, token


def token_authenticate(*, token: str) -> AbstractBaseUser | None:
    """The active user holding this token, or None."""
    if not token or not token.startswith(TOKEN_PREFIX):
        return None
    row = ApiToken.objects.select_related("user").filter(key_hash=_hash_token(token), revoked_at=None).first()
    if row is None or not row.user.is_active:
        return None
    now = timezone.now()
    # Touch at most once a minute so reads stay reads.
    if row.last_used_at is None or (now - row.last_used_at).total_seconds() > 60:
        ApiToken.objects.filter(pk=row.pk).update(last_used_at=now)
    return row.user


# token -> (monotonic deadline, user as read then). Per process; see API_TOKEN_CACHE_SECONDS.
_token_cache: dict[str, tuple[float, AbstractBaseUser]] = {}
_TOKEN_CACHE_MAX = 10_000


def token_user(*, token: str) -> AbstractBaseUser | None:
    """The user holding `token`, checked against the database at most every API_TOKEN_CACHE_SECONDS.

    A revoked token (or a deactivated user) keeps working in a process that checked it
    less than that many seconds before, never longer; refusals are never cached.
    """
    now = monotonic()
    cached = _token_cache.get(token)
    if cached is not None and cached[0] > now:
        return copy.copy(cached[1])  # a copy: per-request caches (permissions) must not outlive the request
    user = token_authenticate(token=token)
    ttl = settings.API_TOKEN_CACHE_SECONDS
    if user is None or ttl <= 0:
        _token_cache.pop(token, None)
        return user
    if len(_token_cache) >= _TOKEN_CACHE_MAX:
        _token_cache.clear()
    _token_cache[token] = (now + ttl, copy.copy(user))
    return user


def project_create_managed(*, creator: AbstractBaseUser, **fields) -> Project:
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


# -- members ------------------------------------------------------------------


def _new_user(username: str) -> AbstractBaseUser:
    """An unsaved user with that name, checked by the user model's own validators."""
    user = User(username=username)
    try:
        user.full_clean(exclude=["password"], validate_unique=False)
    except ValidationError as error:
        raise InvalidInput(f"Username: {' '.join(error.message_dict.get('username', error.messages))}") from None
    return user


def member_create(
    *, project: Project, username: str, password: str, role: str = Membership.Role.ANNOTATOR
) -> Membership:
    """Create a user with a password and make them a member. Never touches an existing account."""
    _check_role(role)
    username = (username or "").strip()
    user = _new_user(username)
    try:
        validate_password(password, user=user)
    except ValidationError as error:
        raise InvalidInput(f"Password: {' '.join(error.messages)}") from None
    user.set_password(password)
    try:
        with transaction.atomic():
            if User.objects.filter(username=username).exists():
                raise InvalidInput(f"User '{username}' already exists; add them as an existing user instead.")
            user.save()
            return Membership.objects.create(project=project, user=user, role=role)
    except IntegrityError:  # the same username created at the same moment
        raise InvalidInput(f"User '{username}' already exists; add them as an existing user instead.") from None


def _lock_managers_and(membership: Membership) -> Membership:
    """Lock the project's manager memberships and `membership`, in one order, and return it fresh.

    Two managers demoting or removing each other at once would otherwise both see
    another manager left, and leave the project with none.
    """
    rows = list(
        Membership.objects.select_for_update()
        .filter(project_id=membership.project_id)
        .filter(Q(role=Membership.Role.MANAGER) | Q(pk=membership.pk))
        .order_by("pk")
    )
    locked = next((row for row in rows if row.pk == membership.pk), None)
    if locked is None:
        raise NotFound("This person is no longer a member of the project.")
    locked.managers_left = sum(1 for row in rows if row.role == Membership.Role.MANAGER and row.pk != locked.pk)
    return locked


def membership_role_set(*, membership: Membership, role: str) -> Membership:
    """Change a member's role; a project always keeps at least one manager."""
    _check_role(role)
    with transaction.atomic():
        locked = _lock_managers_and(membership)
        if locked.role == Membership.Role.MANAGER and role != locked.role and not locked.managers_left:
            raise InvalidInput(
                f"{locked.user.username} is the project's only manager; make someone else a manager first."
            )
        Membership.objects.filter(pk=locked.pk).update(role=role)
        locked.role = role
        return locked


def membership_remove(*, membership: Membership) -> None:
    """Take a member out of the project. Their judgments stay; their live leases are released.

    A project always keeps at least one manager.
    """
    with transaction.atomic():
        locked = _lock_managers_and(membership)
        if locked.role == Membership.Role.MANAGER and not locked.managers_left:
            raise InvalidInput(
                f"{locked.user.username} is the project's only manager; make someone else a manager first."
            )
        leases_release(
            Assignment.objects.filter(project_id=locked.project_id, annotator_id=locked.user_id), now=timezone.now()
        )
        locked.delete()


def members_list(*, project: Project) -> QuerySet[Membership]:
    """The project's members with their users and judgment counts, managers first, then by name."""
    judged = (
        Judgment.objects.filter(project=project, annotator=OuterRef("user"))
        .order_by()
        .values("annotator")
        .annotate(count=Count("pk"))
        .values("count")
    )
    return (
        Membership.objects.filter(project=project)
        .select_related("user")
        .annotate(judgments=Coalesce(Subquery(judged), 0))
        .order_by(Case(When(role=Membership.Role.MANAGER, then=Value(0)), default=Value(1)), "user__username")
    )


# -- API tokens -----------------------------------------------------------------


def tokens_for_user(*, user: AbstractBaseUser) -> QuerySet[ApiToken]:
    """The user's own tokens, newest first, revoked ones included (marked)."""
    return ApiToken.objects.filter(user=user).order_by("-created_at", "-pk")


def token_revoke(*, user: AbstractBaseUser, token_id: int | str) -> ApiToken:
    """Revoke one of the user's own tokens; another user's token is not found. Idempotent."""
    try:
        pk = int(token_id)
    except (TypeError, ValueError):
        raise NotFound("No such token.") from None
    row = ApiToken.objects.filter(pk=pk, user=user).first()
    if row is None:
        raise NotFound("No such token.")
    ApiToken.objects.filter(pk=row.pk, revoked_at=None).update(revoked_at=timezone.now())
    row.refresh_from_db(fields=["revoked_at"])
    return row


def member_add(*, project: Project, username: str, role: str = Membership.Role.ANNOTATOR) -> Membership:
    """Add an existing user to the project, or change a member's role. Never creates or changes an account."""
    user = User.objects.filter(username=(username or "").strip()).first()
    if user is None:
        raise NotFound(f"No user is called '{username}'; create them with a password instead.")
    membership = Membership.objects.filter(project=project, user=user).first()
    if membership is not None:
        return membership_role_set(membership=membership, role=role)
    return membership_add(project=project, username=user.get_username(), role=role)
