"""The export's folder: rows streamed to disk as `rows` builds them, then the format asked for and the card.

The folder appears whole or not at all: it is written beside its final place and moved in
when complete. Memory stays flat whatever the project's size: each chunk's rows are written
(by a thread, while the next chunk is built) before the next are read.
"""

import shutil
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import datasets

from labeling.models import Project
from labeling.services.errors import InvalidInput
from labeling.services.exporting.card import dataset_card, tally_models
from labeling.services.exporting.options import ExportOptions, ExportReport
from labeling.services.exporting.reading import test_items as test_split_items
from labeling.services.exporting.rows import split_rows
from labeling.services.exporting.saved import SavedSplit, dict_finish, layout_check, split_info
from labeling.services.exporting.styles import data_dir
from labeling.services.exporting.styles import features as config_features
from labeling.services.memory import older_objects_frozen


def folder_write(*, project: Project, out: Path, options: ExportOptions) -> ExportReport:
    """Write the export to `out` (absent or empty), or raise and leave nothing behind."""
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise InvalidInput(f"'{out}' already exists and is not empty; choose another --out or remove it.")
    report = ExportReport(out=str(out), options=options)
    ranked = project.mode == Project.Mode.RANKING  # pairwise exports keep exactly the columns DESIGN.md lists
    features = config_features(options.config, options.style, margin=options.margin, rank_gap=ranked)
    test_items = test_split_items(
        project=project, include_gold=options.include_gold, test_size=options.test_size, seed=options.seed
    )
    splits = ["train", "test"] if test_items else ["train"]
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".export-", dir=out.parent))
    # hf: the rows are written once, in their final place; the other formats convert them from there.
    arrow = staging if options.fmt == "hf" else Path(tempfile.mkdtemp(prefix=".export-arrow-", dir=out.parent))
    try:
        with older_objects_frozen():
            found = split_rows(
                project=project, options=options, features=features, test_items=test_items, report=report
            )
            report.rows = _saved(found, report, features, splits, arrow)
            if options.fmt != "hf":
                _converted(datasets.load_from_disk(str(arrow)), staging, options)
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


def _saved(found, report: ExportReport, features: datasets.Features, splits: list[str], folder: Path) -> dict[str, int]:
    """`found`'s (split, rows) to `folder` in `save_to_disk`'s layout; the rows per split."""
    layout_check()
    written = {split: SavedSplit(folder / split, features.arrow_schema, split) for split in splits}
    try:
        # Each chunk's rows are written by a thread while the next are built (the write is mostly the kernel's copy).
        with ThreadPoolExecutor(max_workers=1) as writer:
            pending = None
            for split, part in found:
                tally_models(report.models, part)
                if pending is not None:
                    pending.result()
                pending = writer.submit(written[split].write, part)
            if pending is not None:
                pending.result()
    finally:
        for part in written.values():
            part.close()
    for split, part in written.items():
        part.finish(split_info(features, split, rows=part.rows, size=part.bytes))
    dict_finish(folder, splits)
    return {split: part.rows for split, part in written.items()}


def _converted(dataset: datasets.DatasetDict, folder: Path, options: ExportOptions) -> None:
    """The Hub layout's Parquet files or one JSON Lines file per split."""
    for split, part in dataset.items():
        if options.fmt == "parquet":
            target = folder / data_dir(options.config) / f"{split}-00000-of-00001.parquet"
            target.parent.mkdir(parents=True, exist_ok=True)
            part.to_parquet(str(target))
        else:
            part.to_json(str(folder / f"{split}.jsonl"), lines=True, force_ascii=False)
