"""The one settings schema and the project's constants. Imports no torch.

Training, distillation, job parameters, CLI flags and the app's fields all derive
from the typed dataclasses below: each field carries its default, its inclusive
range and its help text in ``metadata`` (``setting(...)``). We use plain
dataclasses rather than pydantic or ``HfArgumentParser`` because (a) this module
must stay importable without torch/transformers (the app and the job queue read it
at start-up), (b) ranges are first-class here (the app's sliders and the server's
checks read the same numbers) and ``HfArgumentParser`` has none, and (c) the
stdlib keeps the definition readable top to bottom, nanoGPT-style.

``validate(obj)`` checks every field of a settings object against its metadata;
``add_arguments(parser, cls)`` turns a dataclass into CLI flags;
``job_schema()`` is the job parameter table the queue, ``/estimate`` and the
app's Distill tab use.
"""

from __future__ import annotations

import math
import re
from dataclasses import MISSING, dataclass, field, fields
from typing import Any

# ---------------------------------------------------------------- constants

STAGES: tuple[str, ...] = ("intermediate", "prediction")
LOSS_TERMS: tuple[str, ...] = ("embedding", "attention", "hidden", "prediction")
DIVERGENCES: tuple[str, ...] = ("forward", "reverse", "jsd")
NEGATIVE_TARGETS: tuple[str, ...] = ("label", "teacher")  # what a made negative teaches (DistillConfig.negative_target)
KL_POSITIONS: tuple[str, ...] = ("targets", "all")  # where a token-level KD term counts (DistillConfig.kl_positions)
# What torch-free code (the jobs, the estimate) must know of the task kinds, whose modules import torch:
# the stages a kind runs at most when not both (hub/kinds/general.py takes its ``stages`` from here) and
# the kinds that cache the teacher's logits before the prediction stage (their ``cache_logits``; a test
# keeps the two equal)
KIND_STAGES: dict[str, tuple[str, ...]] = {"general": ("intermediate",)}
LOGIT_CACHING_KINDS: tuple[str, ...] = ("classification", "qa")
# extractive QA's default "no answer" threshold (hub.kinds.qa.QAKind.null_threshold; the leaderboard's views compare
# rows' thresholds with it): answer "" when null_score - best_span > this (transformers' run_qa default)
QA_NULL_THRESHOLD = 0.0
# kinds whose examples data augmentation can rewrite (hub/augment.py): one text per example (the sentence; the
# question of a QA example) and a target it keeps
AUGMENT_KINDS: tuple[str, ...] = ("classification", "qa")
# kinds whose training examples are blocks of max_length tokens (packed text): their cost scales with tokens
BLOCK_KINDS: tuple[str, ...] = ("mlm", "general", "generation")
# a job's settings where a task's own default differs from the schema's: a causal-LM teacher of 135M parameters
# distils at about 90 tokens/s on 2 CPU cores, so the app's generation default is 128 blocks of 128 tokens (16,384
# tokens, about 3 min of training) and the prediction stage only (the DistilGPT2 recipe: KD + LM loss)
TASK_JOB_DEFAULTS: dict[str, dict] = {
    "generation": {"teacher": "smollm2-135m", "train_samples": 128, "eval_samples": 16, "max_length": 128,
                   "stages": ("prediction",)},
    # the CLI's QA window (hub.kinds.qa_data.DEFAULT_MAX_LENGTH); a question costs about the same at 128 (more windows)
    "squad": {"max_length": 384},
}
# tasks whose base teacher (base_teacher) teaches as it is (a trained LM; general distillation needs no head); any
# other task's base model (minilm-l6 for sst2, squad, mlm) is fine-tuned on the task first
READY_BASE_TASKS: tuple[str, ...] = ("generation", "general")
TOPK_CACHE_MAX = 1024  # DistillConfig.logit_cache_topk: 2,000 blocks of 256 tokens at k = 1024 take 3 GB
# name -> (layers, hidden, heads, ffn): TinyBERT paper sizes
STUDENT_PRESETS: dict[str, tuple[int, int, int, int]] = {
    "tinybert-4l-312": (4, 312, 12, 1200),
    "tinybert-6l-768": (6, 768, 12, 3072),
}
# timing-only shapes (random weights), ``arch:NAME``
ARCHITECTURES: dict[str, tuple[int, int, int, int]] = {"bert-base": (12, 768, 12, 3072), **STUDENT_PRESETS}
TEACHER_LAYERS = "teacher-layers:"
# table files a user may give (upload or --train-file)
TABLE_SUFFIXES: tuple[str, ...] = (".csv", ".tsv", ".jsonl", ".json", ".parquet")
UPLOAD_SUFFIXES: tuple[str, ...] = (".csv", ".tsv", ".jsonl", ".parquet")
QA_UPLOAD_SUFFIXES: tuple[str, ...] = (".json", ".jsonl", ".parquet")  # SQuAD JSON, or Hub-style rows
# a Hub repo id: "name" or "owner/name" (transformers' own rule is looser; this is what we accept everywhere)
HUB_ID = re.compile(r"^[A-Za-z0-9][\w.\-]{0,95}(/[A-Za-z0-9][\w.\-]{0,95})?$")
RANDOM_INIT_LR = 5e-4
TRAINED_INIT_LR = 1e-4
# task kinds whose students learn best at one rate whatever their initialisation: extractive QA's teacher-layers:3
# student of the README's 10-epoch teacher kept 73.5% of its F1 at 5e-4 after 5 + 5 epochs, 70.5% at 1e-4 after
# 10 + 10 (one teacher, both stages)
KIND_LEARNING_RATES: dict[str, float] = {"qa": 5e-4}


