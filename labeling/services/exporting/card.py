"""The README.md dataset card written with every export.

It reads like a Hub card: what is in the data and where it came from, each column in
words, the models, how to load exactly what is in the folder, the license the project
chose (or that none was), and the guidelines nested under their own heading.
"""

from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import yaml
from datasets import Features
from datasets.info import DatasetInfo
from django.utils import timezone
from markdown_it import MarkdownIt

from labeling.models import Item, Job, Project
from labeling.services.exporting.describe import column_lines
from labeling.services.exporting.styles import data_dir
from labeling.services.metrics import project_stats

TAGS = ("dpo", "rlhf", "human-feedback", "preference")
SHAPE_NAMES = {
    "native": "native",
    "flat_pair": "flat pair",
    "trl_preference": "TRL preference",
    "hh_rlhf": "HH-RLHF",
    "chatbot_arena": "Chatbot Arena",
    "ultrafeedback": "UltraFeedback",
    "oasst_tree": "OpenAssistant message tree",
}
# The card's own sections are `##`; the guidelines' headings go below its "Guidelines" heading.
GUIDELINE_LEVELS = 2
UNKNOWN_MODEL = "null (unknown)"


def _yaml_header(project: Project, report, features: Features) -> str:
    """The card's metadata, dumped by a YAML library so no project text can break out of it."""
    options = report.options
    header: dict[str, object] = {"license": project.license} if project.license else {}  # no license nobody chose
    header |= {
        "pretty_name": project.title,
        "tags": list(TAGS),
        "task_categories": ["text-classification"],
        "size_categories": [_size_category(sum(report.rows.values()))],
    }
    if options.fmt == "parquet":
        folder = data_dir(options.config)
        header["configs"] = [
            {
                "config_name": options.config,
                "data_files": [{"split": split, "path": f"{folder}/{split}-*"} for split in report.rows],
            }
        ]
    info = DatasetInfo(features=features)._to_yaml_dict()  # the layout the Hub reads
    header["dataset_info"] = {
        "config_name": options.config,
        **info,
        "splits": [{"name": split, "num_examples": rows} for split, rows in report.rows.items()],
    }
    return "---\n" + yaml.safe_dump(header, sort_keys=False, allow_unicode=True) + "---"


_SIZES = ("1K", "10K", "100K", "1M", "10M", "100M", "1B", "1T")


def _size_category(rows: int) -> str:
    """The Hub's size bucket for `rows` rows: n<1K, 1K<n<10K, ..., n>1T."""
    bounds = (10**3, 10**4, 10**5, 10**6, 10**7, 10**8, 10**9, 10**12)
    for index, bound in enumerate(bounds):
        if rows < bound:
            return f"n<{_SIZES[0]}" if index == 0 else f"{_SIZES[index - 1]}<n<{_SIZES[index]}"
    return f"n>{_SIZES[-1]}"


def dataset_card(*, project: Project, report, features: Features) -> str:
    stats = project_stats(project=project)
    options = report.options
    counts = report.counts
    agreement = stats["agreement"]
    splits = ", ".join(f"{split}: {rows:,} rows" for split, rows in report.rows.items())
    annotators = len(stats["annotators"])
    columns = "\n".join(column_lines(features, style=options.style))
    # The guidelines come last: markdown a manager wrote (an unclosed code block, say) can only affect itself.
    body = f"""
# {project.title}

Human preference judgments collected with the feedback labeling tool, project `{project.slug}`.

## Contents

- Config `{options.config}`, {options.style} style, aggregation `{options.aggregate}`; {splits}.
- {report.items:,} items with {report.judgments:,} judgments by {annotators} annotator(s) (pseudonymous).
- Response pairs considered: {counts.pairs:,}; exported: {counts.exported:,}; left out as ties: {counts.tied:,};
  left out as split votes: {counts.split:,}; below the agreement threshold: {counts.below_agreement:,}.
- Agreement: pairwise {_fmt(agreement["pairwise"])}, Krippendorff's alpha {_fmt(agreement["krippendorff_alpha"])},
  with imported reference {_fmt(agreement["with_reference"])}.
- Splits are grouped by item (no prompt appears in two splits), seed {options.seed}, test size {options.test_size}.

## Source data

{_sources(project)}

## Models

{_models(report.models)}

## Columns

{columns}

## Loading

{_loading(options, list(report.rows))}

## License

{_license(project)}

## Guidelines given to annotators

{_guidelines(project.guidelines)}
"""
    return _yaml_header(project, report, features) + "\n" + body


