"""Projects, memberships and API tokens."""

import hashlib
import secrets

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.utils import timezone
from django.utils.text import slugify

from labeling.models import ApiToken, Membership, Project
from labeling.services.criteria import criteria_definitions_validate
from labeling.services.errors import InvalidInput, NotFound

User = get_user_model()

TOKEN_PREFIX = "hf_lbl_"  # noqa: S105 - a public prefix, not a secret


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
    license: str = "cc-by-4.0",
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
    if mode not in Project.Mode.values:
        raise InvalidInput(f"Mode '{mode}' is unknown; use one of {', '.join(Project.Mode.values)}.")
    if order not in Project.Order.values:
        raise InvalidInput(f"Order '{order}' is unknown; use one of {', '.join(Project.Order.values)}.")
    if overlap < 1:
        raise InvalidInput(f"Overlap must be at least 1 (got {overlap}).")
    if (min_votes is None) != (max_votes is None):
        raise InvalidInput("Adaptive overlap needs both --min-votes and --max-votes.")
    if min_votes is not None and not 1 <= min_votes <= max_votes:
        raise InvalidInput(f"Need 1 <= min votes <= max votes (got {min_votes} and {max_votes}).")
    if not 0.0 <= gold_rate <= 1.0:
        raise InvalidInput(f"The gold rate is a share between 0 and 1 (got {gold_rate}).")
    criteria = criteria_definitions_validate(criteria)
    skip_reasons = _skip_reasons(skip_reasons)
    if lease_seconds is not None and lease_seconds < 10:
        raise InvalidInput(f"Lease time must be at least 10 seconds (got {lease_seconds}).")
    with transaction.atomic():
        if Project.objects.filter(slug=slug).exists():
            raise InvalidInput(f"A project with slug '{slug}' already exists.")
        return Project.objects.create(
            slug=slug,
            title=title or slug.replace("-", " ").title(),
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


def _skip_reasons(reasons) -> list[str]:
    if not reasons:
        return []
    if not isinstance(reasons, list) or not all(isinstance(reason, str) and reason.strip() for reason in reasons):
        raise InvalidInput("Skip reasons must be a list of non-empty texts.")
    cleaned = [reason.strip()[:200] for reason in reasons]
    if len(set(cleaned)) != len(cleaned):
        raise InvalidInput("A skip reason is listed twice.")
    return cleaned


def membership_add(
    *,
    project: Project,
    username: str,
    role: str = Membership.Role.ANNOTATOR,
    create: bool = False,
    password: str | None = None,
) -> Membership:
    """Make `username` a member of `project` with `role` (updating the role if already a member)."""
    if role not in Membership.Role.values:
        raise InvalidInput(f"Role '{role}' is unknown; use one of {', '.join(Membership.Role.values)}.")
    with transaction.atomic():
        user = User.objects.filter(username=username).first()
        if user is None:
            if not create:
                raise NotFound(f"User '{username}' does not exist; pass --create to create it.")
            user = User(username=username)
            if password:
                user.set_password(password)
            else:
                user.set_unusable_password()
            user.save()
        elif password:
            user.set_password(password)
            user.save(update_fields=["password"])
        membership, _ = Membership.objects.update_or_create(project=project, user=user, defaults={"role": role})
        return membership


def _hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def token_create(*, username: str, name: str = "") -> tuple[ApiToken, str]:
    """Create an API token for the user; returns the row and the token, which is never stored."""
    user = User.objects.filter(username=username).first()
    if user is None:
        raise NotFound(f"User '{username}' does not exist.")
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