def is_hub_id(ref: str) -> bool:
    """``bert-base-uncased`` and ``owner/name`` are Hub ids; paths and ``..`` are not."""
    return bool(ref) and bool(HUB_ID.match(ref)) and ".." not in ref


def student_is_random_init(student: str) -> bool:
    """Presets and custom shapes start from random weights; teacher layers and checkpoints do not."""
    return student in STUDENT_PRESETS or student == "custom"


def default_learning_rate(student: str, kind: str | None = None) -> float:
    """The task kind's own rate (``KIND_LEARNING_RATES``: extractive QA 5e-4), else by the
    student's initialisation: trained weights (teacher layers, a checkpoint) take 1e-4;
    randomly initialised shapes (presets, custom) learn faster with 5e-4 (SST-2, 20k
    examples, tinybert-4l-312: 73.3% accuracy at 1e-4, 79.7% at 5e-4)."""
    if kind in KIND_LEARNING_RATES:
        return KIND_LEARNING_RATES[kind]
    return RANDOM_INIT_LR if student_is_random_init(student) else TRAINED_INIT_LR


def parse_teacher_layers(student: str) -> int | None:
    """K of ``teacher-layers:K``; None for other specs; ValueError when K is not a positive integer."""
    if not student.startswith(TEACHER_LAYERS):
        return None
    k = student[len(TEACHER_LAYERS):]
    if not k.isdigit() or int(k) < 1:
        raise ValueError(f"teacher-layers needs a positive layer count, got {student!r}")
    return int(k)


# ---------------------------------------------------------------- the schema


def setting(default: Any = None, lo: float | None = None, hi: float | None = None, help: str = "",
            choices: tuple | None = None, flag: str | None = None):
    """A dataclass field with its range and help (the one place a default lives)."""
    meta = {"lo": lo, "hi": hi, "help": help, "choices": choices, "flag": flag}
    if isinstance(default, (list, dict, tuple)) and not isinstance(default, tuple):
        return field(default_factory=lambda: type(default)(default), metadata=meta)
    return field(default=default, metadata=meta)


PRECISIONS = ("fp32", "bf16")


