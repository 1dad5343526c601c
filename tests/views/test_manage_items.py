"""The Items page: a compact, sortable, paginated table whose rows open on demand, in the annotators' letters.

A, B, C… name an item's responses by position (A = position 0, the first one a row's
details list); gold answers are entered as A / B / tie (two responses) or a rank per
letter, and stored as rankings of positions.
"""

import re

import pytest
from django.urls import reverse

from labeling.models import Item, Response
from labeling.services.assignment import assignment_next
from labeling.services.items import item_gold_set, item_priority_set, item_withdraw
from labeling.services.judgments import judgment_submit, ranking_from_choice
from tests.factories import ItemFactory, MembershipFactory

HTMX = {"HX-Request": "true"}
# session, user, project, the count, the page's items, their responses' positions, their votes, the tabs' role
MAX_PAGE_QUERIES = 8
MAX_DETAIL_QUERIES = MAX_PAGE_QUERIES + 1  # less the count and the tabs; plus the item, responses, judgments


@pytest.fixture
def url(project):
    return reverse("labeling:manage_items", args=[project.slug])


@pytest.fixture
def as_manager(client, manager):
    client.force_login(manager)
    return client


def _rows(html: str) -> list[str]:
    """The external ids of the table's rows, top to bottom."""
    return re.findall(r'<tbody class="item-group[^"]*" id="item-\d+" data-testid="item-([^"]+)"', html)


def _judge(project, user, *, pick_position: int | None = None, tie: bool = False):
    """`user` judges the next item, picking the response at `pick_position` whatever side it was shown on."""
    assignment = assignment_next(project=project, annotator=user)
    if tie:
        choice = "tie"
    else:
        left = Response.objects.get(pk=assignment.shown_order[0])
        choice = "A" if left.position == pick_position else "B"
    ranking = ranking_from_choice(assignment=assignment, choice=choice)
    judgment, _ = judgment_submit(assignment_id=assignment.pk, annotator=user, ranking=ranking, strength=2)
    return judgment


# -- who may open it ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("persona", "status"), [("manager", 200), ("annotator", 403), ("outsider", 404), ("anonymous", 302)]
)
def test_the_page_and_a_rows_details_by_persona(client, request, project, items, url, persona, status):
    if persona != "anonymous":
        client.force_login(request.getfixturevalue(persona))
    assert client.get(url).status_code == status
    assert client.get(url, {"open": items[0].pk}, headers=HTMX).status_code == status


def test_an_outsider_gets_404_and_changes_nothing(client, project, items, outsider):
    client.force_login(outsider)
    response = client.post(
        reverse("labeling:manage_item_gold", args=[project.slug]), {"item": items[0].pk, "answer": "B"}
    )
    assert response.status_code == 404
    assert not Item.objects.filter(is_gold=True).exists()


def test_an_annotator_gets_403_and_changes_nothing(client, project, items, annotator):
    client.force_login(annotator)
    response = client.post(
        reverse("labeling:manage_item_gold", args=[project.slug]), {"item": items[0].pk, "answer": "B"}
    )
    assert response.status_code == 403
    assert not Item.objects.filter(is_gold=True).exists()


def test_a_row_of_another_project_does_not_open(as_manager, url, other_project):
    foreign = ItemFactory(project=other_project)
    assert as_manager.get(url, {"open": foreign.pk}, headers=HTMX).status_code == 404


# -- the table -----------------------------------------------------------------------


def test_a_row_shows_the_last_user_turn_as_plain_text(as_manager, project, url):
    ItemFactory(
        project=project,
        external_id="chat",
        prompt=[
            {"role": "user", "content": "An earlier question"},
            {"role": "assistant", "content": "An answer"},
            {"role": "user", "content": "# Why\nIs **this** `bold`? See [the docs](https://example.com)."},
        ],
    )
    html = as_manager.get(url).content.decode()
    excerpt = re.search(r'data-testid="excerpt">([^<]*)<', html).group(1)
    assert excerpt == "Why Is this bold? See the docs."
    assert "An earlier question" not in html  # the earlier turns open with the row


def test_rows_show_votes_majority_priority_gold_and_state(as_manager, project, url, annotator, second_annotator):
    judged, gold, withdrawn = ItemFactory.create_batch(3, project=project)
    _judge(project, annotator, pick_position=1)
    _judge(project, second_annotator, pick_position=1)
    item_gold_set(item=gold, answer=[[0, 1]])
    item_priority_set(item=gold, priority=4)
    item_withdraw(item=withdrawn)
    html = as_manager.get(url).content.decode()
    row = {external_id: _row(html, external_id) for external_id in _rows(html)}
    assert "B over A" in row[judged.external_id]["majority"] and "2 of 2" in row[judged.external_id]["majority"]
    assert row[judged.external_id]["votes"] == "2/2" and row[judged.external_id]["state"] == "complete"
    assert row[gold.external_id]["gold"] == "Tie" and row[gold.external_id]["priority"] == "4"
    assert row[withdrawn.external_id]["state"] == "withdrawn"
    assert "0 &gt; 1" not in html and "1 &gt; 0" not in html


