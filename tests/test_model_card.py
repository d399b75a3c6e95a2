"""The model card (front matter read back, sections, reproduce command) and the
upload to the Hub with HfApi mocked (no network)."""

from __future__ import annotations

import doctest
import json
import shlex
from unittest import mock

import pytest

import hub.model_card as mc
from hub.model_card import HubUploadError, model_card, push_to_hub, to_yaml, write_model_card
from hub.reproduce import reproduce_command
from hub.samples import samples_dir

yaml = pytest.importorskip("yaml")  # only to read the hand-written YAML back


def student_card(**over) -> dict:
    """A run.json as hub.distill.distill writes it (field for field)."""
    card = {
        "kind": "student", "task": "sst2", "status": "finished", "created_at": "2025-01-02T03:04:05+00:00",
        "labels": ["negative", "positive"],
        "data": {"kind": "files", "train_file": "/srv/x/shared/data/sst2/train.tsv",
                 "eval_file": "/srv/x/shared/data/sst2/validation.tsv", "text_column": "sentence",
                 "label_column": "label", "train_size": 20000, "eval_size": 872},
        "train": {"epochs": 1.0, "batch_size": 32, "learning_rate": 0.0005, "warmup_ratio": 0.1, "weight_decay": 0.01,
                  "max_length": 128, "seed": 7, "save_steps": 200, "max_steps": -1},
        "versions": {"torch": "2.13.0", "transformers": "5.20.0"},
        "hardware": {"cpu": "Some CPU", "cores": 2, "threads": 2, "torch": "2.13.0", "transformers": "5.20.0",
                     "python": "3.11.7", "device": "cpu"},
        "teacher": "minilm-l6", "teacher_params": 22_714_000, "params": 14_350_000,
        "student": {"spec": "tinybert-4l-312", "layers": 4, "hidden": 312, "heads": 12, "ffn": 1200},
        "layer_map": [2, 4, 6, 6], "divergence": "reverse", "stages": ["intermediate", "prediction"],
        "temperature": 2.0, "alpha": 0.3,
        "loss_weights": {"embedding": 1.0, "attention": 0.5, "hidden": 1.0, "prediction": 1.0},
        "attention_target": "probabilities (post-softmax), padding masked", "projection": True,
        "wall_time_s": 612.5, "train_examples_per_s": 65.3,
        "eval": {"student": {"accuracy": 0.8268348623853211, "f1": 0.8341, "eval_size": 872},
                 "teacher": {"accuracy": 0.8864678899082569, "f1": 0.8890, "eval_size": 872},
                 "retention": 0.8268348623853211 / 0.8864678899082569},
    }
    card.update(over)
    return card


def front_matter(text: str) -> dict:
    assert text.startswith("---\n")
    head, _, _ = text[4:].partition("\n---\n")
    return yaml.safe_load(head)


def test_doctests():
    import hub.model_card_metadata as meta

    assert doctest.testmod(mc).failed == 0
    assert doctest.testmod(meta).failed == 0  # to_yaml, hub_model_id


def test_to_yaml_round_trips_awkward_strings():
    data = {"a": ["x: y", "- z", "#no comment", "quote \" and \\ and é", "yes", "1.5", ""],
            "b": [{"c": 1, "d": {"e": 0.25, "f": True}}, {"g": "h"}], "n": None}
    assert yaml.safe_load(to_yaml(data)) == {k: v for k, v in data.items() if v is not None}


def test_front_matter_metadata_and_model_index_match_the_card():
    card = student_card()
    meta = front_matter(model_card(card, repo_id="me/sst2-tiny"))
    assert meta["library_name"] == "transformers"
    assert meta["pipeline_tag"] == "text-classification"
    assert set(meta["tags"]) >= {"knowledge-distillation", "tinybert", "distill-hub"}
    assert meta["base_model"] == "sentence-transformers/all-MiniLM-L6-v2"  # the alias's Hub id
    assert meta["datasets"] == ["nyu-mll/glue"]
    assert "license" not in meta  # unknown: omitted
    [entry] = meta["model-index"]
    assert entry["name"] == "sst2-tiny"
    [result] = entry["results"]
    assert result["task"]["type"] == "text-classification"
    assert result["dataset"] == {"name": "GLUE SST-2", "type": "nyu-mll/glue", "config": "sst2", "split": "validation"}
    got = {m["type"]: m["value"] for m in result["metrics"]}
    assert got == pytest.approx({"accuracy": card["eval"]["student"]["accuracy"], "f1": card["eval"]["student"]["f1"]},
                                abs=1e-6)
    assert all(m["name"] for m in result["metrics"])