@dataclass
class TrainConfig:
    """Optimisation settings shared by fine-tuning and each distillation stage."""

    epochs: float = setting(1.0, 0.1, 20.0, "epochs (per stage when distilling)")
    batch_size: int = setting(32, 1, 256, "examples per optimisation step")
    learning_rate: float | None = setting(None, 1e-6, 1e-2, "peak learning rate (default by model: see README)")
    warmup_ratio: float = setting(0.1, 0.0, 0.5, "share of steps of linear warm-up")
    weight_decay: float = setting(0.01, 0.0, 0.3, "AdamW weight decay")
    max_length: int = setting(128, 16, 512, "tokens per example (training and evaluation)")
    seed: int = setting(42, 0, 2**31 - 1, "random seed (data order, initialisation, masking)")
    save_steps: int = setting(200, 1, 1_000_000, "checkpoint every N steps")
    max_steps: int = setting(-1, -1, 1_000_000, "cap on optimisation steps per stage (-1: none)")
    attention_dropout: float | None = setting(
        None, 0.0, 0.9, "dropout on the attention probabilities while training (default: the model's own, BERT's "
        "0.1); 0 lets PyTorch's fused attention kernel run, several times faster a step on a CPU (the mask of a "
        "(batch x heads x length x length) dropout dominates a 384-token step); the saved model keeps its own value")
    precision: str = setting(
        "fp32", help="training arithmetic: fp32, or bf16 mixed precision (autocast: the student's and the teacher's "
        "forward passes in bf16; weights, optimiser state, the losses, cached teacher logits and the saved model "
        "in fp32; several times faster where the chip multiplies bf16 natively: CPUs with AMX or AVX512-BF16, "
        "recent GPUs)", choices=PRECISIONS)


# TrainConfig settings added after run cards were written, with the value every earlier run trained with
LATER_TRAIN_SETTINGS = {"precision": "fp32", "attention_dropout": None}


def card_train_settings(card: dict | None) -> dict:
    """A run card's recorded training settings; one written before a later setting existed
    reads as its value then (fp32, the model's own attention dropout). A card without
    training settings records none (nothing is assumed for it)."""
    train = (card or {}).get("train")
    return {**LATER_TRAIN_SETTINGS, **train} if train else {}


# the distillation settings a student's run card records beside ``train`` (hub.distill writes them)
RECIPE_KEYS = ("stages", "temperature", "alpha", "divergence", "jsd_beta", "kl_positions", "loss_weights",
               "layer_map", "intermediate_learning_rate", "intermediate_train_samples", "logit_cache_topk",
               "negative_target")


# distillation settings added after student run cards were written, with the value every earlier student had
LATER_RECIPE_SETTINGS = {"negative_target": "label"}


def card_recipe(card: dict | None) -> dict:
    """What a run card says its model was trained with: the training settings
    (:func:`card_train_settings`) and, for a student, the distillation settings (one
    written before a later setting existed reads as its value then)."""
    later = LATER_RECIPE_SETTINGS if card and card.get("kind") == "student" else {}
    return {**card_train_settings(card), **later, **{k: card[k] for k in RECIPE_KEYS if card and k in card}}


