"""Data and invariants. Workflows live in labeling/services/, not here."""

import uuid
from typing import cast

from django.conf import settings
from django.db import models
from django.db.models import F, Q


class Project(models.Model):
    class Mode(models.TextChoices):
        PAIRWISE = "pairwise", "Pairwise (A / B / tie)"
        RANKING = "ranking", "Ranking (K responses)"

    class Order(models.TextChoices):
        DEPTH_FIRST = "depth-first", "Depth-first: finish items before opening new ones"
        BREADTH_FIRST = "breadth-first", "Breadth-first: spread votes over items"

    slug = models.SlugField(max_length=64, unique=True)
    title = models.CharField(max_length=200)
    guidelines = models.TextField(blank=True, default="")
    mode = models.CharField(max_length=16, choices=Mode.choices, default=Mode.PAIRWISE)
    overlap = models.PositiveSmallIntegerField(default=1, help_text="Judgments wanted per item.")
    lease_seconds = models.PositiveIntegerField(default=1800)
    order = models.CharField(max_length=16, choices=Order.choices, default=Order.DEPTH_FIRST)
    min_votes = models.PositiveSmallIntegerField(
        null=True, blank=True, help_text="Adaptive overlap: judgments an item gets at first (with max_votes)."
    )
    max_votes = models.PositiveSmallIntegerField(
        null=True, blank=True, help_text="Adaptive overlap: most judgments an item gets while votes disagree."
    )
    gold_rate = models.FloatField(default=0.0, help_text="Share of claims that serve a gold item (0 to 1).")
    show_model_names = models.BooleanField(default=False)
    rationale_required = models.BooleanField(default=False)
    criteria = models.JSONField(
        default=list, blank=True, help_text="Extra questions: [{key, label, type: likert|flag|text, per_response}]."
    )
    skip_reasons = models.JSONField(default=list, blank=True, help_text="Reasons an annotator may give for a skip.")
    archived_at = models.DateTimeField(null=True, blank=True, help_text="Archived projects take no new judgments.")
    # Empty until a manager chooses one: the dataset card says "not set" rather than claim a license.
    license = models.CharField(
        max_length=64, blank=True, default="", help_text="License of the exported data, e.g. cc-by-4.0."
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.CheckConstraint(condition=Q(overlap__gte=1), name="project_overlap_positive"),
            models.CheckConstraint(
                condition=(Q(min_votes__isnull=True) & Q(max_votes__isnull=True))
                | (Q(min_votes__gte=1) & Q(max_votes__gte=F("min_votes"))),
                name="project_adaptive_votes_valid",
            ),
            models.CheckConstraint(condition=Q(gold_rate__gte=0) & Q(gold_rate__lte=1), name="project_gold_rate_share"),
        ]

    def __str__(self) -> str:
        return self.slug

    @property
    def adaptive(self) -> bool:
        return self.min_votes is not None and self.max_votes is not None

    @property
    def initial_target(self) -> int:
        """Judgments a new item asks for: min_votes under adaptive overlap, else the overlap."""
        return cast(int, self.min_votes) if self.adaptive else self.overlap  # adaptive: min_votes is set


class Membership(models.Model):
    class Role(models.TextChoices):
        ANNOTATOR = "annotator", "Annotator"
        MANAGER = "manager", "Manager"

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.ANNOTATOR)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["project", "user"], name="membership_unique")]

    def __str__(self) -> str:
        return f"{self.user} in {self.project} ({self.role})"


