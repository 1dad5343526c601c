"""Members: one `membership_add` for the browser, the API and the command line, so all three agree."""

from io import StringIO

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import CommandError
from django.urls import reverse

from labeling.models import Assignment, Item, Judgment, Membership
from labeling.services.assignment import assignment_next
from labeling.services.errors import InvalidInput, NotFound
from labeling.services.judgments import judgment_submit, ranking_from_choice
from labeling.services.members import membership_add, membership_remove, membership_role_set
from labeling.services.tokens import token_create
from tests.conftest import PASSWORD
from tests.factories import MembershipFactory, UserFactory

User = get_user_model()


def _api_add(client, project, manager, **body):
    headers = {"Authorization": f"Bearer {token_create(username=manager.username)[1]}"}
    url = f"/api/projects/{project.slug}/members"
    return client.post(url, body, content_type="application/json", headers=headers)


def _browser_add(client, project, manager, **form):
    client.force_login(manager)
    return client.post(reverse("labeling:manage_members", args=[project.slug]), form)


def _cli_add(project, *args):
    call_command("addmember", project.slug, *args, stdout=StringIO(), stderr=StringIO())


# -- adding ---------------------------------------------------------------------


def test_an_existing_user_is_added_and_a_missing_one_is_not_created(project):
    UserFactory(username="carol")
    assert membership_add(project=project, username=" carol ", role="manager").role == "manager"
    with pytest.raises(NotFound, match=r"User 'ghost' does not exist: .*command line: --create"):
        membership_add(project=project, username="ghost")
    assert not User.objects.filter(username="ghost").exists()


def test_create_makes_an_account_with_that_password(project):
    membership = membership_add(project=project, username="dora", create=True, password="a long enough passphrase")
    assert membership.role == "annotator" and membership.project == project
    assert membership.user.check_password("a long enough passphrase")


def test_create_without_a_password_makes_an_account_that_cannot_log_in(project):
    membership = membership_add(project=project, username="eve", create=True)
    assert not membership.user.has_usable_password()


def test_create_with_a_taken_name_adds_that_account_unchanged(project, annotator):
    """`create` makes a missing account; an existing one is added as it is (scripts may run twice)."""
    other = MembershipFactory(project__slug="gamma", user__username="gina").user
    assert membership_add(project=project, username="gina", create=True).user == other
    other.refresh_from_db()
    assert other.check_password(PASSWORD)


@pytest.mark.parametrize("create", [False, True])
def test_a_password_for_an_existing_account_is_refused_and_changes_nothing(project, annotator, create):
    with pytest.raises(InvalidInput, match="already exists, and adding a member never changes an account"):
        membership_add(project=project, username=annotator.username, create=create, password="a long enough passphrase")
    annotator.refresh_from_db()
    assert annotator.check_password(PASSWORD)


@pytest.mark.parametrize(
    ("username", "password", "message"),
    [
        ("anna", "a long enough passphrase", "already exists"),
        ("eve", "short", "Password: This password is too short"),
        ("bad name!", "a long enough passphrase", "Username"),
        ("  has space!* ", None, "Username"),
        ("", None, "Give the username"),
        ("a\x00b", None, "NUL"),
    ],
)
def test_create_refuses_taken_names_bad_names_and_weak_passwords(project, annotator, username, password, message):
    with pytest.raises(InvalidInput, match=message):
        membership_add(project=project, username=username, create=True, password=password)
    annotator.refresh_from_db()
    assert annotator.check_password(PASSWORD)  # an existing account is never changed
    assert set(Membership.objects.filter(project=project).values_list("user__username", flat=True)) == {"anna"}


def test_an_unknown_role_is_refused(project, annotator):
    with pytest.raises(InvalidInput, match="Role 'owner' is unknown"):
        membership_add(project=project, username=annotator.username, role="owner")


def test_adding_a_member_again_changes_the_role_without_a_second_membership(project, manager, annotator):
    assert membership_add(project=project, username=annotator.username, role="manager").role == "manager"
    assert Membership.objects.filter(project=project, user=annotator).count() == 1


