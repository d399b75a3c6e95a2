"""Masked-language modelling (BERT's pre-training objective): the ``mlm`` kind.

Data: plain text read by :func:`hub.textdata.read_texts` (``.txt`` one document a
line, ``.jsonl``/``.json``/``.csv`` with a text column) or a Hub data set's text
column (WikiText-2 by default), validated before any training. Documents are
tokenized, joined with [SEP] and cut into blocks of ``max_length`` tokens
([CLS] + 126 tokens + [SEP] at the default 128; :func:`hub.textdata.pack_blocks`);
``--max-train-samples``/``--max-eval-samples`` count blocks.

Masking is **static**: each block is masked once, when it is encoded, with BERT's
80/10/10 rule (:func:`hub.textdata.mask_tokens`) and a fixed seed. The
same corrupted input therefore reaches the teacher and the student in every
epoch, and the evaluation masks are the same for every model (the eval seeds
differ from the training ones), so two models' scores and predictions compare
token for token. (BERT and RoBERTa re-mask every epoch; static masks trade a
little augmentation for comparable, cacheable teacher outputs.)

Targets: ``labels`` (B, L): the original id at the chosen positions, -100
elsewhere. Adaptor: one ``(B, L, V)`` logits tensor, ``labels``, ``mask`` = the
chosen positions, and ``mask_all`` = every non-padding position (for
``--kl-positions all``: the KD term then also covers unmasked tokens).
Teacher logits are not cached in full (``cache_logits = False``): a block holds
128 × 30,522 floats (15 MiB); the teacher runs next to the student instead, unless
``--logit-cache-topk K`` keeps its K largest logits per token (the masking is
static, so the teacher's input is the same every epoch).

Metrics (our ``evaluate`` module ``mlm_local``): masked-token top-1 and top-5
accuracy and perplexity = exp(mean cross-entropy over the masked tokens) on the
eval text. Predictions (for agreement) are the top-1 ids per masked token.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import torch

from ..data import DataError, hub_texts
from ..metrics import agreement as _agreement
from ..metrics import load_metric
from ..models import tokenizer_fingerprint
from ..textdata import Packed, mask_tokens, pack_blocks, read_texts

DEFAULT_MAX_LENGTH = 128
MASK_PROBABILITY = 0.15  # BERT's share of chosen tokens
MASK_CHUNK = 64  # blocks masked per call of mask_tokens (its seed: the group's)
TRAIN_MASK_SEED = 0  # training block group c is masked with seed TRAIN_MASK_SEED + c
EVAL_MASK_SEED = 1_000_000_007  # eval block group c with EVAL_MASK_SEED + c: fixed for every model
TOP_K = 5
MAX_MASKS = 5  # masks one demo query may hold
LOGIT_BUDGET = 2**24  # positions x vocabulary per evaluation batch (64 MiB of logits): batches shrink to fit
LATENCY_TEXTS = 256  # eval documents timed by the benchmark (cycled)


# ---------------------------------------------------------------- data


@dataclass
class TextData:
    """Documents of the train and eval text; blocks are made per tokenizer and length.

    ``max_train``/``max_eval``: blocks to keep (None: all). ``source`` is the run
    card's ``data`` entry: encoding adds the corpus size to it: ``train_blocks``,
    ``train_tokens`` (text tokens in those blocks, special tokens excluded) and
    ``train_corpus_tokens`` (tokens of the whole tokenized text with its document
    separators; None when ``max_train`` stopped before its end); the same for ``eval_``.
    """

    train_texts: list[str]
    eval_texts: list[str]
    max_train: int | None = None
    max_eval: int | None = None
    source: dict = field(default_factory=dict)
    _cache: dict = field(default_factory=dict, repr=False)

    @property
    def eval_size(self) -> int | None:
        """Eval blocks once a tokenizer has packed the eval text, else None."""
        return self.source.get("eval_blocks")

    def block_ids(self, split: str, tokenizer, max_length: int) -> tuple[torch.Tensor, Packed]:
        """The ``split`` ("train" or "eval") in blocks of ``max_length`` tokens with
        the tokenizer's special tokens: (ids (N, max_length), the packing). Cached
        per tokenizer and length."""
        texts, limit = (self.train_texts, self.max_train) if split == "train" else (self.eval_texts, self.max_eval)
        if not texts:
            raise DataError(f"no {split} text")
        key = ("ids", split, tokenizer_fingerprint(tokenizer), max_length)
        if key not in self._cache:
            specials = tokenizer.num_special_tokens_to_add(pair=False)
            if max_length <= specials:
                raise ValueError(f"max_length {max_length} leaves no room for text next to {specials} special tokens")
            try:
                packed = pack_blocks(tokenizer, texts, max_length - specials, max_blocks=limit)
            except DataError as exc:
                raise DataError(f"{split} text: {exc}") from None
            prefix, suffix = special_frame(tokenizer)
            ids = torch.tensor([prefix + b + suffix for b in packed.blocks], dtype=torch.long)
            self._cache[key] = (ids, packed)
            self.source.update({f"{split}_blocks": len(packed.blocks), f"{split}_tokens": packed.n_block_tokens,
                                f"{split}_corpus_tokens": packed.n_tokens if packed.complete else None,
                                "block_size": max_length})
        return self._cache[key]

    def masked(self, split: str, tokenizer, max_length: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Statically masked blocks: (masked ids (N, L), labels (N, L)); see :func:`static_masks`."""
        key = ("masked", split, tokenizer_fingerprint(tokenizer), max_length)
        if key not in self._cache:
            ids, _ = self.block_ids(split, tokenizer, max_length)
            self._cache[key] = static_masks(ids, tokenizer, TRAIN_MASK_SEED if split == "train" else EVAL_MASK_SEED)
        return self._cache[key]


