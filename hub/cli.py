"""``python -m hub COMMAND``: finetune, distill, augment, cloze, evaluate, calibrate-null, soup, bench, profile, bench-distill, leaderboard, export, delete.

Thin: parse arguments, call the package, print results. Misspelled options fail
(argparse's abbreviation matching is off), errors print one clear line.
"""

from __future__ import annotations

import argparse
import sys

# the commands themselves (this docstring is the parser's description, so the pointer is here)
from .cli_commands import (cmd_augment, cmd_bench, cmd_bench_distill, cmd_cloze, cmd_delete, cmd_distill,
                           cmd_evaluate, cmd_export, cmd_finetune, cmd_leaderboard, cmd_profile)
from .cli_soup import cmd_calibrate_null, cmd_soup


def _data_args(p: argparse.ArgumentParser, train: bool = True, limit_train: bool = True) -> None:
    g = p.add_argument_group("data (one source)")
    g.add_argument("--data-dir", help="folder with the task's local files, e.g. ../shared/data (sst2/train.tsv, sst2/validation.tsv)")
    if train:
        g.add_argument("--train-file", help="CSV, TSV, JSONL or Parquet training file")
    g.add_argument("--eval-file", help="CSV, TSV, JSONL or Parquet evaluation file")
    g.add_argument("--dataset", help="Hub data set id (online), e.g. glue")
    g.add_argument("--dataset-config", help="Hub data set config, e.g. sst2")
    g.add_argument("--text-column")
    g.add_argument("--label-column")
    if train and limit_train:
        g.add_argument("--max-train-samples", type=int)
    g.add_argument("--max-eval-samples", type=int)


def _eval_args(p: argparse.ArgumentParser, recorded: bool = False) -> None:
    """Evaluation settings of a task kind (``hub.kinds`` ``eval_options``)."""
    where = ("used for the evaluation and recorded in the run card (evaluate, bench and the app then use it)"
             if recorded else "default: the one the model's run card records, else 0")
    p.add_argument("--null-threshold", type=float, metavar="X",
                   help="question answering: answer \"no answer\" when the null score beats the best span by more "
                        f"than X logits; {where}. evaluate reports best_f1_thresh, the best X for its eval set")


def _train_args(p: argparse.ArgumentParser, **defaults) -> None:
    from .config import TrainConfig, add_arguments

    g = p.add_argument_group("output")
    g.add_argument("--output-dir", required=True)
    g.add_argument("--resume", action="store_true", help="continue from the last checkpoint in --output-dir")
    g.add_argument("--overwrite", action="store_true", help="replace what --output-dir holds")
    g.add_argument("--push-to-hub", metavar="REPO", help="upload the finished model folder to this Hub repo (online)")
    # no --max-length: the task kind's default_max_length (QA 384), else TrainConfig's (see _train_config)
    add_arguments(p, TrainConfig, defaults={"max_length": None, **defaults})
    p.add_argument("--block-size", dest="max_length", type=int,
                   help="text tasks: tokens per block of text (the same setting as --max-length)")