def _fmt(value) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def _sources(project: Project) -> str:
    """The files the project's items were imported from (import jobs), and how many items came otherwise."""
    jobs = (
        Job.objects.filter(project=project, kind=Job.Kind.IMPORT, state=Job.State.SUCCEEDED)
        .order_by("finished_at", "created_at")
        .values_list("params", "result", "input_path", "finished_at")
    )
    lines, recorded = [], 0
    for params, result, input_path, finished_at in jobs:
        imported = result.get("imported") or 0
        if not imported:
            continue  # added nothing to the data
        recorded += imported
        name = params.get("file_name") or Path(input_path).name or "an upload"
        shape = SHAPE_NAMES.get(result.get("shape"), result.get("shape") or "unknown")
        when = f", imported {timezone.localdate(finished_at).isoformat()}" if finished_at else ""
        lines.append(f"- `{_code(name)}`: {shape} shape, {_count(imported, 'item')}{when}")
    unrecorded = Item.objects.filter(project=project).count() - recorded
    if unrecorded > 0:
        lines.append(
            f"- {_count(unrecorded, 'item')} came from imports the tool did not record "
            "(`manage.py import_items` keeps no record of its files)."
        )
    return "\n".join(["The project's items were imported from:", "", *lines]) if lines else "No items."


def _count(number: int, noun: str) -> str:
    return f"{number:,} {noun}" + ("" if number == 1 else "s")


def _code(text: str) -> str:
    """`text` safe inside a one-backtick code span (file names come from users)."""
    return text.replace("`", "'").replace("\n", " ")


def tally_models(tally: dict[str, dict[str | None, int]], rows: pa.Table | pa.RecordBatch) -> None:
    """Add to `tally` (card column -> model -> rows) the models named in a batch of export rows."""
    names = rows.schema.names
    if "chosen_model" in names:
        parts = {"chosen": rows["chosen_model"], "rejected": rows["rejected_model"]}
    elif "label" in names:  # unpaired (KTO)
        label = rows["label"]
        parts = {"desirable": rows["model"].filter(label), "undesirable": rows["model"].filter(pc.invert(label))}
    else:  # raw: every model each judgment ranked
        parts = {"judgments": pc.list_flatten(pc.list_flatten(rows["ranking_models"]))}
    for column, models in parts.items():
        counted = tally.setdefault(column, {})
        found = pc.value_counts(models)
        for model, number in zip(found.field("values").to_pylist(), found.field("counts").to_pylist(), strict=True):
            counted[model] = counted.get(model, 0) + number


def _models(tally: dict[str, dict[str | None, int]]) -> str:
    models = {model for counted in tally.values() for model in counted}
    if not models:
        return "No rows, so no models."
    columns = list(tally)
    totals = {model: sum(counted.get(model, 0) for counted in tally.values()) for model in models}
    order = sorted(models, key=lambda model: (-totals[model], model is None, model or ""))
    lines = [
        "Rows in which each model's response appears; an unknown model is null in the data.",
        "",
        "| model | " + " | ".join(columns) + " |",
        "| --- | " + " | ".join("---:" for _ in columns) + " |",
    ]
    for model in order:
        name = UNKNOWN_MODEL if model is None else f"`{_code(model).replace('|', '/')}`"
        lines.append(f"| {name} | " + " | ".join(f"{tally[column].get(model, 0):,}" for column in columns) + " |")
    return "\n".join(lines)


