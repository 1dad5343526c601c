import pytest

from labeling.models import Item, Judgment
from labeling.services.assignment import assignment_next
from labeling.services.errors import InvalidInput
from labeling.services.exporting import ExportOptions, preferences_export
from labeling.services.importing import ImportRejected, items_import
from labeling.services.judgments import adaptive_settle, judgment_submit, ranking_from_choice
from labeling.services.metrics import project_stats
from labeling.services.projects import project_create
from labeling.services.tokens import token_create
from tests.factories import ItemFactory, MembershipFactory, ProjectFactory

A, B, TIE = [[1], [2]], [[2], [1]], [[1, 2]]


@pytest.mark.parametrize(
    ("rankings", "expected"),
    [
        ([A, A], (True, 2)),  # the first min_votes agree
        ([A, B], (False, 3)),  # they disagree: one more
        ([A, B, A], (False, 4)),  # 2 to 1 is not a clear lead
        ([A, B, A, A], (True, 4)),  # two ahead
        ([A, B, TIE, B], (False, 5)),
        ([A, B, A, B, TIE], (True, 5)),  # max_votes reached
    ],
)
def test_adaptive_settle(rankings, expected):
    assert adaptive_settle(rankings, min_votes=2, max_votes=5) == expected


def _adaptive_project(db):
    project = project_create(slug="adaptive", min_votes=2, max_votes=4)
    annotators = [MembershipFactory(project=project).user for _ in range(4)]
    return project, annotators


def _vote(project, annotator, want_left_model: bool):
    assignment = assignment_next(project=project, annotator=annotator)
    left_model = assignment.item.responses.get(pk=assignment.shown_order[0]).model
    choice = "A" if (left_model == "model-a") == want_left_model else "B"
    judgment_submit(
        assignment_id=assignment.pk,
        annotator=annotator,
        ranking=ranking_from_choice(assignment=assignment, choice=choice),
    )
    return assignment.item_id


def test_agreeing_votes_complete_an_item_at_min_votes(db):
    project, annotators = _adaptive_project(db)
    item = ItemFactory(project=project)
    assert item.target == 2
    for annotator in annotators[:2]:
        _vote(project, annotator, want_left_model=True)
    item.refresh_from_db()
    assert item.is_complete and item.votes == 2
    assert assignment_next(project=project, annotator=annotators[2]) is None


def test_disagreeing_votes_ask_for_more_up_to_max_votes(db):
    project, annotators = _adaptive_project(db)
    item = ItemFactory(project=project)
    _vote(project, annotators[0], want_left_model=True)
    _vote(project, annotators[1], want_left_model=False)
    item.refresh_from_db()
    assert not item.is_complete and item.target == 3
    _vote(project, annotators[2], want_left_model=True)
    item.refresh_from_db()
    assert not item.is_complete and item.target == 4
    _vote(project, annotators[3], want_left_model=False)
    item.refresh_from_db()
    assert item.is_complete and item.votes == 4


def test_adaptive_overlap_needs_both_bounds(db):
    with pytest.raises(InvalidInput, match="both"):
        project_create(slug="half", min_votes=2)
    with pytest.raises(InvalidInput, match="min votes <= max votes"):
        project_create(slug="upside-down", min_votes=4, max_votes=2)


def _gold_project(db, write_jsonl):
    project = ProjectFactory(slug="gold", overlap=1, gold_rate=1.0)
    path = write_jsonl(
        [
            {"id": "g1", "prompt": "2+2?", "responses": ["4", "5"], "gold_answer": [[0], [1]]},
            {"id": "n1", "prompt": "Hi", "responses": ["Hello!", "Go away."]},
            {"id": "n2", "prompt": "Bye", "responses": ["Goodbye!", "Whatever."]},
        ]
    )
    items_import(project=project, path=path)
    return project


def test_gold_items_are_served_at_the_rate_and_look_like_any_other(db, write_jsonl, client):
    project = _gold_project(db, write_jsonl)
    annotator = MembershipFactory(project=project, user__username="goldie").user
    first = assignment_next(project=project, annotator=annotator)
    assert first.item.external_id == "g1" and first.item.is_gold
    # Through the API, for someone holding no lease yet: the gold item comes first there too, unmarked.
    MembershipFactory(project=project, user__username="goldie-api")
    token = token_create(username="goldie-api")[1]
    body = client.post(f"/api/projects/{project.slug}/next", headers={"Authorization": f"Bearer {token}"}).json()
    assert body["item"]["id"] == "g1"
    assert set(body["item"]) == {"id", "prompt", "responses"}


def test_gold_answers_feed_accuracy_and_stay_out_of_exports(db, write_jsonl, tmp_path):
    project = _gold_project(db, write_jsonl)
    right = MembershipFactory(project=project, user__username="right").user
    wrong = MembershipFactory(project=project, user__username="wrong").user
    for annotator, correct in ((right, True), (wrong, False)):
        while (assignment := assignment_next(project=project, annotator=annotator)) is not None:
            responses = {response.pk: response.position for response in assignment.item.responses.all()}
            first_is_left = responses[assignment.shown_order[0]] == 0
            choice = "A" if first_is_left == correct else "B"
            ranking = ranking_from_choice(assignment=assignment, choice=choice)
            judgment_submit(assignment_id=assignment.pk, annotator=annotator, ranking=ranking)
    assert Judgment.objects.filter(item__is_gold=True).count() == 2
    accuracy = {row["username"]: row["gold_accuracy"] for row in project_stats(project=project)["annotators"]}
    assert accuracy == {"right": 1.0, "wrong": 0.0}
    report = preferences_export(project=project, out_dir=tmp_path / "out", options=ExportOptions(aggregate="all"))
    assert report.items == 2  # n1 and n2; g1 left out
    with_gold = preferences_export(
        project=project, out_dir=tmp_path / "gold", options=ExportOptions(aggregate="all", include_gold=True)
    )
    assert with_gold.items == 3


def test_gold_items_never_count_as_regular_work(db, write_jsonl):
    project = _gold_project(db, write_jsonl)
    project.gold_rate = 0.0
    project.save()
    annotator = MembershipFactory(project=project).user
    served = []
    while (assignment := assignment_next(project=project, annotator=annotator)) is not None:
        (served.append(assignment.item.external_id),)
        judgment_submit(
            assignment_id=assignment.pk,
            annotator=annotator,
            ranking=ranking_from_choice(assignment=assignment, choice="A"),
        )
    assert sorted(served) == ["n1", "n2"]


def test_bad_gold_answer_is_rejected(db, write_jsonl):
    project = ProjectFactory(slug="badgold")
    path = write_jsonl([{"prompt": "x", "responses": ["a", "b"], "gold_answer": [[0], [0]]}])
    with pytest.raises(ImportRejected, match="row 1: `gold_answer` must place each response"):
        items_import(project=project, path=path)
    assert not Item.objects.filter(project=project).exists()
