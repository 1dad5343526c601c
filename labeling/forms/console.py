"""The manager's other forms: members, imports, exports, API tokens."""

from django import forms

from labeling.forms.base import Form
from labeling.models import Membership
from labeling.services.errors import DomainError
from labeling.services.exporting import CONFIGS
from labeling.services.exporting.aggregate import POLICIES
from labeling.services.exporting.styles import STYLES
from labeling.services.jobs import UPLOAD_FORMATS


class MemberForm(Form):
    username = forms.CharField(max_length=150)
    role = forms.ChoiceField(choices=Membership.Role.choices, initial=Membership.Role.ANNOTATOR)
    create = forms.BooleanField(required=False, label="Create a new user")
    password = forms.CharField(
        required=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
        help_text="Only for a new user; existing accounts are never changed here.",
    )

    def clean(self):
        data = super().clean()
        if data.get("create") and not data.get("password"):
            self.add_error("password", "A new user needs a password.")
        return data


class ImportForm(Form):
    file = forms.FileField(help_text="JSONL, JSON, CSV or Parquet; the shape is detected from the columns.")
    format = forms.ChoiceField(choices=[(name, name) for name in UPLOAD_FORMATS], initial="auto", required=False)

    def clean_format(self):
        return self.cleaned_data.get("format") or "auto"

    def add_service_error(self, error: DomainError) -> None:
        """What is wrong with the file, beside the file input."""
        self.add_error("file", error.message)


class ExportForm(Form):
    config = forms.ChoiceField(
        choices=[(name, name) for name in CONFIGS], help_text="default: preference pairs; raw: one row per judgment."
    )
    style = forms.ChoiceField(choices=[(name, name) for name in STYLES])
    aggregate = forms.ChoiceField(label="Aggregation", choices=[(name, name) for name in POLICIES])
    margin = forms.BooleanField(required=False, help_text="Add a float margin column (RewardTrainer).")
    min_agreement = forms.FloatField(required=False, help_text="Leave out pairs with less agreement (0 to 1).")
    test_size = forms.FloatField(label="Test split share", initial=0.0, help_text="0 for train only; e.g. 0.1.")
    seed = forms.IntegerField(initial=0)
    include_gold = forms.BooleanField(required=False, label="Include gold items")

    def options(self) -> dict:
        return dict(self.cleaned_data)


class TokenForm(Form):
    name = forms.CharField(max_length=100, required=False, help_text="What it is for, e.g. 'export script'.")
