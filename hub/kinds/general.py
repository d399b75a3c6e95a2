"""TinyBERT general distillation: the ``general`` kind.

The intermediate stage alone — embedding-output, attention and hidden-state MSE
(``hub.distill.intermediate_terms``) — on plain text, with no task head: the
teacher and the student are bare encoders (``AutoModel``; the task's ``head`` is
empty). The teacher needs no trained head (``needs_trained_head = False``: any
encoder teaches its representations), and only the ``intermediate`` stage exists
(``stages``; ``--stages prediction`` is refused: there is no prediction layer).
The saved student is a plain encoder folder that any task distillation takes as
``--student FOLDER`` (``hub.models.build_student`` gives it a fresh task head),
as TinyBERT's general student is the start of its task distillation.

Data: the ``mlm`` kind's plain text (:func:`hub.kinds.mlm.load_text_data`),
packed into blocks of ``max_length`` tokens, unmasked. The run card's ``data``
records the corpus (``train_documents``, ``train_blocks``, ``train_tokens``,
``train_corpus_tokens``).

Evaluation: a bare encoder has no task metric, so the score is the student's
distance to its teacher on the held-out blocks, the losses it was trained on
(:meth:`GeneralKind.evaluate_pair`): embedding MSE, attention MSE and hidden MSE
per mapped layer (through the trained projection ``W_h`` when widths differ),
recorded after training (``eval.student``) and for the initial student
(``eval.student_initial``: the same measure before training). There is no
retention (no teacher score to divide by); the downstream accuracy after task
distillation is the real test.
"""

from __future__ import annotations

import torch

from ..config import KIND_STAGES
from .mlm import DEFAULT_MAX_LENGTH, TextData, block_dataset, load_text_data, model_inputs
from .mlm import KIND as _MLM

NO_DEMO = ("a general-distilled student is a bare encoder with no task head: distill it on a task "
           "(python -m hub distill --task sst2 --student FOLDER ...) to query or score it")


class GeneralKind:
    name = "general"
    head = ""  # AutoModel: a bare encoder
    target_columns = ("labels",)  # popped and dropped: the intermediate losses need none
    token_level = False
    cache_logits = False
    default_max_length = DEFAULT_MAX_LENGTH
    needs_trained_head = False  # the teacher's representations are taught, not a head's predictions
    stages = KIND_STAGES["general"]
    stages_reason = ("general distillation has no task head, so no prediction layer to match; distill the "
                     "general student on a task (--student FOLDER) for the prediction stage")

    # ------------------------------------------------------------ data
    def load_data(self, task, source, max_train=None, max_eval=None, need_train=True, reference=None) -> TextData:
        return load_text_data(task, source, max_train, max_eval, need_train)

    def head_kwargs(self, data) -> dict:
        return {}

    def check_teacher(self, teacher, data) -> None:
        """Any encoder that returns hidden states and attentions can teach."""
        if not hasattr(teacher.config, "num_hidden_layers"):
            raise ValueError(f"{type(teacher).__name__} has no transformer layers to distill")

    # ------------------------------------------------------------ training
    def encode_train(self, tokenizer, data: TextData, max_length: int):
        """Unmasked training blocks as a ``datasets.Dataset`` (model inputs, ``idx``,
        ``length``); records the corpus size in ``data.source``."""
        ids, _ = data.block_ids("train", tokenizer, max_length)
        return block_dataset({k: v.tolist() for k, v in model_inputs(tokenizer, ids).items()})

    def collator(self, tokenizer):
        from transformers import DataCollatorWithPadding

        return DataCollatorWithPadding(tokenizer)

    def split_targets(self, batch: dict) -> dict:
        for k in self.target_columns:
            batch.pop(k, None)
        return {}

    def adapt(self, outputs, inputs: dict, targets: dict) -> dict:
        raise ValueError(self.stages_reason)

    # ------------------------------------------------------------ evaluation
    @torch.inference_mode()
    def evaluate_pair(self, student, teacher, tokenizer, data: TextData, max_length: int, layer_map: list[int],
                      projection=None, batch_size: int = 32) -> dict:
        """The intermediate losses of ``student`` against ``teacher`` on the eval blocks.

        ``embedding_mse``: embedding-output MSE; ``attention_mse`` and ``hidden_mse``:
        MSE per mapped layer (the training loss sums them over the ``layer_map``),
        hidden states through ``projection`` (the trained ``W_h``) when widths differ;
        ``intermediate_loss``: embedding + attention + hidden summed over layers with
        unit weights; ``eval_size`` (blocks) and ``eval_block_tokens``. Means over blocks."""
        from ..distill import intermediate_terms
        from ..models import adaptor

        ids, _ = data.block_ids("eval", tokenizer, max_length)
        inputs = model_inputs(tokenizer, ids)
        was_training = student.training
        student.eval()
        teacher.eval()
        sums = {"embedding": 0.0, "attention": 0.0, "hidden": 0.0}
        try:
            for s in range(0, ids.shape[0], batch_size):
                batch_S = {k: v[s : s + batch_size].to(student.device) for k, v in inputs.items()}
                batch_T = {k: v.to(teacher.device) for k, v in batch_S.items()}
                out_S = adaptor(student(**batch_S, output_hidden_states=True, output_attentions=True))
                out_T = adaptor(teacher(**batch_T, output_hidden_states=True, output_attentions=True))
                out_T = {k: tuple(x.to(student.device) for x in v) if isinstance(v, tuple) else v
                         for k, v in out_T.items()}
                terms = intermediate_terms(out_S, out_T, batch_S["attention_mask"], layer_map, projection)
                rows = batch_S["input_ids"].shape[0]
                for k in sums:
                    sums[k] += float(terms[k]) * rows
        finally:
            student.train(was_training)
        n, layers = ids.shape[0], len(layer_map)
        return {"hidden_mse": sums["hidden"] / n / layers, "attention_mse": sums["attention"] / n / layers,
                "embedding_mse": sums["embedding"] / n, "intermediate_loss": sum(sums.values()) / n,
                "layer_map": list(layer_map), "eval_size": int(n), "eval_block_tokens": int(ids.numel())}

    def evaluate(self, model, tokenizer, data, max_length: int = DEFAULT_MAX_LENGTH, batch_size: int = 64) -> dict:
        raise ValueError("a general-distilled encoder has no task metric of its own: its held-out distance to "
                         "the teacher is in its run.json (eval); " + NO_DEMO)

    def agreement(self, predictions_a: list, predictions_b: list) -> float:
        raise ValueError(NO_DEMO)

    # timing a bare encoder works like the MLM's (the same plain-text inputs)
    def eval_texts(self, data, task) -> list[str]:
        return _MLM.eval_texts(data, task)

    def latency_inputs(self, tokenizer, data, task, fixed_len: int | None,
                       max_length: int = DEFAULT_MAX_LENGTH) -> list[dict]:
        return _MLM.latency_inputs(tokenizer, data, task, fixed_len, max_length)

    def batches(self, tokenizer, data, task, batch_size: int, max_length: int = DEFAULT_MAX_LENGTH) -> list[dict]:
        return _MLM.batches(tokenizer, data, task, batch_size, max_length)

    def tokenize_inputs(self, data, task) -> list[str]:
        return _MLM.tokenize_inputs(data, task)

    # ------------------------------------------------------------ demo
    def predictor(self, model, tokenizer, task, max_length: int = DEFAULT_MAX_LENGTH):
        raise ValueError(NO_DEMO)


KIND = GeneralKind()