def test_a_split_vote_has_no_majority(as_manager, project, url, annotator, second_annotator):
    item = ItemFactory(project=project)
    _judge(project, annotator, pick_position=0)
    _judge(project, second_annotator, pick_position=1)
    assert _row(as_manager.get(url).content.decode(), item.external_id)["majority"] == "split, 2 votes"


def _row(html: str, external_id: str) -> dict[str, str]:
    """The text of each cell (by its data-testid) of one row."""
    body = re.search(rf'data-testid="item-{re.escape(external_id)}">(.*?)</tbody>', html, re.S).group(1)
    cells = {}
    for name, end in (
        ("votes", "</td>"),
        ("majority", "</td>"),
        ("priority", "</td>"),
        ("gold", "</td>"),
        ("state", "</span>"),
    ):
        found = re.search(rf'data-testid="{name}">(.*?){end}', body, re.S).group(1)
        cells[name] = " ".join(re.sub(r"<[^>]+>", "", found).split())
    return cells


def test_the_table_sorts_by_id_votes_and_priority(as_manager, project, url, annotator):
    for external_id, priority in (("b", 1), ("c", 3), ("a", 2)):
        item_priority_set(item=ItemFactory(project=project, external_id=external_id), priority=priority)
    _judge(project, annotator, pick_position=0)  # the highest priority first: "c"
    assert _rows(as_manager.get(url).content.decode()) == ["b", "c", "a"]  # import order
    assert _rows(as_manager.get(url, {"sort": "id"}).content.decode()) == ["a", "b", "c"]
    assert _rows(as_manager.get(url, {"sort": "-id"}).content.decode()) == ["c", "b", "a"]
    assert _rows(as_manager.get(url, {"sort": "-priority"}).content.decode()) == ["c", "a", "b"]
    assert _rows(as_manager.get(url, {"sort": "priority"}).content.decode()) == ["b", "a", "c"]
    assert _rows(as_manager.get(url, {"sort": "-votes"}).content.decode())[0] == "c"
    assert _rows(as_manager.get(url, {"sort": "votes"}).content.decode())[-1] == "c"
    assert _rows(as_manager.get(url, {"sort": "nonsense"}).content.decode()) == ["b", "c", "a"]


def test_sort_links_keep_the_search_and_filter_and_say_the_order(as_manager, project, url):
    ItemFactory.create_batch(2, project=project)
    html = as_manager.get(url, {"q": "Question", "status": "open", "sort": "-priority"}).content.decode()
    assert 'aria-sort="descending"><a href="?q=Question&amp;status=open&amp;sort=priority"' in html
    assert 'href="?q=Question&amp;status=open&amp;sort=-votes" data-testid="sort-votes"' in html
    assert 'href="?q=Question&amp;status=open&amp;sort=id" data-testid="sort-id"' in html
    assert '<input type="hidden" name="sort" value="-priority">' in html  # a new search keeps the order


def test_pages_hold_50_or_100_rows_and_their_links_keep_the_choices(as_manager, project, url):
    ItemFactory.create_batch(120, project=project)
    first = as_manager.get(url, {"sort": "-id"}).content.decode()
    assert len(_rows(first)) == 50 and "page 1 of 3" in first
    assert 'href="?sort=-id&amp;page=2" rel="next"' in first
    hundred = as_manager.get(url, {"per": "100", "status": "open"}).content.decode()
    assert len(_rows(hundred)) == 100 and 'href="?status=open&amp;per=100&amp;page=2" rel="next"' in hundred
    assert len(_rows(as_manager.get(url, {"per": "100", "page": "2"}).content.decode())) == 20
    assert len(_rows(as_manager.get(url, {"per": "5000"}).content.decode())) == 50  # only 50 or 100


def test_a_page_costs_the_same_queries_however_large_the_project(
    as_manager, project, url, annotator, second_annotator, django_assert_max_num_queries
):
    ItemFactory.create_batch(3, project=project)
    with django_assert_max_num_queries(MAX_PAGE_QUERIES):
        assert as_manager.get(url).status_code == 200
    ItemFactory.create_batch(150, project=project, responses=["one", "two", "three", "four"])
    for user in (annotator, second_annotator, *(MembershipFactory(project=project).user for _ in range(3))):
        for _ in range(4):
            assignment = assignment_next(project=project, annotator=user)
            judgment_submit(
                assignment_id=assignment.pk, annotator=user, ranking=[[pk] for pk in reversed(assignment.shown_order)]
            )
    for query in ({}, {"per": "100", "sort": "-votes"}, {"page": "3", "status": "complete"}):
        with django_assert_max_num_queries(MAX_PAGE_QUERIES):
            assert as_manager.get(url, query).status_code == 200
    judged = Item.objects.filter(project=project, votes__gt=0).first()
    with django_assert_max_num_queries(MAX_DETAIL_QUERIES):
        assert as_manager.get(url, {"open": judged.pk}, headers=HTMX).status_code == 200


# -- a row's details ------------------------------------------------------------------