def test_body_has_every_section_and_the_numbers():
    text = model_card(student_card(), repo_id="me/sst2-tiny")
    for heading in ("## Teacher", "## Data", "## Recipe", "## Results", "## Hardware and time", "## Reproduce", "## Use it"):
        assert heading in text
    assert "| Accuracy | 88.65% | 82.68% | 0.933 |" in text  # teacher, student, ratio
    assert "**Retention**" in text and "93.3%" in text
    assert "T = 2.0" in text and "α = 0.3" in text and "attention 0.5" in text
    assert "1 → 2, 2 → 4, 3 → 6, 4 → 6" in text
    assert "Some CPU, 2 cores, 2 threads" in text
    assert "pipeline('text-classification', model='me/sst2-tiny')" in text
    assert "/srv/x" not in text  # no server paths in a public card


def test_squad_scores_are_shown_on_their_own_0_100_scale():
    """SQuAD's scores are 0-100 already: a NoAns F1 of 0.997 (under one point) is not 99.7%,
    and a classification F1 of 0.83 is 83%."""
    qa = {"exact_match": 21.0, "f1": 27.1, "NoAns_f1": 0.997, "eval_size": 1407}
    text = model_card(student_card(task="squad", eval={"student": qa, "teacher": {**qa, "NoAns_f1": 1.71},
                                                       "retention": 1.0}))
    assert "| F1 | 27.10 | 27.10 | 1.000 |" in text
    assert "| F1 (unanswerable) | 1.71 | 1.00 | 0.583 |" in text and "99.70%" not in text
    assert "| F1 | 88.90% | 83.41% |" in model_card(student_card())


def test_reproduce_command_parses_with_the_cli_and_matches_the_card():
    from hub.cli import build_parser

    card = student_card()
    argv = shlex.split(reproduce_command(card, output_dir="runs/again"))
    assert argv[:3] == ["python", "-m", "hub"]
    args = build_parser().parse_args(argv[3:])
    assert (args.command, args.task, args.teacher, args.student) == ("distill", "sst2", "minilm-l6", "tinybert-4l-312")
    stages = args.stages if isinstance(args.stages, str) else ",".join(args.stages)
    assert stages == "intermediate,prediction" and args.temperature == 2.0 and args.alpha == 0.3
    assert args.w_attention == 0.5 and args.layer_map == "2,4,6,6" and args.divergence == "reverse"
    assert (args.epochs, args.batch_size, args.learning_rate, args.seed) == (1.0, 32, 0.0005, 7)
    assert args.max_train_samples == 20000 and args.max_eval_samples == 872 and args.output_dir == "runs/again"
    assert args.data_dir == "DATA_DIR" or args.data_dir.endswith("shared/data")


def test_custom_student_hub_data_and_teacher_card():
    card = student_card(student={"spec": "custom-3l-128", "layers": 3, "hidden": 128, "heads": 4, "ffn": 512},
                        data={"kind": "hub", "dataset": "glue", "config": "sst2", "train_size": 100, "eval_size": 50})
    cmd = reproduce_command(card)
    assert "--student custom --student-layers 3 --student-hidden 128 --student-heads 4 --student-ffn 512" in cmd
    assert "--dataset glue --dataset-config sst2" in cmd
    meta = front_matter(model_card(card))
    assert meta["datasets"] == ["nyu-mll/glue"]

    teacher = {k: v for k, v in student_card().items() if k not in ("teacher", "teacher_params", "student", "layer_map",
                                                                     "stages", "temperature", "alpha", "loss_weights")}
    teacher.update(kind="teacher", base_model="minilm-l6", eval={"model": {"accuracy": 0.9, "f1": 0.91, "eval_size": 872}})
    text = model_card(teacher)
    meta = front_matter(text)
    assert "tinybert" not in meta["tags"]
    assert meta["model-index"][0]["results"][0]["metrics"][0]["value"] == 0.9
    assert "python -m hub finetune --task sst2 --model minilm-l6" in text