@dataclass
class DistillConfig:
    """What the distillation optimises: stages, loss terms and their weights."""

    stages: tuple = setting(STAGES, help="stages to run, in order", choices=STAGES)
    temperature: float = setting(1.0, 0.1, 20.0, "softmax temperature of the KD loss (not of sampling)")
    alpha: float = setting(0.5, 0.0, 1.0, "weight of the hard-label CE; 1 - alpha weighs the KD term")
    w_embedding: float = setting(1.0, 0.0, 100.0, "weight of the embedding-output MSE")
    w_attention: float = setting(1.0, 0.0, 100.0, "weight of the attention MSE")
    w_hidden: float = setting(1.0, 0.0, 100.0, "weight of the hidden-state MSE")
    w_prediction: float = setting(1.0, 0.0, 100.0, "weight of the prediction-layer loss")
    layer_map: tuple | None = setting(None, help="1-based teacher layer per student layer (default uniform)")
    intermediate_learning_rate: float | None = setting(None, 1e-6, 1e-2, "learning rate of the intermediate stage")
    intermediate_train_samples: int | None = setting(
        None, 1, 10**9, "the intermediate stage trains on the first N training examples only, the prediction stage "
        "on all (a transfer set's added questions, e.g. a cloze file's after its training questions, then teach "
        "the prediction layer alone); default all; classification and QA")
    divergence: str = setting("forward", help="KD divergence: forward KL, reverse KL or generalised JSD",
                              choices=DIVERGENCES)
    jsd_beta: float = setting(0.5, 0.0, 1.0, "beta of the generalised JSD")
    kl_positions: str = setting("targets", help="token-level KD on the positions with a target (an MLM's masked "
                                "tokens) or on every non-padding position (all)", choices=KL_POSITIONS)
    negative_target: str = setting(
        "label", help="extractive QA: what a made negative (a training question paired with another article's "
        "paragraph, `cloze --negatives`) teaches in the prediction stage: its gold \"no answer\" and the teacher, "
        "weighed by alpha as every question (label), or the teacher's start/end distributions alone (teacher: the "
        "student learns how often and how strongly its teacher declines, not to always decline)",
        choices=NEGATIVE_TARGETS)
    logit_cache_topk: int = setting(
        0, 0, TOPK_CACHE_MAX,
        "token-level kinds with a vocabulary per position (generation, mlm): cache the teacher's k largest logits "
        "per token once, so prediction-stage steps run no teacher (0: off, the teacher runs every step); memory "
        "tokens x k x 6 bytes (fp16 values, int32 indices); the KD term is then the KL to the teacher "
        "renormalised over its top k (its tail dropped; exact at k = vocabulary size); forward divergence only")

    def __post_init__(self):
        if isinstance(self.stages, str):
            self.stages = tuple(s.strip() for s in self.stages.split(",") if s.strip())
        self.stages = tuple(self.stages)
        unknown = [s for s in self.stages if s not in STAGES]
        if unknown or not self.stages:
            raise ValueError(f"unknown stage(s) {unknown}; choose a non-empty subset of {STAGES}")
        if isinstance(self.layer_map, str):
            self.layer_map = tuple(int(x) for x in self.layer_map.split(",") if x.strip())
        if self.layer_map is not None:
            self.layer_map = tuple(int(x) for x in self.layer_map)
        validate(self)

    @property
    def weights(self) -> dict[str, float]:
        return {t: float(getattr(self, f"w_{t}")) for t in LOSS_TERMS}


