"""A project's members: added (the browser, the API and the command line alike), re-roled, removed, listed.

Every path adds a member through `membership_add`, so the three cannot disagree about
who may be added, which accounts are made, or what happens to an existing account.
"""

from django.contrib.auth.models import User
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Case, Count, OuterRef, Q, QuerySet, Subquery, Value, When
from django.db.models.functions import Coalesce
from django.utils import timezone

from labeling.models import Assignment, Judgment, Membership, Project
from labeling.services.assignment import leases_release
from labeling.services.errors import Conflict, InvalidInput, NotFound
from labeling.services.text import text_checked


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
    """Make `username` a member of `project` with `role`; someone already a member gets that role.

    The one way in, for the browser, the API and the command line:
    - an existing account is added as it is and never changed, so a password given
      for one is refused (it would otherwise take over someone else's account);
    - a missing account is an error unless `create`: then it is made, with `password`
      (which must pass the site's password validators) or, without one, a password
      that never works until an administrator sets one;
    - a member's role changes through `membership_role_set`, so the last manager stays one.
    """
    username = text_checked((username or "").strip(), "The username", limit=150)
    if not username:
        raise InvalidInput("Give the username of the person to add.")
    _check_role(role)
    try:
        with transaction.atomic():
            user = _member_user(username, create=create, password=password)
            membership = Membership.objects.filter(project=project, user=user).first()
            if membership is not None:
                return membership_role_set(membership=membership, role=role)
            return Membership.objects.create(project=project, user=user, role=role)
    except IntegrityError:  # the same account made, or the same member added, by another request just now
        raise Conflict(
            f"User '{username}' was added by someone else at the same moment; look at the members and try again."
        ) from None


def _member_user(username: str, *, create: bool, password: str | None) -> User:
    """The account to add: the existing one, untouched, or a new one when `create` asks for it."""
    user = User.objects.filter(username=username).first()
    if user is not None:
        if password:
            raise InvalidInput(
                f"User '{username}' already exists, and adding a member never changes an account: "
                "add them without a password (in the browser, untick 'Create a new user'). "
                f"An administrator changes a password with `manage.py changepassword {username}`."
            )
        return user
    if not create:
        raise NotFound(
            f"User '{username}' does not exist: check the name, or ask for the account to be created "
            "(browser: tick 'Create a new user'; command line: --create; API: \"create\": true)."
        )
    user = _new_user(username)
    if password:
        try:
            validate_password(password, user=user)
        except ValidationError as error:
            raise InvalidInput(f"Password: {' '.join(error.messages)}") from None
        user.set_password(password)
    else:
        user.set_unusable_password()
    user.save()
    return user


def _new_user(username: str) -> User:
    """An unsaved user with that name, checked by the user model's own validators."""
    user = User(username=username)
    try:
        user.full_clean(exclude=["password"], validate_unique=False)
    except ValidationError as error:
        raise InvalidInput(f"Username: {' '.join(error.message_dict.get('username', error.messages))}") from None
    return user


def _lock_managers_and(membership: Membership) -> tuple[Membership, int]:
    """Lock the project's manager memberships and `membership`, in one order, and return it fresh,
    with how many managers the project has besides it.

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
    return locked, sum(1 for row in rows if row.role == Membership.Role.MANAGER and row.pk != locked.pk)


def membership_role_set(*, membership: Membership, role: str) -> Membership:
    """Change a member's role; a project always keeps at least one manager."""
    _check_role(role)
    with transaction.atomic():
        locked, managers_left = _lock_managers_and(membership)
        if locked.role == Membership.Role.MANAGER and role != locked.role and not managers_left:
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
        locked, managers_left = _lock_managers_and(membership)
        if locked.role == Membership.Role.MANAGER and not managers_left:
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