class Item(models.Model):
    """One prompt with 2..8 responses.

    `votes` (submitted judgments) and `filled` (judgments plus live leases) are
    counters kept by the assignment service so that finding work never counts rows.
    """

    # No index of its own: `item_external_id_unique` (project, external_id) serves every
    # lookup by project, and one index fewer is one fewer to maintain per imported item.
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="items", db_index=False)
    external_id = models.CharField(max_length=200)
    prompt = models.JSONField(help_text="A list of {role, content} messages ending with a user turn.")
    metadata = models.JSONField(default=dict, blank=True)
    reference = models.JSONField(
        null=True, blank=True, help_text="Hidden imported preference: a ranking of response positions."
    )
    is_gold = models.BooleanField(default=False)
    gold_answer = models.JSONField(null=True, blank=True)
    priority = models.IntegerField(default=0)
    target = models.PositiveSmallIntegerField(default=1, help_text="Judgments this item should collect.")
    votes = models.PositiveIntegerField(default=0)
    filled = models.PositiveIntegerField(default=0)
    is_complete = models.BooleanField(default=False)
    withdrawn_at = models.DateTimeField(
        null=True, blank=True, help_text="Withdrawn by a manager: handed out no more; its judgments are kept."
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["project", "external_id"], name="item_external_id_unique")]
        indexes = [
            models.Index(
                fields=["project", "-priority", "-filled", "id"],
                condition=Q(is_complete=False),
                name="item_open_depth_first",
            ),
            models.Index(
                fields=["project", "-priority", "filled", "id"],
                condition=Q(is_complete=False),
                name="item_open_breadth_first",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.project.slug}/{self.external_id}"


class Response(models.Model):
    # No index of its own: `response_position_unique` (item, position) serves every lookup by item.
    item = models.ForeignKey(Item, on_delete=models.CASCADE, related_name="responses", db_index=False)
    position = models.PositiveSmallIntegerField(help_text="Order in the imported row (0-based).")
    model = models.CharField(max_length=200, blank=True, default="")
    content = models.TextField()
    metadata = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["position"]
        constraints = [models.UniqueConstraint(fields=["item", "position"], name="response_position_unique")]

    def __str__(self) -> str:
        return f"{self.item_id}#{self.position} ({self.model})"


class Assignment(models.Model):
    """An item leased to one annotator; records the order its responses were shown."""

    class State(models.TextChoices):
        ACTIVE = "active", "Active"
        SUBMITTED = "submitted", "Submitted"
        SKIPPED = "skipped", "Skipped"
        EXPIRED = "expired", "Expired"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="assignments")
    # Both are covered by the composite indexes below; single-column indexes would
    # only tempt the planner into poor anti-joins when claiming work.
    item = models.ForeignKey(Item, on_delete=models.CASCADE, related_name="assignments", db_index=False)
    annotator = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="assignments", db_index=False
    )
    state = models.CharField(max_length=16, choices=State.choices, default=State.ACTIVE)
    queued = models.BooleanField(default=False, help_text="Leased ahead, while the annotator reads the current item.")
    shown_order = models.JSONField(help_text="Response ids in the order shown, left to right.")
    skip_reason = models.CharField(max_length=500, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField()
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            # No annotator is ever given the same item twice.
            models.UniqueConstraint(fields=["item", "annotator"], name="assignment_item_annotator_unique"),
            # One current and at most one queued live lease per annotator and project:
            # two tabs share them.
            models.UniqueConstraint(
                fields=["project", "annotator", "queued"],
                condition=Q(state="active"),
                name="assignment_one_active_per_annotator",
            ),
        ]
        indexes = [
            models.Index(fields=["project", "state", "expires_at"], name="assignment_expiry"),
            models.Index(fields=["annotator", "project", "state"], name="assignment_annotator_state"),
        ]

    # The item's responses, when the claim that made this lease read them with the item
    # (see `responses_shown`); not a field.
    claimed_responses: list | None = None

    def __str__(self) -> str:
        return f"{self.annotator} on {self.item} ({self.state})"

    def responses_shown(self) -> list:
        """The item's responses in the order this annotator sees them, left to right."""
        responses = self.claimed_responses
        if responses is None:
            responses = list(self.item.responses.all())
        by_id = {response.pk: response for response in responses}
        return [by_id[pk] for pk in self.shown_order]