@dataclass
class JobSettings:
    """What a job of the app's queue runs: the Distill tab's fields. The training
    and distillation fields mirror TrainConfig/DistillConfig with their ranges."""

    task: str = setting("sst2", help="task name")
    teacher: str = setting("minilm-l6", help="alias, model folder or Hub id")
    student: str = setting("teacher-layers:3", help="tinybert-4l-312 | tinybert-6l-768 | teacher-layers:K | custom")
    layers: int | None = setting(None, 1, 24, "custom student: layers")
    hidden: int | None = setting(None, 16, 1024, "custom student: hidden size")
    heads: int | None = setting(None, 1, 16, "custom student: attention heads")
    ffn: int | None = setting(None, 16, 4096, "custom student: feed-forward size")
    prune_ffn: int | None = setting(None, 16, 4096, "keep this many feed-forward neurons a layer (structured "
                                    "pruning of a teacher-layers or general student; empty: keep all)")
    augment: int = setting(0, 0, 20, "TinyBERT data augmentation (text classification, QA): up to this many "
                           "copies of each training sentence or question with words replaced by the teacher's "
                           "nearest input-embedding words; 0: off. The prediction stage then learns from the teacher's soft labels only")
    cloze: int = setting(0, 0, 8, "extractive QA: add rule-made cloze questions (a year, number or name in a "
                         "sentence, asked about) on the training contexts and on WikiText-2's paragraphs, this many "
                         "a paragraph: new contexts with the teacher's answers on them, for the prediction stage "
                         "(the intermediate stage keeps to the training questions); 0: off")
    cloze_noise: float = setting(0.0, 0.0, 1.0, "extractive QA: the share of the cloze questions written in Lewis et "
                                 "al.'s noisy form (the answer's clause only, the wh-word first, words dropped and "
                                 "shuffled locally), nearer real questions than the sentence itself; 0: none")
    negatives: int = setting(0, 0, 4, "extractive QA: also this many unanswerable copies of each training question, "
                             "each paired with another article's paragraph and taught by the teacher alone (its "
                             "start/end distributions, no gold \"no answer\"): the student learns how often and how "
                             "strongly its teacher declines; needs cloze; 0: none")
    calibrate_null: bool = setting(False, help="extractive QA: after distillation, set the student's \"no answer\" "
                                   "threshold to the one that agrees most with the teacher's decisions on the training "
                                   "questions, each with its own paragraph and another article's (no labels); the "
                                   "student is scored at it")
    data: dict | None = setting(None, help="{'data_dir'} | {'train_file', 'eval_file'} | {'dataset', 'dataset_config'}")
    text_column: str | None = setting(None, help="text column of the data")
    label_column: str | None = setting(None, help="label column of the data")
    finetune_samples: int = setting(2000, 16, 100_000, "training examples to fine-tune a teacher without a head")
    train_samples: int = setting(4000, 16, 100_000, "training examples for distillation")
    eval_samples: int = setting(872, 16, 5000, "evaluation examples")
    finetune_epochs: float = setting(1.0, 0.1, 10.0, "epochs of teacher fine-tuning")
    epochs: float = setting(1.0, 0.1, 10.0, "epochs per distillation stage")
    finetune_learning_rate: float = setting(1e-4, 1e-6, 1e-2, "learning rate of teacher fine-tuning")
    learning_rate: float | None = setting(None, 1e-6, 1e-2, "distillation learning rate (default by student)")
    batch_size: int = setting(32, 1, 128, "examples per step")
    max_length: int = setting(128, 16, 512, "tokens per example")
    temperature: float = setting(1.0, 0.1, 20.0, "softmax temperature of the KD loss")
    alpha: float = setting(0.5, 0.0, 1.0, "weight of hard-label CE; 1 - alpha weighs the KD term")
    stages: tuple = setting(STAGES, help="distillation stages", choices=STAGES)
    max_steps: int = setting(-1, -1, 1_000_000, "cap on steps per stage (quick runs)")
    save_steps: int = setting(200, 1, 1_000_000, "checkpoint every N steps")
    seed: int = setting(42, 0, 2**31 - 1, "random seed")
    precision: str = setting("fp32", help="training arithmetic: fp32, or bf16 mixed precision (faster where the "
                             "chip has bf16: CPUs with AMX or AVX512-BF16, recent GPUs)", choices=PRECISIONS)
    attention_dropout: float | None = setting(None, 0.0, 0.9, "dropout on the attention probabilities while "
                                              "training (default: the model's own, 0.1 for BERT); 0 is several "
                                              "times faster a step on a CPU")
    name: str | None = setting(None, help="folder name under the models folder")
    benchmark: bool = setting(True, help="benchmark the models for the leaderboard afterwards")


def spec(cls, name: str) -> dict:
    """A field's metadata with its default: {default, lo, hi, help, choices, type}."""
    f = next(f for f in fields(cls) if f.name == name)
    default = f.default if f.default is not MISSING else f.default_factory()  # type: ignore[misc]
    return {**f.metadata, "default": default, "type": f.type}


def _base_type(annotation) -> str:
    text = annotation if isinstance(annotation, str) else getattr(annotation, "__name__", str(annotation))
    for t in ("bool", "int", "float", "str", "dict", "tuple"):
        if text.startswith(t):
            return t
    return "str"


