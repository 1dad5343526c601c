"""A project's settings and its criteria rows (the New project and Settings pages)."""

from typing import cast

from django import forms

from labeling.forms.base import Form
from labeling.models import Project
from labeling.services.criteria import MAX_KEY, MAX_LABEL, TYPES, CriterionInvalid
from labeling.services.errors import DomainError

FIXED, ADAPTIVE = "fixed", "adaptive"
_TYPE_NAMES = {"likert": "Scale 1 to 5", "flag": "Yes / no", "text": "Free text"}


class CriterionForm(Form):
    """One criterion as a row. Its rules (key format, unique keys, types) are checked by the criteria service."""

    key = forms.CharField(
        required=False,
        strip=True,
        widget=forms.TextInput(attrs={"maxlength": MAX_KEY, "autocomplete": "off", "spellcheck": "false"}),
    )
    label = forms.CharField(required=False, widget=forms.TextInput(attrs={"maxlength": MAX_LABEL}))
    type = forms.ChoiceField(choices=[(kind, _TYPE_NAMES.get(kind, kind)) for kind in TYPES], initial=TYPES[0])
    per_response = forms.BooleanField(required=False, initial=True, label="Per response")
    required = forms.BooleanField(required=False)

    def __init__(self, *args, locked: bool = False, **kwargs):
        super().__init__(*args, **kwargs)
        # Existing judgments answer this criterion: what its answers mean is frozen (see project_locks).
        self.locked = locked
        for name in ("key", "type", "per_response") if locked else ():
            self.fields[name].disabled = True

    def definition(self) -> dict:
        data = self.cleaned_data
        return {name: data[name] for name in ("key", "label", "type", "per_response", "required")}


class BaseCriteriaFormSet(forms.BaseFormSet):
    """A project's criteria as rows: the saved ones, then one empty row to add another (no JavaScript needed)."""

    def __init__(self, *args, locked: bool = False, **kwargs):
        self.locked = locked
        self.kept: list[CriterionForm] = []
        super().__init__(*args, **kwargs)

    def get_form_kwargs(self, index):
        kwargs = super().get_form_kwargs(index)
        saved = index is not None and index < self.initial_form_count()
        kwargs["locked"] = self.locked and saved
        if not saved:  # a new row starts empty, whatever the saved list holds at its place (a stale or forged count)
            kwargs["initial"] = {}
        return kwargs

    def add_fields(self, form, index):
        super().add_fields(form, index)
        form.fields["DELETE"].label = "Remove"
        if form.locked:
            form.fields["DELETE"].disabled = True

    def definitions(self) -> list[dict]:
        """The rows as the criteria service takes them, in order; empty new rows and removed rows left out."""
        self.kept = [
            form
            for index, form in enumerate(self.forms)
            if not form.cleaned_data.get("DELETE") and (index < self.initial_form_count() or form.has_changed())
        ]
        return [form.definition() for form in self.kept]

    def add_service_error(self, error: CriterionInvalid) -> bool:
        """Show a criterion's error beside its row and field; False when no row matches it."""
        if not 0 <= error.index < len(self.kept):
            return False
        form = self.kept[error.index]
        field = error.field if error.field in form.fields and not form.fields[error.field].disabled else None
        form.add_error(field, error.reason)
        if field:  # the error row of _criteria_row.html says it, with this id
            form.fields[field].widget.attrs.update(
                {"aria-invalid": "true", "aria-describedby": f"{form[field].auto_id}-error"}
            )
        return True


# formset_factory makes a subclass of BaseCriteriaFormSet; the stubs type it as a plain BaseFormSet.
CriteriaFormSet = cast(
    type[BaseCriteriaFormSet],
    forms.formset_factory(CriterionForm, formset=BaseCriteriaFormSet, extra=1, can_delete=True, can_delete_extra=True),
)