def test_a_row_opens_with_its_prompt_responses_in_letters_and_who_judged_what(as_manager, project, url, annotator):
    item = ItemFactory(project=project, responses=["**First** answer", "Second answer"])
    _judge(project, annotator, pick_position=1)
    detail = as_manager.get(url, {"open": item.pk}, headers=HTMX).content.decode()
    assert "item-group" not in detail  # just the details, swapped into the row
    assert "A = the first response listed here" in detail
    assert detail.index('data-testid="response-A"') < detail.index('data-testid="response-B"')
    assert "<strong>First</strong> answer" in re.search(r'data-testid="response-A">(.*?)</article>', detail, re.S)[1]
    assert re.search(r"<td>anna</td><td class=\"answer\">B over A</td>\s*<td>clearly</td>", detail)
    assert "0 &gt; 1" not in detail and "1 &gt; 0" not in detail


def test_without_javascript_a_row_opens_in_the_page(as_manager, project, url):
    item, other = ItemFactory.create_batch(2, project=project)
    closed = as_manager.get(url).content.decode()
    assert f'href="{url}?open={item.pk}#item-{item.pk}"' in closed and 'data-testid="detail-' not in closed
    html = as_manager.get(url, {"open": item.pk}).content.decode()
    assert (
        f'data-testid="detail-{item.external_id}"' in html and f'data-testid="detail-{other.external_id}"' not in html
    )
    assert re.search(rf'<details class="row-toggle" open><summary data-testid="open-{item.external_id}">', html)


def test_a_judged_tie_reads_tie(as_manager, project, url, annotator):
    item = ItemFactory(project=project)
    _judge(project, annotator, tie=True)
    detail = as_manager.get(url, {"open": item.pk}, headers=HTMX).content.decode()
    assert '<td class="answer">Tie</td>' in detail


def test_ranking_judgments_read_as_lettered_rankings(as_manager, project, url, annotator):
    item = ItemFactory(project=project, responses=["one", "two", "three"])
    assignment = assignment_next(project=project, annotator=annotator)
    by_position = {response.position: response.pk for response in item.responses.all()}
    ranking = [[by_position[2]], [by_position[0], by_position[1]]]
    judgment_submit(assignment_id=assignment.pk, annotator=annotator, ranking=ranking)
    detail = as_manager.get(url, {"open": item.pk}, headers=HTMX).content.decode()
    assert '<td class="answer">C &gt; A = B</td>' in detail
    assert _row(as_manager.get(url).content.decode(), item.external_id)["majority"] == "C best 1 of 1"


# -- gold answers in letters ------------------------------------------------------------


def test_the_gold_form_takes_b_and_stores_positions(as_manager, project, url):
    item = ItemFactory(project=project)
    gold_url = reverse("labeling:manage_item_gold", args=[project.slug])
    response = as_manager.post(gold_url, {"item": item.pk, "answer": "B"}, headers=HTMX)
    assert response.status_code == 200
    item.refresh_from_db()
    assert item.is_gold and item.gold_answer == [[1], [0]]
    html = response.content.decode()
    assert 'data-testid="gold"><span class="tag tag-gold">B over A</span>' in html
    assert f'<input type="radio" name="answer" value="B" id="gold-B-{item.pk}" checked>' in html
    assert f"{item.external_id}: marked gold." in html
    assert _row(as_manager.get(url).content.decode(), item.external_id)["gold"] == "B over A"
    as_manager.post(gold_url, {"item": item.pk, "answer": "tie"})
    item.refresh_from_db()
    assert item.gold_answer == [[0, 1]]
    as_manager.post(gold_url, {"item": item.pk, "gold": "off"})
    item.refresh_from_db()
    assert not item.is_gold


@pytest.mark.parametrize(
    ("form", "message"),
    [
        ({}, "Choose the gold answer: A, B or Tie."),
        ({"answer": "C"}, "Gold answer &#x27;C&#x27; is unknown: choose A, B or Tie."),
    ],
)
def test_a_refused_gold_answer_says_why_and_changes_nothing(as_manager, project, form, message):
    item = ItemFactory(project=project)
    response = as_manager.post(
        reverse("labeling:manage_item_gold", args=[project.slug]), {"item": item.pk, **form}, headers=HTMX
    )
    assert response.status_code == 422 and message in response.content.decode()
    item.refresh_from_db()
    assert not item.is_gold


def test_a_ranking_items_gold_answer_is_a_rank_per_letter(as_manager, project, url):
    item = ItemFactory(project=project, responses=["one", "two", "three"])
    gold_url = reverse("labeling:manage_item_gold", args=[project.slug])
    form = {"item": item.pk, "rank_A": "2", "rank_B": "1", "rank_C": "2"}
    response = as_manager.post(gold_url, form, headers=HTMX)
    item.refresh_from_db()
    assert item.gold_answer == [[1], [0, 2]]
    html = response.content.decode()
    assert '<span class="tag tag-gold">B &gt; A = C</span>' in html
    assert 'name="rank_C" class="narrow-number" value="2"' in html and 'name="answer"' not in html
    refused = as_manager.post(gold_url, {**form, "rank_C": "4"}, headers=HTMX)
    assert refused.status_code == 422 and "Response C: ranks go from 1 to 3 (got 4)." in refused.content.decode()