def test_local_teacher_is_no_base_model_and_failed_run_has_no_scores(tmp_path):
    local = tmp_path / "teacher"
    local.mkdir()
    meta = front_matter(model_card(student_card(teacher=str(local))))
    assert "base_model" not in meta
    failed = student_card(status="failed")
    failed.pop("eval")
    text = model_card(failed)
    assert "model-index" not in front_matter(text) and "No evaluation was recorded" in text


def test_embedded_sample_data_is_named(tmp_path):
    root = samples_dir()
    card = student_card(data={**student_card()["data"], "train_file": str(root / "sst2" / "train.tsv"),
                              "eval_file": str(root / "sst2" / "validation.tsv")})
    text = model_card(card)
    assert "embedded sample `hub/samples/sst2/train.tsv`" in text
    assert "--data-dir hub/samples" in text


def test_write_model_card_is_atomic_and_reads_run_json(tmp_path):
    (tmp_path / "run.json").write_text(json.dumps(student_card()))
    path = write_model_card(tmp_path)
    assert path == tmp_path / "README.md" and not list(tmp_path.glob("*.tmp")) and not list(tmp_path.glob(".*.tmp"))
    assert front_matter(path.read_text())["model-index"][0]["name"] == tmp_path.name
    with pytest.raises(FileNotFoundError, match="run.json"):
        write_model_card(tmp_path / "missing")


def _model_folder(tmp_path):
    folder = tmp_path / "student"
    (folder / "checkpoints").mkdir(parents=True)
    (folder / "config.json").write_text("{}")
    return folder


