"""Export judgments as a Hugging Face DatasetDict that TRL loads as it is.

Configs: `default` (one row per preference pair, TRL explicit-prompt format; every
strictly ordered pair of a K-way ranking is a pair, and ranking projects add `rank_gap`),
`raw` (one row per judgment), `unpaired` (TRL KTO: prompt, completion, label).
Splits are grouped by item (no prompt in two splits) and deterministic for a seed.
"""

import hashlib
import hmac
import json
import random
import shutil
import tempfile
import uuid
from dataclasses import asdict, dataclass, field
from itertools import groupby
from pathlib import Path

import datasets
from django.conf import settings

from labeling.models import Item, Judgment, Project, Response
from labeling.services.errors import InvalidInput
from labeling.services.exporting import styles
from labeling.services.exporting.aggregate import POLICIES, AggregateCounts, aggregate, item_pairs
from labeling.services.exporting.card import dataset_card

CONFIGS = ("default", "raw", "unpaired")
FORMATS = ("hf", "parquet", "jsonl")
ITEM_BATCH = 500


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

    def as_dict(self) -> dict:
        return asdict(self)


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
    test_items = _test_items(_judgments(project, options), options)
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".export-", dir=out.parent))
    arrow = Path(tempfile.mkdtemp(prefix=".export-arrow-", dir=out.parent))
    try:
        splits = ["train", "test"] if test_items else ["train"]
        dataset = _stream(_iter_rows(project, options, report, test_items), features, splits, arrow)
        report.rows = {split: len(part) for split, part in dataset.items()}
        _write(dataset, staging, options)
        (staging / "README.md").write_text(dataset_card(project=project, report=report, features=features))
        if out.exists():
            out.rmdir()
        staging.rename(out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    finally:
        shutil.rmtree(arrow, ignore_errors=True)
    return report


def _stream(rows, features: datasets.Features, splits: list[str], cache: Path) -> datasets.DatasetDict:
    """Rows to Arrow files in batches (datasets' generator builder), then one dataset per split.

    Memory stays flat whatever the project's size: rows are written as they come, and
    splits are memory-mapped filters of the written table. The cache folder is new for
    every export, so datasets can never hand back an earlier export's rows.
    """
    first = next(rows, None)
    if first is None:  # datasets cannot build a table from an empty generator
        empty = {name: [] for name in features}
        return datasets.DatasetDict({split: datasets.Dataset.from_dict(empty, features=features) for split in splits})
    tagged = datasets.Features({**features, "__split": datasets.Value("string")})

    def generate():
        yield {**{name: first[1].get(name) for name in features}, "__split": first[0]}
        for split, row in rows:
            yield {**{name: row.get(name) for name in features}, "__split": split}

    # An explicit fingerprint: the generator reads a database cursor, which datasets cannot hash.
    table = datasets.Dataset.from_generator(
        generate, features=tagged, cache_dir=str(cache), fingerprint=uuid.uuid4().hex
    )
    return datasets.DatasetDict(
        {
            split: table.filter(
                lambda batch, wanted=split: [s == wanted for s in batch["__split"]], batched=True
            ).remove_columns("__split")
            for split in splits
        }
    )


def _write(dataset: datasets.DatasetDict, folder: Path, options: ExportOptions) -> None:
    if options.fmt == "hf":
        # datasets writes no shard for an empty split and then cannot load it back.
        dataset.save_to_disk(str(folder), num_shards={split: 1 for split, part in dataset.items() if not len(part)})
        return
    for split, part in dataset.items():
        if options.fmt == "parquet":
            target = folder / styles.data_dir(options.config) / f"{split}-00000-of-00001.parquet"
            target.parent.mkdir(parents=True, exist_ok=True)
            part.to_parquet(str(target))
        else:
            part.to_json(str(folder / f"{split}.jsonl"), lines=True, force_ascii=False)


def _iter_rows(project: Project, options: ExportOptions, report: ExportReport, test_items: set[int]):
    """Yield (split, row) for every exported row, reading judgments through a server-side cursor."""
    values = (
        _judgments(project, options)
        .order_by("item_id", "created_at")
        .values(
            "id",
            "item_id",
            "annotator_id",
            "ranking",
            "strength",
            "both_bad",
            "rationale",
            "criteria",
            "seconds",
            "late",
            "created_at",
            "updated_at",
            "assignment__shown_order",
        )
    )
    grouped = ((item_id, list(group)) for item_id, group in groupby(values.iterator(chunk_size=2000), key=_item_id))
    batch: list[tuple[int, list[dict]]] = []
    for entry in grouped:
        batch.append(entry)
        if len(batch) >= ITEM_BATCH:
            yield from _rows_for_batch(project, batch, options, report, test_items)
            batch = []
    yield from _rows_for_batch(project, batch, options, report, test_items)


def _judgments(project: Project, options: ExportOptions):
    judgments = Judgment.objects.filter(project=project)
    return judgments if options.include_gold else judgments.exclude(item__is_gold=True)


def _item_id(row: dict) -> int:
    return row["item_id"]


def _test_items(judgments, options: ExportOptions) -> set[int]:
    """Item ids for the test split: a seeded shuffle of the judged items, so no prompt is in two splits."""
    if not options.test_size:
        return set()
    item_ids = sorted(set(judgments.values_list("item_id", flat=True)))
    random.Random(options.seed).shuffle(item_ids)
    count = round(len(item_ids) * options.test_size)
    if len(item_ids) >= 2:
        count = min(max(count, 1), len(item_ids) - 1)
    return set(item_ids[:count])


def _rows_for_batch(project, batch, options, report, test_items):
    if not batch:
        return
    item_ids = [item_id for item_id, _ in batch]
    items = {item.pk: item for item in Item.objects.filter(pk__in=item_ids).only("id", "external_id", "prompt")}
    responses = {response.pk: response for response in Response.objects.filter(item_id__in=item_ids)}
    for item_id, judgments in batch:
        item = items[item_id]
        report.items += 1
        report.judgments += len(judgments)
        split = "test" if item_id in test_items else "train"
        if options.config == "raw":
            for judgment in judgments:
                yield split, _raw_row(project, item, judgment, responses)
            continue
        pairs = item_pairs(judgments)
        preferences = aggregate(
            pairs, judgments, policy=options.aggregate, min_agreement=options.min_agreement, counts=report.counts
        )
        prompt = styles.prompt(item.prompt, options.style)
        for preference in preferences:
            chosen, rejected = responses[preference.chosen], responses[preference.rejected]
            base = {"prompt": prompt, "item_id": item.external_id, "votes": preference.votes}
            base["agreement"] = preference.agreement
            if options.config == "unpaired":
                for response, label in ((chosen, True), (rejected, False)):
                    completion = styles.completion(response.content, options.style)
                    yield split, {**base, "completion": completion, "label": label, "model": response.model}
                continue
            row = {
                **base,
                "chosen": styles.completion(chosen.content, options.style),
                "rejected": styles.completion(rejected.content, options.style),
                "chosen_model": chosen.model,
                "rejected_model": rejected.model,
                "rank_gap": preference.rank_gap,  # kept only where the features declare it (ranking projects)
            }
            if options.margin:
                row["margin"] = preference.margin
            yield split, row


def annotator_pseudonym(project: Project, annotator_id: int) -> str:
    """A stable id per annotator and project that does not reveal who they are."""
    digest = hmac.new(settings.SECRET_KEY.encode(), f"{project.pk}:{annotator_id}".encode(), hashlib.sha256)
    return "annotator-" + digest.hexdigest()[:12]


def _raw_row(project: Project, item: Item, judgment: dict, responses: dict[int, Response]) -> dict:
    return {
        "judgment_id": str(judgment["id"]),
        "item_id": item.external_id,
        "annotator": annotator_pseudonym(project, judgment["annotator_id"]),
        "ranking": [[str(pk) for pk in group] for group in judgment["ranking"]],
        "ranking_models": [[responses[pk].model for pk in group] for group in judgment["ranking"]],
        "shown_order": [str(pk) for pk in judgment["assignment__shown_order"]],
        "strength": judgment["strength"],
        "both_bad": judgment["both_bad"],
        "rationale": judgment["rationale"],
        "criteria": json.dumps(judgment["criteria"], sort_keys=True),
        "seconds": judgment["seconds"],
        "late": judgment["late"],
        "created_at": judgment["created_at"].isoformat(),
        "updated_at": judgment["updated_at"].isoformat(),
    }
