"""What an export is asked for (`ExportOptions`) and what it wrote (`ExportReport`)."""

from dataclasses import dataclass, field

from labeling.services.errors import InvalidInput
from labeling.services.exporting.aggregate import POLICIES, AggregateCounts
from labeling.services.exporting.styles import STYLES

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
        choices = {"config": CONFIGS, "style": STYLES, "aggregate": POLICIES, "fmt": FORMATS}
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