def test_push_uploads_the_folder_without_checkpoints(tmp_path, monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    folder = _model_folder(tmp_path)
    with mock.patch("huggingface_hub.HfApi") as api_cls:
        api = api_cls.return_value
        api.create_repo.return_value = "https://huggingface.co/me/tiny"
        url = push_to_hub(folder, "me/tiny", token="t", private=True)
    assert url == "https://huggingface.co/me/tiny"
    api.create_repo.assert_called_once_with("me/tiny", token="t", private=True, repo_type="model", exist_ok=True)
    kwargs = api.upload_folder.call_args.kwargs
    assert kwargs["folder_path"] == str(folder) and kwargs["repo_id"] == "me/tiny" and kwargs["token"] == "t"
    assert {"checkpoints/", "stages/", "*.tmp"} <= set(kwargs["ignore_patterns"])


def test_ignore_patterns_drop_training_state():
    from huggingface_hub.utils import filter_repo_objects

    files = ["config.json", "model.safetensors", "README.md", "run.json", "run.json.tmp",
             "checkpoints/checkpoint-200/optimizer.pt", "stages/prediction/final.safetensors"]
    kept = list(filter_repo_objects(files, ignore_patterns=mc.UPLOAD_IGNORE))
    assert kept == ["config.json", "model.safetensors", "README.md", "run.json"]


def test_push_offline_and_refusals_are_clear(tmp_path, monkeypatch):
    from huggingface_hub import constants

    folder = _model_folder(tmp_path)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(HubUploadError, match="HF_HUB_OFFLINE"):
        push_to_hub(folder, "me/tiny")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    with mock.patch("huggingface_hub.HfApi") as api_cls:
        api_cls.return_value.create_repo.side_effect = ConnectionError("Name or service not known")
        with pytest.raises(HubUploadError, match=r"could not reach the Hugging Face Hub.*offline"):
            push_to_hub(folder, "me/tiny")
    with pytest.raises(HubUploadError, match="not a Hub repository id"):
        push_to_hub(folder, "no slash")
    with pytest.raises(HubUploadError, match="no config.json"):
        push_to_hub(tmp_path, "me/tiny")


def test_card_of_a_real_distilled_folder_loads_with_pipeline(trained_pair):
    """The fields distill() writes produce a valid card, and the folder loads as the card says."""
    from transformers import pipeline

    from hub.cli import build_parser

    _, student = trained_pair
    card = json.loads((student / "run.json").read_text())
    meta = front_matter(model_card(card))
    values = {m["type"]: m["value"] for m in meta["model-index"][0]["results"][0]["metrics"]}
    assert values["accuracy"] == pytest.approx(card["eval"]["student"]["accuracy"], abs=1e-6)
    args = build_parser().parse_args(shlex.split(reproduce_command(card))[3:])
    assert args.student == card["student"]["spec"] and args.layer_map == ",".join(map(str, card["layer_map"]))
    clf = pipeline("text-classification", model=str(student))
    assert clf("the movie was good")[0]["label"] in ("negative", "positive")


def test_reproduce_an_augmented_run_with_its_own_training_file():
    """A training file of its own beside the task's eval file is not the task's layout:
    the command names both files (it had said --data-dir, which trains on the original)."""
    card = student_card()
    card["data"] = {**card["data"], "data_dir": None, "train_file": "/srv/runs/aug/sst2-20k.tsv",
                    "eval_file": "/srv/shared/data/sst2/validation.tsv",
                    "augmentation": {"proposer": "embeddings", "model": "runs/teacher", "originals": 20000,
                                     "augmented": 58362, "config": {"per_example": 4, "replace_prob": 0.4,
                                                                    "candidates": 15, "seed": 42},
                                     "source": {"kind": "files", "train_file": "/srv/shared/data/sst2/train.tsv"},
                                     "output_file": "/srv/runs/aug/sst2-20k.tsv"}}
    argv = shlex.split(reproduce_command(card, output_dir="runs/again"))
    assert "--data-dir" not in argv
    assert argv[argv.index("--train-file") + 1] == "sst2-20k.tsv" and argv[argv.index("--eval-file") + 1] == "validation.tsv"
    body = model_card(card)
    assert "20,000 original examples and 58,362 copies" in body
    assert ("`python -m hub augment --task sst2 --embeddings runs/teacher --train-file train.tsv --max-train-samples "
            "20000 --per-example 4 --replace-prob 0.4 --candidates 15 --seed 42 --output-file sst2-20k.tsv`") in body


def test_reproduce_a_cloze_job_trains_on_the_file_the_cloze_command_writes():
    """A QA job made its cloze questions in memory: the command trains on the file the
    data section's ``hub cloze`` command writes (it had said ``--data-dir`` with the
    grown ``--max-train-samples``, which trains on the first training questions only),
    keeps the job's evaluation file, and carries ``--intermediate-train-samples``."""
    from hub.cli import build_parser

    root = samples_dir()
    card = student_card()
    card.update(task="squad", stages=["intermediate", "prediction"], intermediate_train_samples=100)
    card["data"] = {"kind": "files", "data_dir": str(root), "train_file": str(root / "squad" / "xquad-en-train.json"),
                    "eval_file": str(root / "squad" / "dev-subset-v2.0.json"), "train_size": 780, "eval_size": 60,
                    "augmentation": {"proposer": "cloze", "originals": 100, "augmented": 680, "per_context": 1,
                                     "seed": 42, "contexts": {"training contexts": {"contexts": 11, "questions": 11},
                                                              "/srv/data/wikitext-2/valid.txt": {"contexts": 380,
                                                                                                 "questions": 669}},
                                     "source": {"kind": "files", "train_file": str(root / "squad" / "xquad-en-train.json")}}}
    argv = shlex.split(reproduce_command(card, output_dir="runs/again"))
    args = build_parser().parse_args(argv[3:])
    assert "--data-dir" not in argv and args.train_file == "CLOZE.json"
    assert args.eval_file == "hub/samples/squad/dev-subset-v2.0.json" and args.intermediate_train_samples == 100
    body = model_card(card)
    assert "--output-file CLOZE.json" in body and "`CLOZE.json` is the file the `hub cloze` command" in body
    assert "the intermediate stage trained on the first 100 training examples only" in body
