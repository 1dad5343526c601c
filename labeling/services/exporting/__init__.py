"""Export judgments as a Hugging Face DatasetDict that TRL loads as it is.

Configs: `default` (one row per preference pair, TRL explicit-prompt format; every
strictly ordered pair of a K-way ranking is a pair, and ranking projects add `rank_gap`),
`raw` (one row per judgment), `unpaired` (TRL KTO: prompt, completion, label).
Splits are grouped by item (no prompt in two splits) and deterministic for a seed.
"""

import json
import shutil
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import datasets
import pyarrow as pa
import pyarrow.compute as pc

from labeling.models import Project
from labeling.services.errors import InvalidInput
from labeling.services.exporting import columnar, reading, saved, styles
from labeling.services.exporting.aggregate import POLICIES, AggregateCounts, aggregate, item_pairs, one_vote
from labeling.services.exporting.card import dataset_card, tally_models
from labeling.services.exporting.columns import Columns, Text
from labeling.services.exporting.reading import annotator_pseudonym
from labeling.services.memory import older_objects_frozen

__all__ = ["CONFIGS", "FORMATS", "ExportOptions", "ExportReport", "annotator_pseudonym", "preferences_export"]

CONFIGS = ("default", "raw", "unpaired")
FORMATS = ("hf", "parquet", "jsonl")


@dataclass
class ExportOptions:
    config: str = "default"
    style: str = "conversational"
    aggregate: str = "majority"
    margin: bool = False
    min_agreement: float | None = None
    test_size: float = 0.0
    seed: int = 0
    fmt: str = "hf"
    include_gold: bool = False

    def validate(self) -> None:
        choices = {"config": CONFIGS, "style": styles.STYLES, "aggregate": POLICIES, "fmt": FORMATS}
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                option = "format" if name == "fmt" else name
                raise InvalidInput(f"--{option} '{getattr(self, name)}' is unknown; use one of {', '.join(allowed)}.")
        if not 0.0 <= self.test_size < 1.0:
            raise InvalidInput(f"--test-size must be at least 0 and below 1 (got {self.test_size}).")
        if self.min_agreement is not None and not 0.0 <= self.min_agreement <= 1.0:
            raise InvalidInput(f"--min-agreement must be between 0 and 1 (got {self.min_agreement}).")


@dataclass
class ExportReport:
    out: str
    rows: dict[str, int] = field(default_factory=dict)
    items: int = 0
    judgments: int = 0
    counts: AggregateCounts = field(default_factory=AggregateCounts)
    options: ExportOptions = field(default_factory=ExportOptions)
    # card column ("chosen", "rejected", ...) -> model (None: unknown) -> rows, for the dataset card
    models: dict[str, dict[str | None, int]] = field(default_factory=dict)