class Judgment(models.Model):
    """What an annotator said about an item: a ranking of response ids, best first.

    `ranking` is a list of groups of response ids (ints); a group with two or more
    ids is a tie. A pairwise judgment is a ranking of two responses.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    assignment = models.OneToOneField(Assignment, on_delete=models.CASCADE, related_name="judgment")
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="judgments")
    item = models.ForeignKey(Item, on_delete=models.CASCADE, related_name="judgments")
    annotator = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="judgments")
    ranking = models.JSONField()
    strength = models.PositiveSmallIntegerField(null=True, blank=True)
    both_bad = models.BooleanField(default=False)
    rationale = models.TextField(blank=True, default="")
    criteria = models.JSONField(default=dict, blank=True)
    seconds = models.FloatField(null=True, blank=True, help_text="Assignment to submit, server clock.")
    visible_seconds = models.FloatField(null=True, blank=True, help_text="Time the page was visible, page clock.")
    revision = models.PositiveIntegerField(default=1)
    late = models.BooleanField(default=False, help_text="Arrived after its lease expired.")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        indexes = [
            models.Index(fields=["project", "item"], name="judgment_project_item"),
            # The stats key (count and latest update of a project's judgments) from the index alone.
            models.Index(fields=["project", "updated_at"], name="judgment_project_updated"),
        ]

    def __str__(self) -> str:
        return f"{self.annotator} on {self.item}"


class JudgmentRevision(models.Model):
    """An earlier version of a judgment, kept when the annotator revises it."""

    judgment = models.ForeignKey(Judgment, on_delete=models.CASCADE, related_name="revisions")
    revision = models.PositiveIntegerField()
    ranking = models.JSONField()
    strength = models.PositiveSmallIntegerField(null=True, blank=True)
    both_bad = models.BooleanField(default=False)
    rationale = models.TextField(blank=True, default="")
    criteria = models.JSONField(default=dict, blank=True)
    made_at = models.DateTimeField(help_text="When this version was stored.")

    class Meta:
        ordering = ["judgment", "revision"]
        constraints = [models.UniqueConstraint(fields=["judgment", "revision"], name="judgment_revision_unique")]

    def __str__(self) -> str:
        return f"{self.judgment_id} v{self.revision}"


class ApiToken(models.Model):
    """A bearer token. Only its SHA-256 is stored; the token is shown once."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens")
    name = models.CharField(max_length=100, blank=True, default="")
    prefix = models.CharField(max_length=12)
    key_hash = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"{self.user} {self.prefix}…"


class Job(models.Model):
    """A background import or export, with its progress and outcome."""

    class Kind(models.TextChoices):
        IMPORT = "import", "Import"
        EXPORT = "export", "Export"

    class State(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="jobs")
    kind = models.CharField(max_length=16, choices=Kind.choices)
    state = models.CharField(max_length=16, choices=State.choices, default=State.QUEUED)
    params = models.JSONField(default=dict, blank=True)
    rows_done = models.PositiveBigIntegerField(default=0)
    rows_total = models.PositiveBigIntegerField(null=True, blank=True)
    result = models.JSONField(default=dict, blank=True)
    error = models.TextField(blank=True, default="")
    input_path = models.CharField(max_length=500, blank=True, default="")
    output_path = models.CharField(max_length=500, blank=True, default="")
    checksum = models.CharField(max_length=64, blank=True, default="", help_text="SHA-256 of the output file.")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [models.Index(fields=["project", "-created_at"], name="job_project_recent")]

    def __str__(self) -> str:
        return f"{self.kind} {self.id} ({self.state})"


class StatsSnapshot(models.Model):
    """The last stats document computed for a project, with the judgments it was computed at.

    The dashboard shows it at once (with its age) and refreshes it in the background, so a
    manager never waits for a recompute of a big project. `refresh_claimed_at` is set while
    one refresh is queued or running: a compare-and-set on it keeps one refresh per project.
    """

    project = models.OneToOneField(Project, on_delete=models.CASCADE, related_name="stats_snapshot")
    document = models.JSONField(null=True, blank=True, help_text="The analysis part of the stats document.")
    version = models.PositiveIntegerField(default=0, help_text="Stats code version the document was made by.")
    judgments = models.PositiveBigIntegerField(default=0, help_text="Judgments counted when it was computed.")
    judgments_changed_at = models.DateTimeField(null=True, blank=True, help_text="Latest judgment update then.")
    computed_at = models.DateTimeField(null=True, blank=True)
    seconds = models.FloatField(null=True, blank=True, help_text="How long the computation took.")
    refresh_claimed_at = models.DateTimeField(null=True, blank=True)
    failed_at = models.DateTimeField(null=True, blank=True)
    error = models.TextField(blank=True, default="")

    def __str__(self) -> str:
        return f"stats of {self.project_id} at {self.judgments} judgments"
