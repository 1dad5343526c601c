"""The access module's hand-written lookups (labeling/db/lookups.py)."""

from labeling.db.lookups import project_of_member


def test_a_member_finds_the_project_and_a_role_narrows_it(project, manager, annotator, outsider):
    assert project_of_member(slug=project.slug, user_id=annotator.pk).pk == project.pk
    assert project_of_member(slug=project.slug, user_id=manager.pk, role="manager").pk == project.pk
    assert project_of_member(slug=project.slug, user_id=annotator.pk, role="manager") is None
    assert project_of_member(slug=project.slug, user_id=outsider.pk) is None
    assert project_of_member(slug="no-such-project", user_id=annotator.pk) is None