# -- the three paths agree ----------------------------------------------------------


def test_the_browser_the_api_and_the_command_line_refuse_a_missing_user_alike(client, project, manager):
    response = _browser_add(client, project, manager, username="ghost", role="annotator")
    assert response.status_code == 422 and "User &#x27;ghost&#x27; does not exist" in response.content.decode()
    response = _api_add(client, project, manager, username="ghost", role="annotator")
    assert response.status_code == 404 and "User 'ghost' does not exist" in response.json()["detail"]
    with pytest.raises(CommandError, match="User 'ghost' does not exist"):
        _cli_add(project, "ghost")
    assert not User.objects.filter(username="ghost").exists()


def test_no_path_changes_an_existing_accounts_password(client, project, manager, annotator):
    """The browser and the command line take a password; neither sets one on an existing account."""
    for form in ({"create": "on"}, {}):
        response = _browser_add(
            client, project, manager, username="anna", role="annotator", password="a new long passphrase", **form
        )
        assert response.status_code == 422 and "already exists" in response.content.decode()
    for args in (["--create"], []):
        with pytest.raises(CommandError, match="already exists"):
            _cli_add(project, "anna", "--password", "a new long passphrase", *args)
    annotator.refresh_from_db()
    assert annotator.check_password(PASSWORD)


def test_new_accounts_pass_the_password_validators_on_every_path(client, project, manager):
    response = _browser_add(client, project, manager, username="newbie", role="annotator", create="on", password="x1")
    assert response.status_code == 422 and "This password is too short" in response.content.decode()
    with pytest.raises(CommandError, match="This password is too short"):
        _cli_add(project, "newbie", "--create", "--password", "x1")
    assert not User.objects.filter(username="newbie").exists()


def test_the_api_and_the_command_line_create_accounts_alike(client, project, manager):
    assert _api_add(client, project, manager, username="api-made", create=True).json()["role"] == "annotator"
    _cli_add(project, "cli-made", "--create")
    for username in ("api-made", "cli-made"):
        membership = Membership.objects.get(project=project, user__username=username)
        assert membership.role == "annotator" and not membership.user.has_usable_password()


def test_the_api_cannot_leave_a_project_without_a_manager(client, project, manager):
    response = _api_add(client, project, manager, username=manager.username, role="annotator")
    assert response.status_code == 400 and "only manager" in response.json()["detail"]
    assert Membership.objects.filter(project=project, role="manager").count() == 1


# -- roles and removal ----------------------------------------------------------------


def test_the_last_manager_can_be_neither_removed_nor_demoted(project, manager):
    membership = Membership.objects.get(project=project, user=manager)
    with pytest.raises(InvalidInput, match="only manager"):
        membership_remove(membership=membership)
    with pytest.raises(InvalidInput, match="only manager"):
        membership_role_set(membership=membership, role="annotator")
    with pytest.raises(InvalidInput, match="only manager"):
        membership_add(project=project, username=manager.username, role="annotator")
    assert Membership.objects.get(project=project, user=manager).role == "manager"
    MembershipFactory(project=project, role="manager")
    assert membership_role_set(membership=membership, role="annotator").role == "annotator"


def test_removing_a_member_keeps_their_judgments_and_frees_their_lease(project, items, manager, annotator):
    judged = assignment_next(project=project, annotator=annotator)
    ranking = ranking_from_choice(assignment=judged, choice="A")
    judgment, _ = judgment_submit(assignment_id=judged.pk, annotator=annotator, ranking=ranking)
    held = assignment_next(project=project, annotator=annotator)
    membership_remove(membership=Membership.objects.get(project=project, user=annotator))
    assert Judgment.objects.filter(pk=judgment.pk).exists()
    held.refresh_from_db()
    assert held.state == Assignment.State.EXPIRED
    assert Item.objects.get(pk=held.item_id).filled == 0
    assert not Membership.objects.filter(project=project, user=annotator).exists()
