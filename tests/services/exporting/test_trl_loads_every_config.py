"""TRL reads every export config as it is: judgments made through the services, exported, then fed
through `trl.data_utils` with a tiny tokenizer built here (nothing is downloaded).

Without TRL these tests are skipped on a developer's machine; in CI (environment variable CI set)
a missing TRL fails them, because CI installs requirements-trl.txt.
"""

import importlib
import math
import os

import datasets
import pytest

from labeling.models import Project
from labeling.services.assignment import assignment_next
from labeling.services.exporting import ExportOptions, preferences_export
from labeling.services.judgments import judgment_submit
from tests.factories import ItemFactory, MembershipFactory, ProjectFactory


def _require(name: str):
    if os.environ.get("CI", "").strip().lower() in ("", "0", "false", "no"):
        return pytest.importorskip(name)
    try:
        return importlib.import_module(name)
    except ImportError as error:
        pytest.fail(f"{name} is not installed; CI must install requirements-trl.txt ({error})", pytrace=False)


trl_data = _require("trl.data_utils")
transformers = _require("transformers")
tokenizers = _require("tokenizers")

CHAT_TEMPLATE = (
    "{% for message in messages %}<|{{ message['role'] }}|>\n{{ message['content'] }}<|end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)
SYSTEM = {"role": "system", "content": "You answer gardening questions."}


@pytest.fixture(scope="module")
def tokenizer():
    """A word-level tokenizer with a chat template, made from nothing."""
    words = ["[UNK]", "[PAD]", "<|end|>", "<|system|>", "<|user|>", "<|assistant|>", "tomato", "sun", "water"]
    backend = tokenizers.Tokenizer(tokenizers.models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="[UNK]"))
    backend.pre_tokenizer = tokenizers.pre_tokenizers.Whitespace()
    return transformers.PreTrainedTokenizerFast(
        tokenizer_object=backend,
        chat_template=CHAT_TEMPLATE,
        unk_token="[UNK]",
        pad_token="[PAD]",
        eos_token="<|end|>",
    )


def judged_project(mode: str) -> Project:
    """Two annotators judge through the real services: a pairwise project with two 2-response items
    (one a multi-turn conversation with a system message), or a ranking project with a 4-way and a
    3-way item, ranked with a tie by one annotator."""
    project = ProjectFactory(slug=f"trl-{mode}", overlap=2, mode=mode)
    annotators = [MembershipFactory(project=project, user__username=f"{mode}-{n}").user for n in range(2)]
    conversation = [SYSTEM, {"role": "user", "content": "Tomatoes?"}, {"role": "assistant", "content": "Yes?"}]
    conversation.append({"role": "user", "content": "How much sun do they need?"})
    if mode == Project.Mode.PAIRWISE:
        plan = {"multi-turn": (conversation, 2, [[[0], [1]], [[0], [1]]]), "single": (None, 2, [[[1], [0]]] * 2)}
    else:
        plan = {
            "multi-turn": (conversation, 4, [[[0], [1, 2], [3]], [[0], [2], [1], [3]]]),
            "single": (None, 3, [[[2], [0], [1]]] * 2),
        }
    for external_id, (prompt, count, rankings) in plan.items():
        contents = [f"{external_id} answer {n}: water and sun" for n in range(count)]
        extra = {"prompt": prompt} if prompt else {}
        item = ItemFactory(project=project, external_id=external_id, responses=contents, **extra)
        pk = dict(item.responses.values_list("position", "id"))
        for annotator, ranking in zip(annotators, rankings, strict=True):
            assignment = assignment_next(project=project, annotator=annotator)
            assert assignment.item_id == item.pk
            judgment_submit(
                assignment_id=assignment.pk,
                annotator=annotator,
                ranking=[[pk[position] for position in group] for group in ranking],
                strength=2,
            )
    return project


@pytest.fixture(params=[Project.Mode.PAIRWISE, Project.Mode.RANKING])
def project(request, db):
    return judged_project(request.param)


def exported(project, tmp_path, **options) -> datasets.Dataset:
    out = tmp_path / "-".join(f"{key}={value}" for key, value in sorted(options.items()))
    preferences_export(project=project, out_dir=out, options=ExportOptions(**options))
    train = datasets.load_from_disk(str(out))["train"]
    assert train.num_rows
    return train


def render(tokenizer, messages, *, generation_prompt=False) -> str:
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=generation_prompt)


# -- default config -----------------------------------------------------------------


@pytest.mark.parametrize("margin", [False, True])
def test_conversational_default_export_is_trl_explicit_prompt_preference_data(project, tmp_path, tokenizer, margin):
    train = exported(project, tmp_path, margin=margin)

    assert all(trl_data.is_conversational(row) for row in train)
    assert train.map(trl_data.maybe_extract_prompt).to_list() == train.to_list()  # the prompt is already explicit
    templated = train.map(trl_data.maybe_apply_chat_template, fn_kwargs={"processing_class": tokenizer})
    for row, text in zip(train, templated, strict=True):
        assert text["prompt"] == render(tokenizer, row["prompt"], generation_prompt=True)
        assert text["prompt"].endswith("<|user|>\n" + row["prompt"][-1]["content"] + "<|end|>\n<|assistant|>\n")
        for column in ("chosen", "rejected"):
            assert text[column] == row[column][0]["content"] + "<|end|>\n"
            assert text["prompt"] + text[column] == render(tokenizer, row["prompt"] + row[column])
        assert text["item_id"] == row["item_id"]  # our extra columns ride along
    if margin:
        assert all(isinstance(value, float) and value > 0 for value in templated["margin"])