def preferences_export(*, project: Project, out_dir: Path | str, options: ExportOptions | None = None) -> ExportReport:
    """Write the project's judgments to `out_dir` as a DatasetDict, or raise and write nothing.

    The folder appears whole or not at all: it is written beside its final place
    and moved in when complete.
    """
    options = options or ExportOptions()
    options.validate()
    out = Path(out_dir)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise InvalidInput(f"'{out}' already exists and is not empty; choose another --out or remove it.")
    report = ExportReport(out=str(out), options=options)
    ranked = project.mode == Project.Mode.RANKING  # pairwise exports keep exactly the columns DESIGN.md lists
    features = styles.features(options.config, options.style, margin=options.margin, rank_gap=ranked)
    test_items = reading.test_items(
        project=project, include_gold=options.include_gold, test_size=options.test_size, seed=options.seed
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".export-", dir=out.parent))
    # hf: the rows are written once, in their final place; the other formats convert them from there.
    arrow = staging if options.fmt == "hf" else Path(tempfile.mkdtemp(prefix=".export-arrow-", dir=out.parent))
    try:
        with older_objects_frozen():
            splits = ["train", "test"] if test_items else ["train"]
            report.rows = _stream(project, options, report, test_items, features, splits, arrow)
            if options.fmt != "hf":
                _write(datasets.load_from_disk(str(arrow)), staging, options)
            (staging / "README.md").write_text(dataset_card(project=project, report=report, features=features))
        if out.exists():
            out.rmdir()
        staging.rename(out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    finally:
        if arrow != staging:
            shutil.rmtree(arrow, ignore_errors=True)
    return report


def _stream(project, options, report, test_items, features, splits, folder: Path) -> dict[str, int]:
    """Rows to `folder` in `save_to_disk`'s layout, a record batch per batch of items; the rows per split.

    Memory stays flat whatever the project's size: each batch is written as it is built.
    """
    schema = features.arrow_schema
    written = {split: saved.SavedSplit(folder / split, schema, split) for split in splits}
    try:
        # Each batch is written by a thread while the next is built (the write is mostly the kernel's copy).
        with ThreadPoolExecutor(max_workers=1) as writer:
            pending = None
            for split, rows in _batches(project, options, report, test_items, features):
                tally_models(report.models, rows)
                if pending is not None:
                    pending.result()
                pending = writer.submit(written[split].write, rows)
            if pending is not None:
                pending.result()
    finally:
        for part in written.values():
            part.close()
    for split, part in written.items():
        part.finish(_info(features, split, part.rows, part.bytes))
    saved.finish_dict(folder, splits)
    return {split: part.rows for split, part in written.items()}


def _batches(project, options, report, test_items, features):
    """(split, rows as an Arrow record batch or table) for every batch of items, in item order."""
    schema = features.arrow_schema
    if reading.columnar(config=options.config):
        yield from _columnar_batches(project, options, report, test_items, features)
        return
    for batch in reading.judgment_batches(
        project=project, raw=options.config == "raw", include_gold=options.include_gold
    ):
        for split, columns in _rows_for_batch(project, batch, options, report, test_items, features).items():
            if columns.rows:
                yield split, columns.record_batch(schema)


def _columnar_batches(project, options, report, test_items, features):
    """The default config from `reading.pair_tables`: one-vote items by Arrow, other items by `_rows_for_batch`."""
    schema = features.arrow_schema
    conversational = options.style == "conversational"
    messages = styles.messages_type()
    test_ids = pa.array(sorted(test_items), pa.int64())
    for batch in reading.pair_tables(project=project, include_gold=options.include_gold, messages_type=messages):
        table = batch.table
        singles = table if batch.one_vote.all() else table.filter(batch.one_vote)  # a filter copies every column
        count = singles.num_rows
        report.items += count
        report.judgments += count
        report.counts.add_one_votes(count)
        general = batch.general and _rows_for_batch(project, batch.general, options, report, test_items, features)
        in_test = pc.is_in(singles["item_pk"], value_set=test_ids).to_numpy(zero_copy_only=False)
        for split, take in (("train", ~in_test), ("test", in_test)):
            mine = singles if take.all() else singles.filter(take)
            parts = [columnar.one_vote_rows(mine, schema, conversational=conversational)] if mine.num_rows else []
            if general and general[split].rows:
                parts.append(general[split].record_batch(schema))
            rows = columnar.in_item_order(parts, table)
            if rows is not None:
                yield split, rows


def _info(features: datasets.Features, split: str, rows: int, size: int) -> datasets.DatasetInfo:
    """What `Dataset.from_generator` recorded in dataset_info.json before, so no key goes missing."""
    return datasets.DatasetInfo(
        features=features.copy(),
        builder_name="generator",
        dataset_name="generator",
        config_name="default",
        version="0.0.0",
        download_size=0,
        dataset_size=size,
        size_in_bytes=size,
        splits=datasets.SplitDict(
            {split: datasets.SplitInfo(name=split, num_bytes=size, num_examples=rows, dataset_name="generator")},
            dataset_name="generator",
        ),
    )


def _write(dataset: datasets.DatasetDict, folder: Path, options: ExportOptions) -> None:
    """The Hub layout's Parquet files or one JSON Lines file per split."""
    for split, part in dataset.items():
        if options.fmt == "parquet":
            target = folder / styles.data_dir(options.config) / f"{split}-00000-of-00001.parquet"
            target.parent.mkdir(parents=True, exist_ok=True)
            part.to_parquet(str(target))
        else:
            part.to_json(str(folder / f"{split}.jsonl"), lines=True, force_ascii=False)


def _rows_for_batch(project, batch: reading.Batch, options, report, test_items, features) -> dict[str, Columns]:
    """A batch of items' rows, per split, as columns."""
    text = Text(options.style)
    columns = {split: Columns(list(features), conversational=text.conversational) for split in ("train", "test")}
    for item_id, judgments in batch.judgments:
        external_id, prompt_messages = batch.items[item_id]
        report.items += 1
        report.judgments += len(judgments)
        target = columns["test" if item_id in test_items else "train"]
        if options.config == "raw":
            for judgment in judgments:
                _add_raw(target, project, external_id, judgment, batch.responses)
            continue
        preferences = _preferences(judgments, options, report.counts)
        if not preferences:
            continue
        prompt = text.prompt(prompt_messages)
        if options.config == "unpaired":
            for preference in preferences:
                for pk, label in ((preference.chosen, True), (preference.rejected, False)):
                    model, content = batch.responses[pk]
                    text.add_prompt(target["prompt"], prompt)
                    text.add_completion(target["completion"], content)
                    target["label"].append(label)
                    target["model"].append(model or None)  # unknown: null, not ""
                    _add_common(target, external_id, preference)
            continue
        for preference in preferences:
            chosen_model, chosen = batch.responses[preference.chosen]
            rejected_model, rejected = batch.responses[preference.rejected]
            text.add_prompt(target["prompt"], prompt)
            text.add_completion(target["chosen"], chosen)
            text.add_completion(target["rejected"], rejected)
            target["chosen_model"].append(chosen_model or None)  # unknown: null, not ""
            target["rejected_model"].append(rejected_model or None)
            _add_common(target, external_id, preference)
            if "rank_gap" in target.data:
                target["rank_gap"].append(preference.rank_gap)
            if options.margin:
                target["margin"].append(preference.margin)
    return columns


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


def _add_raw(target: Columns, project: Project, external_id: str, judgment: tuple, responses: dict) -> None:
    ranking, strength, pk, annotator_id, both_bad, rationale, criteria, seconds, late, created, updated, shown = (
        judgment
    )
    target["judgment_id"].append(str(pk))
    target["item_id"].append(external_id)
    target["annotator"].append(annotator_pseudonym(project, annotator_id))
    target["ranking"].append([[str(pk) for pk in group] for group in ranking])
    target["ranking_models"].append([[responses[pk][0] or None for pk in group] for group in ranking])
    target["shown_order"].append([str(pk) for pk in shown])
    target["strength"].append(strength)
    target["both_bad"].append(both_bad)
    target["rationale"].append(rationale)
    target["criteria"].append(json.dumps(criteria, sort_keys=True))
    target["seconds"].append(seconds)
    target["late"].append(late)
    target["created_at"].append(created.isoformat())
    target["updated_at"].append(updated.isoformat())
