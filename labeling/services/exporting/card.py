"""The README.md dataset card written with every export."""

import json

import yaml
from datasets import Features
from datasets.info import DatasetInfo

from labeling.models import Project
from labeling.services.exporting import styles
from labeling.services.metrics import project_stats

TAGS = ("dpo", "rlhf", "human-feedback", "preference")


def _yaml_header(project: Project, report, features: Features) -> str:
    """The card's metadata, dumped by a YAML library so no project text can break out of it."""
    options = report.options
    header = {"license": project.license, "tags": list(TAGS), "task_categories": ["text-classification"]}
    if options.fmt == "parquet":
        folder = styles.data_dir(options.config)
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


def dataset_card(*, project: Project, report, features: Features) -> str:
    stats = project_stats(project=project)
    options = report.options
    counts = report.counts
    agreement = stats["agreement"]
    splits = ", ".join(f"{split}: {rows:,} rows" for split, rows in report.rows.items())
    column_lines = "\n".join(
        f"- `{name}`: `{json.dumps(feature.to_dict() if hasattr(feature, 'to_dict') else str(feature))}`"
        + (f" — {styles.COLUMN_NOTES[name]}" if name in styles.COLUMN_NOTES else "")
        for name, feature in features.items()
    )
    annotators = len(stats["annotators"])
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

## Columns

{column_lines}

## Loading

```python
from datasets import load_dataset, load_from_disk
# save_to_disk layout:  load_from_disk("path/to/export")
# Hub layout:           load_dataset("parquet", data_dir="path/to/export/data")
```

## Guidelines given to annotators

{project.guidelines.strip() or "(none)"}

## License

{project.license}
"""
    return _yaml_header(project, report, features) + "\n" + body


def _fmt(value) -> str:
    return "n/a" if value is None else f"{value:.3f}"