def special_frame(tokenizer) -> tuple[list[int], list[int]]:
    """The special tokens the tokenizer puts before and after one text ([CLS] and
    [SEP] for BERT, <s> and </s> for RoBERTa), found by encoding a probe text with
    and without them (transformers 5 tokenizers have no ``build_inputs_with_special_tokens``)."""
    bare = tokenizer("a", add_special_tokens=False)["input_ids"]
    full = tokenizer("a")["input_ids"]
    for start in range(len(full) - len(bare) + 1):
        if full[start : start + len(bare)] == bare:
            return full[:start], full[start + len(bare):]
    raise ValueError(f"cannot find where {type(tokenizer).__name__} puts its special tokens")


def static_masks(ids: torch.Tensor, tokenizer, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """BERT's 80/10/10 masking of each block, once, reproducibly.

    Blocks are masked in groups of ``MASK_CHUNK`` rows, group ``c`` with the seed
    ``seed + c``; the last group is padded to full size with [PAD] rows (never
    chosen) and the padding dropped, so a block's mask depends only on its index
    and content, not on how many blocks there are (a shorter eval set masks its
    blocks as the full one does). Special tokens ([CLS], [SEP] between documents,
    [PAD]) are never chosen. ids: (N, L). Returns (masked ids (N, L), labels (N, L)
    with -100 where nothing was chosen)."""
    if tokenizer.mask_token_id is None:
        raise ValueError(f"{type(tokenizer).__name__} has no mask token; masked-LM needs one")
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.all_special_ids[0]
    masked, labels = [], []
    for c, start in enumerate(range(0, ids.shape[0], MASK_CHUNK)):
        rows = ids[start : start + MASK_CHUNK]
        n = rows.shape[0]
        if n < MASK_CHUNK:
            rows = torch.cat([rows, rows.new_full((MASK_CHUNK - n, rows.shape[1]), pad)])
        m, y = mask_tokens(rows, tokenizer, MASK_PROBABILITY, seed + c)
        masked.append(m[:n])
        labels.append(y[:n])
    if not masked:
        return ids.clone(), torch.full_like(ids, -100)
    return torch.cat(masked), torch.cat(labels)


def load_text_data(task, source, max_train=None, max_eval=None, need_train=True) -> TextData:
    """Validated train/eval documents from ``source`` (a :class:`hub.data.DataSource`):
    the task's local files under ``--data-dir``, ``--train-file``/``--eval-file``,
    or a Hub data set. Shared by the ``mlm`` and ``general`` kinds."""
    source.check()
    if source.label_column:
        raise DataError(f"task {task.name!r} reads plain text: --label-column does not apply")
    for name, value in (("--max-train-samples", max_train), ("--max-eval-samples", max_eval)):
        if value is not None and int(value) < 1:
            raise DataError(f"{name} must be at least 1 block, got {value}")
    column = source.text_column or task.text_column or "text"
    if source.dataset:
        train, evals, meta = hub_texts(task, source.dataset, source.dataset_config, column, need_train)
    else:
        train_file, eval_file = source.files(task, need_train)
        train = read_texts(train_file, source.text_column) if need_train else []
        evals = read_texts(eval_file, source.text_column)
        meta = {"kind": "files", "data_dir": source.data_dir, "train_file": train_file, "eval_file": eval_file}
    meta.update(train_documents=len(train), eval_documents=len(evals))
    return TextData(train, evals, None if max_train is None else int(max_train),
                    None if max_eval is None else int(max_eval), meta)


def block_dataset(columns: dict):
    """A ``datasets.Dataset`` of blocks with ``idx`` (the block index) and ``length``."""
    from datasets import Dataset

    n = len(columns["input_ids"])
    columns = {**columns, "idx": list(range(n)), "length": [len(x) for x in columns["input_ids"]]}
    return Dataset.from_dict(columns)


def model_inputs(tokenizer, ids: torch.Tensor) -> dict:
    """Full blocks as model inputs: ``input_ids``, ``attention_mask`` (all ones) and
    ``token_type_ids`` (zeros) when the tokenizer's models take them."""
    inputs = {"input_ids": ids, "attention_mask": torch.ones_like(ids)}
    if "token_type_ids" in tokenizer.model_input_names:
        inputs["token_type_ids"] = torch.zeros_like(ids)
    return inputs


# ---------------------------------------------------------------- evaluation


def _batch_rows(max_length: int, vocab: int, batch_size: int) -> int:
    """Blocks per evaluation batch: ``batch_size``, fewer when B x L x V logits would exceed ``LOGIT_BUDGET``."""
    return max(1, min(batch_size, LOGIT_BUDGET // max(max_length * vocab, 1)))


@torch.inference_mode()
def masked_token_predictions(model, inputs: dict, labels: torch.Tensor, batch_size: int = 64, k: int = TOP_K):
    """The model on masked blocks, read at the masked positions only.

    inputs: model inputs (N, L); labels: (N, L) with -100 where nothing is masked.
    Returns (top-k ids (M, k), NLL of the original token (M,), original ids (M,)),
    M = masked tokens, in block order then position order."""
    model.eval()
    device = getattr(model, "device", torch.device("cpu"))
    rows = _batch_rows(labels.shape[1], model.config.vocab_size, batch_size)
    tops, nlls, refs = [], [], []
    for s in range(0, labels.shape[0], rows):
        batch = {k_: v[s : s + rows].to(device) for k_, v in inputs.items()}
        y = labels[s : s + rows].to(device)
        keep = y != -100  # (B, L)
        log_p = model(**batch).logits[keep].float().log_softmax(-1)  # (m, V)
        target = y[keep]
        tops.append(log_p.topk(k, dim=-1).indices.cpu())
        nlls.append(-log_p.gather(1, target[:, None])[:, 0].cpu())
        refs.append(target.cpu())
    if not refs:
        return torch.empty(0, k, dtype=torch.long), torch.empty(0), torch.empty(0, dtype=torch.long)
    return torch.cat(tops), torch.cat(nlls), torch.cat(refs)


# ---------------------------------------------------------------- the demo


class FillMask:
    """A loaded masked-LM + tokenizer answering fill-in-the-blank queries for the demo.

    A query holds one to ``MAX_MASKS`` masks, written as the tokenizer's mask token
    or as ``[MASK]``; each mask gets the ``top_k`` most likely tokens."""

    def __init__(self, model, tokenizer, task=None, max_length: int = DEFAULT_MAX_LENGTH, top_k: int = TOP_K,
                 max_masks: int = MAX_MASKS):
        if tokenizer.mask_token is None:
            raise ValueError(f"{type(tokenizer).__name__} has no mask token: not a masked-LM tokenizer")
        self.model, self.tokenizer, self.task = model.eval(), tokenizer, task
        self.max_length, self.top_k, self.max_masks = max_length, top_k, max_masks

    def _encode(self, text: str) -> dict:
        if not isinstance(text, str) or not text.strip():
            raise ValueError("empty text: write a sentence with [MASK] where a word is missing")
        mask = self.tokenizer.mask_token
        text = text.replace("[MASK]", mask)
        n = text.count(mask)
        if n == 0:
            raise ValueError(f"the text has no {mask}: put {mask} where a word should be predicted")
        if n > self.max_masks:
            raise ValueError(f"the text has {n} masks; at most {self.max_masks} are predicted at once")
        enc = self.tokenizer(text, truncation=True, max_length=self.max_length, return_tensors="pt")
        found = int((enc["input_ids"] == self.tokenizer.mask_token_id).sum())
        if found != n:
            raise ValueError(f"the text is longer than {self.max_length} tokens: "
                             f"{n - found} of its {n} masks fall after the cut; shorten it")
        return enc

    @torch.inference_mode()
    def log_probs(self, text: str) -> tuple[torch.Tensor, float]:
        """(log-probabilities (M, V) at the M masks in text order, latency in ms of
        tokenization + forward pass)."""
        t0 = time.perf_counter()
        enc = self._encode(text)
        device = getattr(self.model, "device", torch.device("cpu"))
        logits = self.model(**{k: v.to(device) for k, v in enc.items()}).logits[0]  # (L, V)
        at = (enc["input_ids"][0] == self.tokenizer.mask_token_id).nonzero()[:, 0]
        out = logits[at.to(logits.device)].float().log_softmax(-1).cpu()
        return out, (time.perf_counter() - t0) * 1000

    def _tops(self, log_p: torch.Tensor) -> list[dict]:
        masks = []
        for m, row in enumerate(log_p):
            p, ids = row.exp().topk(self.top_k)
            tokens = self.tokenizer.convert_ids_to_tokens(ids.tolist())
            masks.append({"mask": m + 1, "tokens": [{"token": t, "id": int(i), "probability": float(q)}
                                                    for t, i, q in zip(tokens, ids, p)]})
        return masks

    def predict(self, text: str) -> dict:
        """``{"masks": [{"mask": 1, "tokens": [{"token", "id", "probability"}, ...]}, ...],
        "latency_ms"}``: the ``top_k`` tokens of each mask, best first."""
        log_p, ms = self.log_probs(text)
        return {"masks": self._tops(log_p), "latency_ms": ms}


# ---------------------------------------------------------------- the kind


class MLMKind:
    name = "mlm"
    head = "MaskedLM"
    target_columns = ("labels",)
    token_level = True  # one distribution per position
    cache_logits = False  # (L, V) per block is too big to keep; the teacher runs every step
    topk_logit_cache = True  # --logit-cache-topk: the adaptor only selects positions of (B, L, V)
    default_max_length = DEFAULT_MAX_LENGTH
    kl_positions = ("targets", "all")  # --kl-positions all: the KD term on unmasked tokens too (mask_all)

    # ------------------------------------------------------------ data
    def load_data(self, task, source, max_train=None, max_eval=None, need_train=True, reference=None) -> TextData:
        """Plain-text documents (see :func:`load_text_data`); ``reference`` is not needed."""
        return load_text_data(task, source, max_train, max_eval, need_train)

    def head_kwargs(self, data) -> dict:
        return {}

    def check_teacher(self, teacher, data) -> None:
        """Only a masked-LM (a model with an MLM head) predicts masked tokens."""
        if "MaskedLM" not in type(teacher).__name__:
            raise ValueError(f"{type(teacher).__name__} is not a masked-language model")

    # ------------------------------------------------------------ training
    def encode_train(self, tokenizer, data: TextData, max_length: int):
        """Statically masked training blocks as a ``datasets.Dataset``: model inputs,
        ``labels``, ``idx`` (block index) and ``length``; records the corpus size
        (tokens, blocks) in ``data.source``."""
        masked, labels = data.masked("train", tokenizer, max_length)
        inputs = model_inputs(tokenizer, masked)
        return block_dataset({**{k: v.tolist() for k, v in inputs.items()}, "labels": labels.tolist()})

    def collator(self, tokenizer):
        from transformers import DataCollatorForTokenClassification

        return DataCollatorForTokenClassification(tokenizer)  # pads labels with -100

    def split_targets(self, batch: dict) -> dict:
        return {k: batch.pop(k) for k in self.target_columns if k in batch}

    def adapt(self, outputs, inputs: dict, targets: dict) -> dict:
        """Logits (B, L, V); labels (B, L) or None; ``mask`` (B, L): the masked
        positions (every real token without labels); ``mask_all``: every real token."""
        labels = targets.get("labels")
        mask_all = inputs["attention_mask"].bool()
        mask = (labels != -100) & mask_all if labels is not None else mask_all
        return {"logits": [outputs.logits], "labels": [labels], "mask": mask, "mask_all": mask_all}

    # ------------------------------------------------------------ evaluation
    def evaluate(self, model, tokenizer, data: TextData, max_length: int = DEFAULT_MAX_LENGTH,
                 batch_size: int = 64) -> dict:
        """``top1_accuracy``, ``top5_accuracy``, ``perplexity`` over the masked tokens
        of the eval blocks (fixed masks); ``eval_size`` (blocks), ``eval_masked_tokens``
        and ``predictions`` (top-1 id per masked token, for agreement)."""
        masked, labels = data.masked("eval", tokenizer, max_length)
        top, nll, ref = masked_token_predictions(model, model_inputs(tokenizer, masked), labels, batch_size)
        scores = load_metric("mlm_local").compute(predictions=top.tolist(), references=ref.tolist(),
                                                  nll=nll.tolist(), k=TOP_K)
        return {**scores, "eval_size": int(masked.shape[0]), "eval_masked_tokens": int(ref.numel()),
                "predictions": top[:, 0].tolist()}

    def agreement(self, predictions_a: list, predictions_b: list) -> float:
        """Share of masked eval tokens where both models' top-1 token is the same."""
        return _agreement(predictions_a, predictions_b)

    def eval_texts(self, data, task) -> list[str]:
        if data is not None and data.eval_texts:
            return list(data.eval_texts[:LATENCY_TEXTS])
        return [t for t in task.examples if isinstance(t, str)] or ["The [MASK] sat on the mat."]

    def latency_inputs(self, tokenizer, data, task, fixed_len: int | None,
                       max_length: int = DEFAULT_MAX_LENGTH) -> list[dict]:
        """Batch-1 encodings of eval documents (at most ``max_length`` tokens), or
        padded/truncated to ``fixed_len``."""
        if fixed_len is None:
            return [dict(tokenizer([t], truncation=True, max_length=max_length, return_tensors="pt"))
                    for t in self.eval_texts(data, task)]
        return [dict(tokenizer([t], truncation=True, max_length=fixed_len, padding="max_length", return_tensors="pt"))
                for t in self.eval_texts(data, task)]

    def batches(self, tokenizer, data, task, batch_size: int, max_length: int = DEFAULT_MAX_LENGTH) -> list[dict]:
        texts = sorted(self.eval_texts(data, task), key=len)
        return [dict(tokenizer(texts[i : i + batch_size], truncation=True, max_length=max_length, padding=True,
                               return_tensors="pt"))
                for i in range(0, len(texts), batch_size)]

    def tokenize_inputs(self, data, task) -> list[str]:
        return self.eval_texts(data, task)

    # ------------------------------------------------------------ demo
    def predictor(self, model, tokenizer, task, max_length: int = DEFAULT_MAX_LENGTH) -> FillMask:
        return FillMask(model, tokenizer, task, max_length)

    def compare(self, a: FillMask, b: FillMask, text: str) -> dict:
        """Both models on one query: per mask, both top-k lists side by side, their
        ``overlap`` (shared tokens / k), ``agree`` (same top-1) and ``kl`` = KL(a || b)
        in nats over the whole vocabulary; ``mean_overlap``, ``mean_kl`` and ``agree``
        (every mask's top-1 the same) over the query."""
        if a.model.config.vocab_size != b.model.config.vocab_size:
            raise ValueError(f"the models' vocabularies differ ({a.model.config.vocab_size} vs "
                             f"{b.model.config.vocab_size}): their masks cannot be compared")
        lp_a, ms_a = a.log_probs(text)
        lp_b, ms_b = b.log_probs(text)
        pa, pb = a._tops(lp_a), b._tops(lp_b)
        kl = (lp_a.exp() * (lp_a - lp_b)).sum(-1)  # (M,)
        masks = []
        for m, (ta, tb) in enumerate(zip(pa, pb)):
            ids_a, ids_b = [t["id"] for t in ta["tokens"]], [t["id"] for t in tb["tokens"]]
            masks.append({"mask": m + 1, "a": ta["tokens"], "b": tb["tokens"],
                          "overlap": len(set(ids_a) & set(ids_b)) / max(len(ids_a), 1),
                          "agree": ids_a[0] == ids_b[0], "kl": float(kl[m])})
        return {"a": {"masks": pa, "latency_ms": ms_a}, "b": {"masks": pb, "latency_ms": ms_b}, "masks": masks,
                "agree": all(m["agree"] for m in masks),
                "mean_overlap": sum(m["overlap"] for m in masks) / len(masks),
                "mean_kl": float(kl.mean())}


KIND = MLMKind()