def test_standard_default_export_concatenates_as_trl_expects(project, tmp_path, tokenizer):
    train = exported(project, tmp_path, style="standard")

    assert not any(trl_data.is_conversational(row) for row in train)
    assert train.map(trl_data.maybe_extract_prompt).to_list() == train.to_list()
    untouched = train.map(trl_data.maybe_apply_chat_template, fn_kwargs={"processing_class": tokenizer})
    assert untouched.to_list() == train.to_list()  # text is not templated again
    for row in train:
        assert row["prompt"].startswith("\n\n") and row["prompt"].endswith("\n\nAssistant:")
        for column in ("chosen", "rejected"):
            content = row[column].removeprefix(" ")
            assert content == content.strip() and row[column] == " " + content
            joined = row["prompt"] + row[column]  # TRL joins them with no separator
            assert joined.endswith("\n\nAssistant: " + content)
    multi_turn = next(row for row in train if row["item_id"] == "multi-turn")
    assert multi_turn["prompt"] == (
        "\n\nSystem: You answer gardening questions.\n\nHuman: Tomatoes?\n\nAssistant: Yes?"
        "\n\nHuman: How much sun do they need?\n\nAssistant:"
    )


@pytest.mark.parametrize("style", ["conversational", "standard"])
def test_trl_unpairs_the_default_export_into_our_unpaired_export(project, tmp_path, style):
    paired = exported(project, tmp_path, style=style)
    ours = exported(project, tmp_path, style=style, config="unpaired")

    theirs = trl_data.unpair_preference_dataset(paired)

    assert theirs.num_rows == ours.num_rows == 2 * paired.num_rows
    assert {"prompt", "completion", "label", "item_id"} <= set(theirs.column_names)

    def key(row):
        return row["item_id"], str(row["prompt"]), str(row["completion"]), row["label"]

    assert sorted(map(key, theirs)) == sorted(map(key, ours))


# -- unpaired and raw configs --------------------------------------------------------------


def test_unpaired_export_is_trl_unpaired_preference_data(project, tmp_path, tokenizer):
    train = exported(project, tmp_path, config="unpaired")

    assert all(trl_data.is_conversational(row) for row in train)
    assert trl_data.maybe_unpair_preference_dataset(train).to_list() == train.to_list()  # already unpaired
    templated = train.map(trl_data.maybe_apply_chat_template, fn_kwargs={"processing_class": tokenizer})
    for row, text in zip(train, templated, strict=True):
        assert text["prompt"] == render(tokenizer, row["prompt"], generation_prompt=True)
        assert text["completion"] == row["completion"][0]["content"] + "<|end|>\n"
        assert text["label"] is row["label"]
    assert set(train["label"]) == {True, False}


def test_standard_unpaired_export_is_text(project, tmp_path):
    train = exported(project, tmp_path, config="unpaired", style="standard")

    assert not any(trl_data.is_conversational(row) for row in train)
    assert all(row["completion"].startswith(" ") for row in train)


def test_raw_export_is_not_mistaken_for_training_data(project, tmp_path):
    train = exported(project, tmp_path, config="raw")

    for row in train:
        assert not trl_data.is_conversational(row)
        assert trl_data.maybe_extract_prompt(row) == row


# -- the trainers ---------------------------------------------------------------------


def tiny_model(kind: str, tokenizer):
    """A one-layer model with random weights, built from a config (nothing downloaded)."""
    config = transformers.LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=2,
        max_position_embeddings=256,
        num_labels=1,
        pad_token_id=tokenizer.pad_token_id,
    )
    model_class = transformers.LlamaForSequenceClassification if kind == "reward" else transformers.LlamaForCausalLM
    return model_class(config)


@pytest.mark.parametrize(("trainer", "style"), [("reward", "standard"), ("dpo", "conversational")])
def test_reward_and_dpo_trainers_train_a_step_on_the_export_as_it_is(
    db, tmp_path, tokenizer, monkeypatch, trainer, style
):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    trl = _require("trl")
    train = exported(judged_project(Project.Mode.RANKING), tmp_path, style=style, margin=True)
    assert {"margin", "rank_gap", "item_id"} <= set(train.column_names)
    settings = {
        "output_dir": str(tmp_path / "run"),
        "max_steps": 1,
        "per_device_train_batch_size": 2,
        "report_to": [],
        "save_strategy": "no",
        "use_cpu": True,
    }
    if trainer == "reward":
        run = trl.RewardTrainer(
            model=tiny_model("reward", tokenizer),
            args=trl.RewardConfig(**settings),
            train_dataset=train,
            processing_class=tokenizer,
        )
    else:
        run = trl.DPOTrainer(
            model=tiny_model("dpo", tokenizer),
            ref_model=tiny_model("dpo", tokenizer),
            args=trl.DPOConfig(**settings),
            train_dataset=train,
            processing_class=tokenizer,
        )

    result = run.train()

    assert result.global_step == 1
    assert math.isfinite(result.training_loss)