def build_parser() -> argparse.ArgumentParser:
    from .config import PRECISIONS

    parser = argparse.ArgumentParser(prog="python -m hub", description=__doc__, allow_abbrev=False)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("finetune", help="train a task head on a teacher", allow_abbrev=False)
    p.add_argument("--task", required=True)
    p.add_argument("--model", required=True, help="model folder, Hub id, or minilm-l6")
    _data_args(p)
    _train_args(p, epochs=3.0, learning_rate=1e-4)
    _eval_args(p, recorded=True)

    p = sub.add_parser("distill", help="distill a teacher into a TinyBERT-style student", allow_abbrev=False)
    p.add_argument("--task", required=True)
    p.add_argument("--teacher", required=True, help="fine-tuned teacher folder or Hub id")
    p.add_argument("--student", default="teacher-layers:3",
                   help="tinybert-4l-312 | tinybert-6l-768 | teacher-layers:K | custom | checkpoint folder/Hub id")
    p.add_argument("--student-layers", type=int)
    p.add_argument("--student-hidden", type=int)
    p.add_argument("--student-heads", type=int)
    p.add_argument("--student-ffn", type=int)
    p.add_argument("--prune-ffn", type=int, metavar="N",
                   help="keep the N most important neurons of each feed-forward layer of a teacher-layers:K or "
                        "checkpoint student before distilling (structured pruning: a faster student)")
    from .config import DistillConfig, TrainConfig, add_arguments

    p.add_argument("--teacher-cache", metavar="DIR",
                   help="keep the teacher's cached logits (prediction stage) in DIR and reuse them in later runs on "
                        "the same teacher and training data (another seed, learning rate or student): the file is "
                        "named by a hash of the teacher's weights and the encoded training set")
    p.add_argument("--calibrate-null", action="store_true",
                   help="question answering: after training, set the student's null-answer threshold to the one whose "
                        "\"no answer\" decisions agree most with the teacher's on the real training questions, each "
                        "with its own paragraph and another article's (no labels; as calibrate-null --apply); the "
                        "student is scored and recorded at it")
    add_arguments(p, DistillConfig)
    p.set_defaults(stages=None)  # none given: the task kind's stages (general distillation: intermediate only)
    _data_args(p)
    _train_args(p)
    _eval_args(p, recorded=True)

    p = sub.add_parser("augment", help="TinyBERT data augmentation: more training examples from word replacements "
                       "(text classification: the sentence; extractive QA: the question)", allow_abbrev=False)
    p.add_argument("--task", required=True)
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--mlm", help="propose words with this masked LM (folder or Hub id with a trained head; "
                   "offline: the output of `finetune --task mlm`)")
    g.add_argument("--embeddings", metavar="MODEL", help="propose the nearest words in this model's input "
                   "embeddings (any model, e.g. the teacher or minilm-l6)")
    p.add_argument("--output-file", required=True, help="classification: .tsv, .csv or .jsonl, the originals, then "
                   "their copies; QA: .json (SQuAD 2.0), each question followed by its copies")
    p.add_argument("--overwrite", action="store_true")
    g = p.add_argument_group("data (one source)")
    g.add_argument("--data-dir")
    g.add_argument("--train-file")
    g.add_argument("--dataset", help="Hub data set id (online)")
    g.add_argument("--dataset-config")
    g.add_argument("--text-column")
    g.add_argument("--label-column")
    g.add_argument("--max-train-samples", type=int)
    from .augment import AugmentConfig

    d = AugmentConfig()
    g = p.add_argument_group("augmentation (TinyBERT's defaults)")
    g.add_argument("--per-example", type=int, default=d.per_example, help="copies drawn per example (N)")
    g.add_argument("--replace-prob", type=float, default=d.replace_prob, help="chance a word is replaced (p)")
    g.add_argument("--candidates", type=int, default=d.candidates, help="masked-LM proposals per word (K)")
    g.add_argument("--max-length", type=int, default=d.max_length, help="tokens the masked LM reads per word")
    g.add_argument("--batch-size", type=int, default=d.batch_size)
    g.add_argument("--seed", type=int, default=d.seed)

    p = sub.add_parser("cloze", help="extractive QA: cloze questions about unlabelled paragraphs (a transfer set "
                       "for distillation), written as SQuAD 2.0 JSON after the training questions", allow_abbrev=False)
    p.add_argument("--task", required=True)
    p.add_argument("--contexts", nargs="*", default=[], metavar="FILE", help="unlabelled text: .txt (a paragraph a "
                   "line; WikiText headings skipped), .jsonl or .csv (--text-column, default text)")
    p.add_argument("--per-context", type=int, default=2, help="cloze questions per paragraph (from different "
                   "sentences)")
    p.add_argument("--max-contexts", type=int, help="paragraphs read per --contexts file (default: all)")
    p.add_argument("--negatives", type=int, default=0, metavar="N", help="also N unanswerable copies of each "
                   "training question, paired with a paragraph of another article (the teacher's \"no answer\" "
                   "for the student to learn; default 0)")
    p.add_argument("--noise", type=float, default=0.0, metavar="P", help="the share of cloze questions (0 to 1) "
                   "written in Lewis et al.'s noisy form: the answer's clause only, the wh-word first, words dropped "
                   "(0.1) and shuffled locally (3 places) — nearer real questions than the sentence (default 0)")
    p.add_argument("--output-file", required=True, help=".json (SQuAD 2.0): the training questions, then cloze "
                   "questions about their contexts and about the --contexts paragraphs")
    p.add_argument("--overwrite", action="store_true")
    p.add_argument("--seed", type=int, default=42)
    g = p.add_argument_group("training questions to keep (optional; their contexts are asked about too)")
    g.add_argument("--data-dir")
    g.add_argument("--train-file")
    g.add_argument("--dataset", help="Hub data set id (online)")
    g.add_argument("--dataset-config")
    g.add_argument("--text-column", help="text column of .jsonl/.csv --contexts files")
    g.add_argument("--max-train-samples", type=int)

    p = sub.add_parser("evaluate", help="accuracy/F1 of a model on the eval set (JSON)", allow_abbrev=False)
    p.add_argument("--task", required=True)
    p.add_argument("--model", required=True)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--max-length", type=int, help="tokens per example (default: the model's training length)")
    _eval_args(p)
    _data_args(p, train=False)

    p = sub.add_parser("calibrate-null", help="question answering: the student null-answer threshold that agrees "
                       "most with its teacher's \"no answer\" decisions (JSON)",
                       description="Run teacher and student over the training questions (labels unused), each "
                                   "with its own paragraph and with a paragraph of another article, and print the "
                                   "student threshold whose \"no answer\" decisions agree most with the teacher's. "
                                   "Pass it as --null-threshold to evaluate, bench or distill, or record it as the "
                                   "model's own with --apply (which then scores it again on its evaluation set). "
                                   "The evaluation set is not read for the calibration.", allow_abbrev=False)
    p.add_argument("--task", required=True)
    p.add_argument("--teacher", required=True, help="the reference: it decides at its run card's threshold, else 0")
    p.add_argument("--model", required=True, help="the student whose threshold is calibrated")
    p.add_argument("--apply", action="store_true", help="record the threshold in the model's run card (evaluate, "
                   "bench and Compare then use it) and score it again on its evaluation set")
    p.add_argument("--batch-size", type=int, default=64)
    g = p.add_argument_group("calibration questions (the training questions of one source)")
    g.add_argument("--data-dir", help="the task's local layout: its training file (squad/xquad-en-train.json)")
    g.add_argument("--train-file", help="a SQuAD-format JSON file")
    g.add_argument("--dataset", help="Hub data set id (online): its train split")
    g.add_argument("--dataset-config")
    g.add_argument("--max-train-samples", type=int, default=2000,
                   help="the first N questions (default 2000: about 10 minutes on 2 CPU cores)")

    p = sub.add_parser("soup", help="average the weights of students distilled from one start (a model soup)",
                       description="Average the weights of two or more models of one shape, task and tokenizer "
                                   "trained from the same checkpoint (e.g. the same distillation with several "
                                   "seeds) into one model of the same size and speed, and evaluate it: on the "
                                   "data given, else on the evaluation data the models were scored on.",
                       allow_abbrev=False)
    p.add_argument("--task", required=True)
    p.add_argument("--model", action="append", required=True, help="a model folder (repeat: two or more)")
    p.add_argument("--output-dir", required=True)
    p.add_argument("--overwrite", action="store_true", help="replace what --output-dir holds")
    p.add_argument("--push-to-hub", metavar="REPO", help="upload the soup's folder (with its model card) to this Hub "
                   "repo (online)")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--max-length", type=int, help="tokens per example (default: the model's training length)")
    _eval_args(p)
    _data_args(p, train=False)
    g = p.add_argument_group("greedy soup (Wortsman et al.): choose the ingredients on held-out data")
    g.add_argument("--greedy", action="store_true",
                   help="rank the models by their score on --select-file, start from the best and add each next one "
                        "only when the soup's score does not fall (default: average them all)")
    g.add_argument("--select-file", help="held-out selection data in the task's file format; never the evaluation set")
    g.add_argument("--teacher", help="score the selection by agreement with this model's predictions (QA: mean F1 "
                   "of the two answers): the file's labels are not used for the score (it must still be valid data "
                   "of the task); default: the task's headline metric against the file's labels")
    g.add_argument("--max-select-samples", type=int, help="the first N examples of --select-file")

    p = sub.add_parser("bench", help="benchmark models: quality, latency, memory, size", allow_abbrev=False)
    p.add_argument("--task", required=True)
    p.add_argument("--model", action="append", required=True, help="folder, Hub id or arch:NAME (repeatable)")
    p.add_argument("--teacher", help="reference model for retention, agreement and speedup")
    p.add_argument("--quantize", choices=["int8"], help="also measure a dynamically quantized int8 variant")
    p.add_argument("--runtime", default="torch",
                   help="comma-separated runtimes to measure: torch (PyTorch eager), onnx (ONNX Runtime); default torch")
    p.add_argument("--threads", type=int, help="torch threads for every model (default: all cores)")
    p.add_argument("--min-calls", type=int, default=200)
    p.add_argument("--min-seconds", type=float, default=10.0)
    p.add_argument("--warmup", type=int, default=10)
    p.add_argument("--skip-memory", action="store_true", help="skip the memory subprocess (faster)")
    p.add_argument("--json", action="store_true", help="one JSON object per model on stdout")
    p.add_argument("--no-save", action="store_true", help="do not write rows to the leaderboard")
    _eval_args(p)
    _data_args(p, train=False)

    p = sub.add_parser("profile", help="where one batch-1 call's time goes: tokenisation, matmuls, attention, "
                       "other ops, framework overhead; with the FLOP bound", allow_abbrev=False)
    p.add_argument("--task", required=True)
    p.add_argument("--model", action="append", required=True,
                   help="folder, Hub id, arch:NAME or an exported ONNX folder (ONNX Runtime's profiler; repeatable)")
    p.add_argument("--calls", type=int, default=20, help="profiled forward passes per model (after the warm-up)")
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--threads", type=int, help="torch threads (default: all cores)")
    p.add_argument("--json", action="store_true", help="one JSON object per model on stdout")
    _data_args(p, train=False)

    p = sub.add_parser("bench-distill", help="time our distillation loop against a TinyBERT task_distill.py-style "
                       "reference loop (examples/s per stage and the ratio)", allow_abbrev=False)
    p.add_argument("--task", required=True)
    p.add_argument("--teacher", required=True, help="fine-tuned teacher folder or Hub id")
    p.add_argument("--student", default="teacher-layers:3", help="as for distill: a preset, teacher-layers:K, a folder")
    p.add_argument("--steps", type=int, default=50,
                   help="optimisation steps per stage and loop (uses the first steps x batch size training examples)")
    p.add_argument("--batch-size", type=int, default=TrainConfig().batch_size)
    p.add_argument("--threads", type=int, help="torch threads for both loops (default: all cores)")
    p.add_argument("--precision", choices=PRECISIONS, default="fp32", help="our loop's arithmetic (the reference "
                   "stays fp32, as TinyBERT's code trains): as distill's --precision")
    p.add_argument("--attention-dropout", type=float, help="our loop's student attention dropout, as distill's "
                   "(the reference keeps the model's own)")
    p.add_argument("--json", action="store_true", help="the result as one JSON object on stdout")
    _data_args(p, limit_train=False)

    p = sub.add_parser("leaderboard", help="show or export the leaderboard", allow_abbrev=False)
    p.add_argument("--task")
    p.add_argument("--hardware")
    fmt = p.add_mutually_exclusive_group()
    fmt.add_argument("--json", action="store_true")
    fmt.add_argument("--csv", action="store_true")

    p = sub.add_parser("export", help="export a model to ONNX Runtime (fp32 or int8) with a parity check",
                       allow_abbrev=False)
    p.add_argument("--model", required=True, help="a model folder (or Hub id)")
    p.add_argument("--output-dir", required=True)
    p.add_argument("--quantize", choices=["int8"], help="dynamic int8 quantization through ONNX Runtime")
    p.add_argument("--task", help="the model's task (default: from its run.json)")
    _data_args(p, train=False)

    p = sub.add_parser("delete", help="delete a trained model folder and its leaderboard rows", allow_abbrev=False)
    p.add_argument("model", help="a model folder written by finetune/distill (it has a run.json)")
    return parser


COMMANDS = {
    "finetune": cmd_finetune, "distill": cmd_distill, "augment": cmd_augment, "cloze": cmd_cloze,
    "evaluate": cmd_evaluate, "calibrate-null": cmd_calibrate_null, "soup": cmd_soup,
    "bench": cmd_bench, "profile": cmd_profile, "bench-distill": cmd_bench_distill, "leaderboard": cmd_leaderboard, "export": cmd_export, "delete": cmd_delete,
}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # our own progress lines only
    from .data import DataError
    from .export import ExportError
    from .model_card import HubUploadError
    from .models import ModelNotFoundError, UntrainedHeadError

    try:
        return COMMANDS[args.command](args)
    except (DataError, ModelNotFoundError, UntrainedHeadError, FileExistsError, ValueError, NotImplementedError,
            HubUploadError, ExportError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: the last checkpoint is kept; rerun with --resume", file=sys.stderr)
        return 130
