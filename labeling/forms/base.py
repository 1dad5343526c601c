"""The one base of every form: Django parses and types the fields, a service's refusal is added the same way."""

from django import forms

from labeling.services.errors import DomainError


class Form(forms.Form):
    """A form whose rules live in a service: `is_valid()` refuses what cannot be read, then the
    view calls the service and hands its refusal to `add_service_error`. The view renders a
    refused form again with status 422; templates show `form.non_field_errors` above the form
    and a field's errors beside it (labeling/manage/_field.html)."""

    def add_service_error(self, error: DomainError) -> None:
        """A service's refusal, above the form (a subclass may put it beside the field it concerns)."""
        self.add_error(None, error.message)
