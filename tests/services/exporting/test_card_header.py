import yaml

from labeling.services.assignment import assignment_next
from labeling.services.exporting import ExportOptions, preferences_export
from labeling.services.judgments import judgment_submit, ranking_from_choice


def _card_header(path):
    text = path.read_text()
    assert text.startswith("---\n")
    return yaml.safe_load(text.split("---\n", 2)[1]), text


def test_the_card_header_carries_configs_features_and_license(project, annotator, items, tmp_path):
    project.license = "cc-by-4.0\nmalicious: true"  # project text cannot break out of the YAML
    project.save()
    while (assignment := assignment_next(project=project, annotator=annotator)) is not None:
        ranking = ranking_from_choice(assignment=assignment, choice="A")
        judgment_submit(assignment_id=assignment.pk, annotator=annotator, ranking=ranking)
    out = tmp_path / "hub"
    preferences_export(project=project, out_dir=out, options=ExportOptions(fmt="parquet", margin=True))
    header, text = _card_header(out / "README.md")
    assert header["license"] == "cc-by-4.0\nmalicious: true" and "malicious" not in header
    assert {"dpo", "rlhf", "human-feedback", "preference"} <= set(header["tags"])
    assert header["configs"][0]["data_files"][0] == {"split": "train", "path": "data/train-*"}
    names = [feature["name"] for feature in header["dataset_info"]["features"]]
    assert names[:3] == ["prompt", "chosen", "rejected"] and "margin" in names
    assert header["dataset_info"]["splits"] == [{"name": "train", "num_examples": 5}]
    assert project.guidelines in text
