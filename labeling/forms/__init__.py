"""Every form of the app, in one style: validation only, the rules stay in labeling/services.

Each is a `labeling.forms.base.Form`: Django parses and types what was posted, the view
calls one service with `form.cleaned_data` and hands a refusal to `form.add_service_error`,
then renders the refused form again with status 422 (labeling.views.common.UNPROCESSABLE).
"""

from labeling.forms.console import ExportForm, ImportForm, MemberForm, TokenForm
from labeling.forms.judgment import JudgmentForm
from labeling.forms.project import NewProjectForm, ProjectForm

__all__ = ["ExportForm", "ImportForm", "JudgmentForm", "MemberForm", "NewProjectForm", "ProjectForm", "TokenForm"]