def _loading(options, splits: list[str]) -> str:
    """Only the instructions that load what this folder holds."""
    folder = "path/to/this/folder"
    if options.fmt == "parquet":
        code = [
            "from datasets import load_dataset",
            "",
            f'ds = load_dataset("{folder}")  # or the Hub repository id, once uploaded',
            f'ds = load_dataset("parquet", data_dir="{folder}/{data_dir(options.config)}")  # the same',
        ]
    elif options.fmt == "jsonl":
        files = ", ".join(f'"{split}": "{folder}/{split}.jsonl"' for split in splits)
        code = ["from datasets import load_dataset", "", f'ds = load_dataset("json", data_files={{{files}}})']
    else:
        code = ["from datasets import load_from_disk", "", f'ds = load_from_disk("{folder}")']
    trainer = {"default": "DPOTrainer or RewardTrainer", "unpaired": "KTOTrainer"}.get(options.config)
    after = f'\n\n`ds["train"]` goes to TRL\'s {trainer} as it is.' if trainer else ""
    return "```python\n" + "\n".join(code) + "\n```" + after


def _license(project: Project) -> str:
    if project.license:
        return f"This data is released under `{_code(project.license)}`, the license set in the project's settings."
    return (
        "Not set: the project's managers have not chosen a license for this data. "
        "Ask them before you share or publish it."
    )


def _guidelines(guidelines: str) -> str:
    text = guidelines.strip()
    return closed_code_blocks(demoted_headings(text)) if text else "(none)"


_MARKDOWN = MarkdownIt("commonmark")


def demoted_headings(markdown: str, *, by: int = GUIDELINE_LEVELS) -> str:
    """`markdown` with every heading `by` levels deeper (at most 6), nothing else changed.

    The headings are found by markdown-it's parser, so a `#` in a code block is left as it is;
    a setext heading (`Title` over `===`) becomes an ATX one. Newlines come out as `\\n`.
    """
    lines = _lines(markdown)
    tokens = _MARKDOWN.parse("\n".join(lines))
    # From the last heading up, so a setext heading folding two lines shifts no later line number.
    for index in reversed(range(len(tokens))):
        token = tokens[index]
        if token.type != "heading_open" or token.map is None:
            continue
        marks = "#" * min(int(token.tag[1]) + by, 6)
        start, end = token.map
        line = lines[start]
        if token.markup.startswith("#"):  # ATX: no container marker (>, -, 1.) holds a `#`
            at = line.index("#")
            lines[start] = line[:at] + marks + line[at + len(token.markup) :]
        else:  # setext: the text lines and the underline become one ATX line
            text = tokens[index + 1].content.split("\n")
            at = line.find(text[0]) if text[0] else -1
            prefix = line[:at] if at > 0 else ""  # a container's marker: `> `, `- `
            lines[start:end] = [f"{prefix}{marks} {' '.join(text)}"]
    return "\n".join(lines)


def closed_code_blocks(markdown: str) -> str:
    """`markdown` with a fence at the end if its last fenced code block is never closed."""
    lines = _lines(markdown)
    tokens = _MARKDOWN.parse("\n".join(lines))
    fences = [token for token in tokens if token.type == "fence" and token.level == 0 and token.map]
    if not fences:
        return markdown
    last = fences[-1]
    assert last.map is not None  # only fences with a map were kept
    start, end = last.map
    closing = lines[end - 1].strip() if end - 1 > start else ""
    if closing and set(closing) == {last.markup[0]} and len(closing) >= len(last.markup):
        return markdown
    return markdown + "\n" + last.markup


def _lines(markdown: str) -> list[str]:
    """The lines markdown-it numbers (it reads \\r\\n and \\r as newlines, and nothing else)."""
    return markdown.replace("\r\n", "\n").replace("\r", "\n").split("\n")