class ProjectForm(Form):
    """A project's settings. Fields that existing judgments lock are shown disabled (see project_locks).

    The criteria are rows of their own formset (`criteria_rows`, prefix "criteria"). A post
    without its management form leaves the criteria as they are.
    """

    slug = forms.SlugField(max_length=64, help_text="Names the project in URLs and commands; cannot change later.")
    title = forms.CharField(max_length=200)
    guidelines = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 10}),
        help_text="Markdown. Annotators open them with G on the annotate page.",
    )
    mode = forms.ChoiceField(choices=Project.Mode.choices)
    overlap_kind = forms.ChoiceField(
        label="Overlap",
        choices=[(FIXED, "Fixed: every item gets the same number of judgments"), (ADAPTIVE, "Adaptive: min to max")],
        widget=forms.RadioSelect,
    )
    overlap = forms.IntegerField(label="Judgments per item (fixed)", initial=1)
    min_votes = forms.IntegerField(label="Min votes (adaptive)", required=False)
    max_votes = forms.IntegerField(label="Max votes (adaptive)", required=False)
    lease_seconds = forms.IntegerField(
        label="Lease time (seconds)", help_text="How long an item stays with one annotator."
    )
    order = forms.ChoiceField(label="Order of work", choices=Project.Order.choices)
    gold_rate = forms.FloatField(initial=0.0, help_text="Share of claims that serve a gold item, 0 to 1.")
    skip_reasons = forms.CharField(
        required=False, widget=forms.Textarea(attrs={"rows": 4}), help_text="One per line. Empty: any reason."
    )
    rationale_required = forms.BooleanField(required=False)
    show_model_names = forms.BooleanField(required=False, help_text="Annotators see which model wrote each response.")
    license = forms.CharField(
        label="Export license",
        max_length=64,
        required=False,
        help_text="Of the exported data, e.g. cc-by-4.0. Empty: not set, and the dataset card says so.",
    )

    def __init__(self, *args, project: Project | None = None, locks: dict | None = None, **kwargs):
        if project is not None:
            kwargs.setdefault("initial", self.initial_from(project))
        super().__init__(*args, **kwargs)
        self.locks = locks or {}
        prefix = "criteria"
        self.criteria_sent = not self.is_bound or f"{prefix}-TOTAL_FORMS" in self.data
        self.criteria_rows = CriteriaFormSet(
            self.data if self.is_bound and self.criteria_sent else None,
            prefix=prefix,
            initial=project.criteria if project is not None else None,
            locked="criteria" in self.locks,
        )
        if project is not None:
            self.fields["slug"].disabled = True
            self.fields["slug"].required = False
        if "mode" in self.locks:
            self.fields["mode"].disabled = True
        if "adaptive" in self.locks:
            self.fields["overlap_kind"].disabled = True

    @staticmethod
    def initial_from(project: Project) -> dict:
        return {
            "slug": project.slug,
            "title": project.title,
            "guidelines": project.guidelines,
            "mode": project.mode,
            "overlap_kind": ADAPTIVE if project.adaptive else FIXED,
            "overlap": project.overlap,
            "min_votes": project.min_votes,
            "max_votes": project.max_votes,
            "lease_seconds": project.lease_seconds,
            "order": project.order,
            "gold_rate": project.gold_rate,
            "skip_reasons": "\n".join(project.skip_reasons or []),
            "rationale_required": project.rationale_required,
            "show_model_names": project.show_model_names,
            "license": project.license,
        }

    def is_valid(self) -> bool:
        valid = super().is_valid()
        rows_valid = not self.criteria_sent or self.criteria_rows.is_valid()
        if not rows_valid:
            self.add_error(None, "Check the criteria: a row below says what to fix.")
        return valid and rows_valid

    def add_service_error(self, error: DomainError) -> None:
        """A service's refusal: beside the criterion's row when it names one, else at the top of the form."""
        if isinstance(error, CriterionInvalid) and self.criteria_rows.add_service_error(error):
            self.add_error(None, "Check the criteria: a row below says what to fix.")
        else:
            super().add_service_error(error)

    def clean_skip_reasons(self):
        return [line.strip() for line in (self.cleaned_data.get("skip_reasons") or "").splitlines() if line.strip()]

    def clean(self):
        data = super().clean()
        if data.get("overlap_kind") == ADAPTIVE:
            for name in ("min_votes", "max_votes"):
                if data.get(name) is None:
                    self.add_error(name, "Adaptive overlap needs both min and max votes.")
        return data

    def settings(self) -> dict:
        """The keyword arguments of project_create / project_update."""
        data = self.cleaned_data
        adaptive = data["overlap_kind"] == ADAPTIVE
        return {
            "title": data["title"],
            "guidelines": data["guidelines"],
            "mode": data["mode"],
            "overlap": data["overlap"],
            "min_votes": data["min_votes"] if adaptive else None,
            "max_votes": data["max_votes"] if adaptive else None,
            "lease_seconds": data["lease_seconds"],
            "order": data["order"],
            "gold_rate": data["gold_rate"],
            "skip_reasons": data["skip_reasons"],
            "rationale_required": data["rationale_required"],
            "show_model_names": data["show_model_names"],
            "license": data["license"],
            **({"criteria": self.criteria_rows.definitions()} if self.criteria_sent else {}),
        }


class NewProjectForm(ProjectForm):
    def __init__(self, *args, **kwargs):
        kwargs.setdefault(
            "initial",
            {
                "mode": Project.Mode.PAIRWISE,
                "overlap_kind": FIXED,
                "overlap": 1,
                "order": Project.Order.DEPTH_FIRST,
                "gold_rate": 0.0,
                "license": "",
                "lease_seconds": 1800,
            },
        )
        super().__init__(*args, **kwargs)
