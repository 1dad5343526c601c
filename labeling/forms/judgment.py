"""The annotator's judgment form (annotate and revise): what was posted, as the judgment services take it."""

from django import forms

from labeling.forms.base import Form
from labeling.models import Assignment, Project
from labeling.services.errors import InvalidInput
from labeling.services.judgments import ranking_from_choice, ranking_from_ranks

STRENGTH_ERROR = "Choose how much better: slightly, clearly or much."


class JudgmentForm(Form):
    """A choice (A, B or tie) or a rank per response, how much better, both bad, why, the criteria.

    Its inputs depend on the item (a rank per response, a question per criterion and response)
    and are laid out by hand (labeling/partials/judgment_form.html), so `clean` reads them
    itself and a refusal is the form's own error, said once above the item. The free text
    (rationale, criteria answers) is checked by the judgment services, which name the field.
    """

    def __init__(self, data=None, *, assignment: Assignment, project: Project):
        super().__init__(data)
        self.assignment = assignment
        self.project = project

    def clean(self) -> dict:
        """The keyword arguments of judgment_submit / judgment_revise."""
        posted = self.data
        try:
            ranking = self._ranking()
        except InvalidInput as error:
            raise forms.ValidationError(error.message) from None
        return {
            "ranking": ranking,
            "strength": self._strength(),
            "both_bad": posted.get("both_bad") in {"on", "1", "true"},
            "rationale": posted.get("rationale", ""),
            "criteria": self.criteria_answers(),
        }

    def ranks_posted(self) -> dict[int, str]:
        """The rank typed for each response, by id ("" where none was); a refused form shows them again."""
        return {pk: self.data.get(f"rank_{pk}", "") for pk in self.assignment.shown_order}

    def _ranking(self) -> list[list[int]]:
        if self.project.mode == Project.Mode.RANKING or len(self.assignment.shown_order) > 2:
            ranks = {str(pk): rank for pk, rank in self.ranks_posted().items()}
            if not all(ranks.values()):
                raise InvalidInput("Give every response a rank (1 = best; equal ranks are a tie).")
            return ranking_from_ranks(assignment=self.assignment, ranks=ranks)
        return ranking_from_choice(assignment=self.assignment, choice=self.data.get("choice", ""))

    def _strength(self) -> int | None:
        strength = self.data.get("strength") or None
        if strength is None:
            return None
        try:
            return int(strength)
        except ValueError:
            raise forms.ValidationError(STRENGTH_ERROR) from None

    def criteria_answers(self) -> dict:
        """Criteria answers as the form sent them (also what a refused form shows again)."""
        posted, shown_order = self.data, self.assignment.shown_order
        answers: dict = {}
        for definition in self.project.criteria or []:
            key = definition["key"]
            if definition.get("per_response"):
                values = {str(pk): posted.get(f"criteria.{key}.{pk}") for pk in shown_order}
                if definition["type"] == "flag":
                    values = {pk: value == "on" for pk, value in values.items()}
                answers[key] = {pk: value for pk, value in values.items() if value not in (None, "")}
            elif definition["type"] == "flag":
                answers[key] = posted.get(f"criteria.{key}") == "on"
            else:
                answers[key] = posted.get(f"criteria.{key}") or None
        return answers
