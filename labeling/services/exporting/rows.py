"""An export's rows: for every chunk of whole items `reading` gives, the rows of each split as Arrow.

The default config's one-vote items (most of a large project) are built by Arrow (`columnar`);
every other item of every config goes through the general path here: the item's votes per pair
of responses (`aggregate.item_pairs`), the policy's preferences (`aggregate.aggregate`), one row
per preference (`default`), per preferred and rejected response (`unpaired`) or per judgment
(`raw`), gathered column by column (`columns.Columns`).
"""

import hashlib
import hmac
import json
from collections.abc import Iterator

import pyarrow as pa
import pyarrow.compute as pc
from datasets import Features
from django.conf import settings

from labeling.models import Project
from labeling.services.exporting.aggregate import AggregateCounts, aggregate, item_pairs, one_vote
from labeling.services.exporting.columnar import in_item_order, judged, one_vote_mask, one_vote_rows
from labeling.services.exporting.columns import Columns, Text
from labeling.services.exporting.options import ExportOptions, ExportReport
from labeling.services.exporting.reading import Batch, Chunk, chunks, decode_json, python_batch

SPLITS = ("train", "test")


def split_rows(
    *, project: Project, options: ExportOptions, features: Features, test_items: set[int], report: ExportReport
) -> Iterator[tuple[str, pa.Table | pa.RecordBatch]]:
    """(split, rows in `features`' schema) for every chunk of items, in item order; counts go to `report`."""
    builder = _Rows(project, options, features, test_items, report)
    raw = options.config == "raw"
    for chunk in chunks(project=project, include_gold=options.include_gold, raw=raw):
        if options.config == "default":
            yield from builder.pairs(chunk)
            continue
        for split, columns in builder.general(python_batch(chunk.judgments, chunk)).items():
            if columns.rows:
                yield split, columns.record_batch(builder.schema)


def annotator_pseudonym(project: Project, annotator_id: int) -> str:
    """A stable id per annotator and project that does not reveal who they are."""
    digest = hmac.new(settings.SECRET_KEY.encode(), f"{project.pk}:{annotator_id}".encode(), hashlib.sha256)
    return "annotator-" + digest.hexdigest()[:12]


class _Rows:
    def __init__(
        self, project: Project, options: ExportOptions, features: Features, test_items: set[int], report: ExportReport
    ) -> None:
        self.project = project
        self.options = options
        self.features = features
        self.schema = features.arrow_schema
        self.test_items = test_items
        self.test_ids = pa.array(sorted(test_items), pa.int64())
        self.report = report
        self.text = Text(options.style)
        self.pseudonyms: dict[int, str] = {}

    def pairs(self, chunk: Chunk) -> Iterator[tuple[str, pa.Table]]:
        """The default config: one-vote items by Arrow, the other items by `general`, merged in item order."""
        table = judged(chunk)
        one_vote = one_vote_mask(table)
        singles = table if one_vote.all() else table.filter(one_vote)  # a filter copies every column
        count = singles.num_rows
        self.report.items += count
        self.report.judgments += count
        self.report.counts.add_one_votes(count)
        rest = None if one_vote.all() else table.filter(~one_vote).select(chunk.judgments.schema.names)
        general = rest is not None and self.general(python_batch(rest, chunk))
        in_test = pc.is_in(singles["item_pk"], value_set=self.test_ids).to_numpy(zero_copy_only=False)
        conversational = self.text.conversational
        for split, take in (("train", ~in_test), ("test", in_test)):
            mine = singles if take.all() else singles.filter(take)
            parts = [one_vote_rows(mine, self.schema, conversational=conversational)] if mine.num_rows else []
            if general and general[split].rows:
                parts.append(general[split].record_batch(self.schema))
            rows = in_item_order(parts, table)
            if rows is not None:
                yield split, rows

    def general(self, batch: Batch) -> dict[str, Columns]:
        """A batch of items' rows, per split, as columns."""
        config, text = self.options.config, self.text
        columns = {split: Columns(list(self.features), conversational=text.conversational) for split in SPLITS}
        for item_id, judgments in batch.judgments:
            external_id, prompt_messages = batch.items[item_id]
            self.report.items += 1
            self.report.judgments += len(judgments)
            target = columns["test" if item_id in self.test_items else "train"]
            if config == "raw":
                for judgment in judgments:
                    self._add_raw(target, external_id, judgment, batch.responses)
                continue
            preferences = _preferences(judgments, self.options, self.report.counts)
            if not preferences:
                continue
            prompt = text.prompt(prompt_messages)
            for preference in preferences:
                if config == "unpaired":
                    self._add_unpaired(target, prompt, external_id, preference, batch.responses)
                else:
                    self._add_pair(target, prompt, external_id, preference, batch.responses)
        return columns

    def _add_pair(self, target: Columns, prompt, external_id: str, preference, responses: dict) -> None:
        chosen_model, chosen = responses[preference.chosen]
        rejected_model, rejected = responses[preference.rejected]
        self.text.add_prompt(target["prompt"], prompt)
        self.text.add_completion(target["chosen"], chosen)
        self.text.add_completion(target["rejected"], rejected)
        target["chosen_model"].append(chosen_model or None)  # unknown: null, not ""
        target["rejected_model"].append(rejected_model or None)
        _add_common(target, external_id, preference)
        if "rank_gap" in target.data:
            target["rank_gap"].append(preference.rank_gap)
        if self.options.margin:
            target["margin"].append(preference.margin)

    def _add_unpaired(self, target: Columns, prompt, external_id: str, preference, responses: dict) -> None:
        for pk, label in ((preference.chosen, True), (preference.rejected, False)):
            model, content = responses[pk]
            self.text.add_prompt(target["prompt"], prompt)
            self.text.add_completion(target["completion"], content)
            target["label"].append(label)
            target["model"].append(model or None)  # unknown: null, not ""
            _add_common(target, external_id, preference)

    def _add_raw(self, target: Columns, external_id: str, judgment: tuple, responses: dict) -> None:
        ranking, strength, pk, annotator_id, both_bad, rationale, criteria, seconds, late, created, updated, shown = (
            judgment
        )
        annotator = self.pseudonyms.get(annotator_id)
        if annotator is None:
            annotator = self.pseudonyms[annotator_id] = annotator_pseudonym(self.project, annotator_id)
        target["judgment_id"].append(pk)
        target["item_id"].append(external_id)
        target["annotator"].append(annotator)
        target["ranking"].append([[str(pk) for pk in group] for group in ranking])
        target["ranking_models"].append([[responses[pk][0] or None for pk in group] for group in ranking])
        target["shown_order"].append([str(pk) for pk in decode_json(shown)])
        target["strength"].append(strength)
        target["both_bad"].append(both_bad)
        target["rationale"].append(rationale)
        target["criteria"].append(json.dumps(decode_json(criteria), sort_keys=True))
        target["seconds"].append(seconds)
        target["late"].append(late)
        target["created_at"].append(created)
        target["updated_at"].append(updated)


def _preferences(judgments: list[tuple], options: ExportOptions, counts: AggregateCounts) -> list:
    if len(judgments) == 1:
        single = one_vote(judgments[0][0], judgments[0][1], counts)
        if single is not None:
            return [single]
    pairs = item_pairs(judgments)  # (ranking, strength) each
    return aggregate(pairs, policy=options.aggregate, min_agreement=options.min_agreement, counts=counts)


def _add_common(target: Columns, external_id: str, preference) -> None:
    target["item_id"].append(external_id)
    target["votes"].append(preference.votes)
    target["agreement"].append(preference.agreement)
