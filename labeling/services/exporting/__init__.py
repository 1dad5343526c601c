"""Export judgments as a Hugging Face DatasetDict that TRL loads as it is.

Configs: `default` (one row per preference pair, TRL explicit-prompt format; every
strictly ordered pair of a K-way ranking is a pair, and ranking projects add `rank_gap`),
`raw` (one row per judgment), `unpaired` (TRL KTO: prompt, completion, label).
Splits are grouped by item (no prompt in two splits) and deterministic for a seed.

Who calls whom, top down (no module calls one above it):

- `writing`: the folder (staged, moved in whole), the writer thread, the formats, the card (`card`);
- `rows`: each chunk's rows per split, one-vote items by Arrow (`columnar`), the rest by
  `aggregate` and `columns`;
- `reading`: chunks of whole items as Arrow tables, for every config on both databases, from
  the data layer (`labeling.db.export`: the statements; `export_readers`: the ADBC readers);
- `saved`: `save_to_disk`'s layout written in place (a pinned exception, see there);
- `options`, `styles`, `describe`: what was asked, how text is written, the columns in words.
"""

from pathlib import Path

from labeling.models import Project
from labeling.services.exporting import writing
from labeling.services.exporting.options import CONFIGS, FORMATS, ExportOptions, ExportReport
from labeling.services.exporting.rows import annotator_pseudonym

__all__ = ["CONFIGS", "FORMATS", "ExportOptions", "ExportReport", "annotator_pseudonym", "preferences_export"]


def preferences_export(*, project: Project, out_dir: Path | str, options: ExportOptions | None = None) -> ExportReport:
    """Write the project's judgments to `out_dir` as a DatasetDict, or raise and write nothing.

    The folder appears whole or not at all; it must not exist yet, or be empty.
    """
    options = options or ExportOptions()
    options.validate()
    return writing.folder_write(project=project, out=Path(out_dir), options=options)