def coerce(key: str, meta: dict, value: Any) -> Any:
    """One value checked against its field: type, finiteness, range, choices.
    Messages name the field and never echo the input."""
    kind = _base_type(meta["type"])
    if value is None or (isinstance(value, str) and not value.strip()):
        return meta["default"]
    if kind in ("int", "float"):
        if isinstance(value, bool) or not isinstance(value, (int, float, str)):
            raise ValueError(f"{key} must be a number")
        try:
            number = float(value)
        except ValueError:
            raise ValueError(f"{key} must be a number") from None
        if not math.isfinite(number):
            raise ValueError(f"{key} must be a finite number")
        if kind == "int":
            if number != int(number):
                raise ValueError(f"{key} must be a whole number")
            number = int(number)
        lo, hi = meta.get("lo"), meta.get("hi")
        if (lo is not None and number < lo) or (hi is not None and number > hi):
            raise ValueError(f"{key} must be between {lo:g} and {hi:g}")
        return number
    if kind == "bool":
        if isinstance(value, bool):
            return value
        if isinstance(value, (int, float)) and value in (0, 1):
            return bool(value)
        text = str(value).strip().lower()
        if text in ("true", "1", "yes", "on"):
            return True
        if text in ("false", "0", "no", "off"):
            return False
        raise ValueError(f"{key} must be true or false")
    if kind == "str":
        if not isinstance(value, str) or len(value) > 200:
            raise ValueError(f"{key} must be a short text")
        value = value.strip()
        if meta.get("choices") and value not in meta["choices"]:
            raise ValueError(f"{key} must be one of {', '.join(meta['choices'])}")
        return value
    if kind == "tuple":
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        if not isinstance(value, (list, tuple)):
            raise ValueError(f"{key} must be a list")
        if meta.get("choices"):
            bad = [v for v in value if v not in meta["choices"]]
            if bad or not value:
                raise ValueError(f"{key} must be a non-empty subset of {', '.join(meta['choices'])}")
        return tuple(value)
    if not isinstance(value, dict):
        raise ValueError(f"{key} must be a dict")
    return dict(value)


def validate(obj) -> None:
    """Check every field of a settings dataclass instance in place (coercing types)."""
    for f in fields(obj):
        meta = spec(type(obj), f.name)
        value = getattr(obj, f.name)
        if value is None and meta["default"] is None:
            continue
        setattr(obj, f.name, coerce(f.name, meta, value))


def from_dict(cls, values: dict, strict: bool = True):
    """``cls(**values)`` with each value coerced; unknown keys fail when ``strict``."""
    names = {f.name for f in fields(cls)}
    unknown = sorted(set(values) - names)
    if unknown and strict:
        raise ValueError(f"unknown parameter(s): {', '.join(map(str, unknown))[:200]}")
    kwargs = {k: coerce(k, spec(cls, k), v) for k, v in values.items() if k in names}
    return cls(**kwargs)


def add_arguments(parser, cls, skip: tuple[str, ...] = (), defaults: dict | None = None) -> None:
    """CLI flags for every field of ``cls`` (``--max-length``); help shows the range.
    ``defaults`` overrides a field's default for this command (e.g. 3 fine-tuning epochs)."""
    group = parser.add_argument_group(cls.__name__)
    for f in fields(cls):
        if f.name in skip:
            continue
        meta = spec(cls, f.name)
        default = (defaults or {}).get(f.name, meta["default"])
        kind = _base_type(meta["type"])
        flag = meta.get("flag") or "--" + f.name.replace("_", "-")
        rng = f" [{meta['lo']:g}, {meta['hi']:g}]" if meta.get("lo") is not None else ""
        help_text = f"{meta['help']}{rng} (default {default})"
        if kind == "bool":
            group.add_argument(flag, action="store_true", default=default, help=help_text)
        elif kind == "tuple":
            group.add_argument(flag, default=default, help=help_text + "; comma-separated")
        else:
            typ = {"int": int, "float": float}.get(kind, str)
            group.add_argument(flag, type=typ, default=default, choices=meta.get("choices"), help=help_text)


def from_args(cls, args) -> Any:
    """A settings object from an argparse namespace (the fields it has)."""
    values = {f.name: getattr(args, f.name) for f in fields(cls) if hasattr(args, f.name)}
    return from_dict(cls, values, strict=False)


def base_teacher(task: str) -> str:
    """A job's base teacher for ``task``: its own (``TASK_JOB_DEFAULTS``; generation: ``smollm2-135m``), else the
    schema's (``minilm-l6``)."""
    return TASK_JOB_DEFAULTS.get(task, {}).get("teacher", spec(JobSettings, "teacher")["default"])


def teaches_as_it_is(task: str, teacher: str) -> bool:
    """Whether ``teacher`` is ``task``'s base teacher and needs no fine-tuning first (``READY_BASE_TASKS``)."""
    return task in READY_BASE_TASKS and teacher == base_teacher(task)
