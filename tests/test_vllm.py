"""The vLLM backend: CPU tests of its pure helpers and weight bookkeeping; GPU tests against HFGenerator.

The GPU tests skip themselves without CUDA or without vLLM (`pip install 'soar-rl[gpu]'`).
"""

import importlib.util
from types import SimpleNamespace

import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM

from soar import vllm_generation
from soar.generation import GenerationConfig, HFGenerator, Sample, make_generator
from soar.rl import pack_samples, token_logprobs
from soar.tasks import toy
from soar.vllm_generation import adapter_name, request_seed, sampling_kwargs, to_samples, weights_version

HAS_VLLM = importlib.util.find_spec("vllm") is not None
gpu = pytest.mark.skipif(not (torch.cuda.is_available() and HAS_VLLM), reason="needs a CUDA GPU and vLLM")


def tiny_llama(hidden: int = 32, heads: int = 2, seed: int = 0) -> LlamaForCausalLM:
    torch.manual_seed(seed)
    tok = toy.build_tokenizer()
    return LlamaForCausalLM(LlamaConfig(
        vocab_size=len(toy.VOCAB), hidden_size=hidden, intermediate_size=2 * hidden, num_hidden_layers=2,
        num_attention_heads=heads, num_key_value_heads=heads, max_position_embeddings=64, tie_word_embeddings=True,
        bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id))


# ---------------------------------------------------------------- request building

@pytest.mark.parametrize("kwargs, expected", [
    (dict(n=4, greedy=False, temperature=None, max_new_tokens=None, seed=7),
     {"n": 4, "temperature": 1.0, "top_k": -1, "top_p": 1.0, "seed": 7, "max_tokens": 8}),
    (dict(n=4, greedy=False, temperature=0.5, max_new_tokens=24, seed=None),
     {"n": 4, "temperature": 0.5, "top_k": -1, "top_p": 1.0, "seed": None, "max_tokens": 24}),
    (dict(n=4, greedy=True, temperature=0.5, max_new_tokens=None, seed=7),  # greedy: one sample, no seed
     {"n": 1, "temperature": 0.0, "top_k": -1, "top_p": 1.0, "seed": None, "max_tokens": 8}),
])
def test_sampling_kwargs(kwargs, expected):
    assert sampling_kwargs(GenerationConfig(), **kwargs) == expected


def test_request_seeds_differ_per_prompt_and_repeat():
    assert request_seed(None, 3) is None
    seeds = [request_seed(5, i) for i in range(100)]
    assert len(set(seeds)) == 100 and seeds == [request_seed(5, i) for i in range(100)]
    assert request_seed(5, 1) != request_seed(6, 0)  # nearby calls do not share seeds


# ---------------------------------------------------------------- weight version bookkeeping

def test_version_changes_after_optimizer_step_not_after_forward():
    model = tiny_llama()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    ids = torch.tensor([[1, 5, 6, 7]])
    v0 = weights_version(model)
    with torch.no_grad():
        model(input_ids=ids)
    HFGenerator(model, toy.build_tokenizer()).generate(["0123+4567="], 2, max_new_tokens=3, seed=0)
    assert weights_version(model) == v0
    model(input_ids=ids, labels=ids).loss.backward()
    assert weights_version(model) == v0  # gradients are not weights
    opt.step()
    assert weights_version(model) > v0


def test_version_changes_after_load_state_dict():
    model, other = tiny_llama(seed=0), tiny_llama(seed=1)
    v0 = weights_version(model)
    model.load_state_dict(other.state_dict())
    assert weights_version(model) > v0


def test_adapter_names_unique_per_model_and_version():
    a, b = tiny_llama(), tiny_llama()
    names = {adapter_name(m, v) for m in (a, b) for v in (0, 1, 2)}
    assert len(names) == 6


class FakeEngine:
    """Counts weight pushes; stands in for vllm.LLM in the bookkeeping test."""

    def __init__(self):
        self.pushes = []


def test_sync_pushes_only_when_weights_changed(monkeypatch):
    monkeypatch.setattr(vllm_generation, "require_vllm", lambda: None)
    monkeypatch.setattr(vllm_generation, "push_weights", lambda llm, weights: llm.pushes.append(dict(weights)))
    model = tiny_llama()
    gen = vllm_generation.VLLMGenerator(model, toy.build_tokenizer(), GenerationConfig(backend="vllm"), "unused")
    engine = FakeEngine()
    monkeypatch.setitem(vllm_generation._ENGINES, "unused", {"llm": engine, "held": None})
    assert gen.sync_weights()  # first use: the engine has never seen the trained model
    assert not gen.sync_weights()
    with torch.no_grad():
        model(input_ids=torch.tensor([[1, 5, 6]]))
    assert not gen.sync_weights()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    model(input_ids=torch.tensor([[1, 5, 6]]), labels=torch.tensor([[1, 5, 6]])).loss.backward()
    opt.step()
    assert gen.sync_weights() and not gen.sync_weights()
    model.load_state_dict(tiny_llama(seed=3).state_dict())
    assert gen.sync_weights()
    assert len(engine.pushes) == 3
    pushed = engine.pushes[-1]
    assert set(pushed) == {name for name, _ in model.named_parameters()}  # HF names, tied weights once
    assert torch.equal(pushed["model.norm.weight"], model.model.norm.weight)

    # A second model on the same engine (the teacher, say): the two take turns, each pushing its weights.
    other = tiny_llama(seed=5)
    gen2 = vllm_generation.VLLMGenerator(other, toy.build_tokenizer(), GenerationConfig(backend="vllm"), "unused")
    assert gen2.sync_weights() and not gen2.sync_weights()
    assert gen.sync_weights() and gen2.sync_weights()
    assert len(engine.pushes) == 6


# ---------------------------------------------------------------- converting outputs

def out(ids):
    return SimpleNamespace(token_ids=ids, text="ignored: decoded again with the HF tokenizer")


def test_to_samples_groups_keeps_eos_and_decodes():
    tok = toy.build_tokenizer()
    eos, enc = tok.eos_token_id, lambda s: tok(s, add_special_tokens=False)["input_ids"]
    prompts = [tok("0000+0001=")["input_ids"], tok("0002+0003=")["input_ids"]]
    outputs = [[out(enc("00001") + [eos]), out(enc("00002"))],       # stopped; cut at max_new_tokens
               [out(enc("00005") + [eos] + enc("9")), out([eos])]]   # nothing after the eos survives
    groups = to_samples(prompts, outputs, tok, eos, reps=2, n=2, greedy=False)
    assert [[s.text for s in g] for g in groups] == [["00001", "00002"], ["00005", ""]]
    assert groups[0][0].completion_ids == enc("00001") + [eos]
    assert groups[1][0].completion_ids == enc("00005") + [eos] and groups[1][1].completion_ids == [eos]
    assert all(s.prompt_ids == prompts[i] for i, g in enumerate(groups) for s in g)


def test_to_samples_greedy_repeats_one_completion():
    tok = toy.build_tokenizer()
    eos = tok.eos_token_id
    groups = to_samples([[1, 5], [1, 6]], [[out([7, eos])], [out([8])]], tok, eos, reps=1, n=3, greedy=True)
    assert [len(g) for g in groups] == [3, 3]
    assert all(s == Sample([1, 5], [7, eos], "3") for s in groups[0])
    with pytest.raises(ValueError):
        to_samples([[1]], [[out([7])]], tok, eos, reps=2, n=2, greedy=False)


# ---------------------------------------------------------------- choosing the backend

def test_make_generator_backends():
    model, tok = tiny_llama(), toy.build_tokenizer()
    assert isinstance(make_generator(model, tok, GenerationConfig()), HFGenerator)
    with pytest.raises(ValueError, match="unknown generation backend"):
        make_generator(model, tok, GenerationConfig(backend="sglang"))
    with pytest.raises(ValueError, match="model_path"):
        make_generator(model, tok, GenerationConfig(backend="vllm"))


@pytest.mark.skipif(HAS_VLLM, reason="vLLM is installed")
def test_missing_vllm_says_how_to_install():
    with pytest.raises(ImportError, match=r"pip install 'soar-rl\[gpu\]'"):
        make_generator(tiny_llama(), toy.build_tokenizer(), GenerationConfig(backend="vllm"), "some/path")


# ---------------------------------------------------------------- GPU: vLLM against HF

PROMPTS = ["0471+3852=", "1234+4321=", "0005+0007=", "9999+0001="]


def fit(model, tok, prompts, targets, steps=300, lr=3e-3):
    """Teach `model` (in place, Adam) to complete each prompt with its target then eos, with a margin wide
    enough for a bf16 engine (test_fit_leaves_a_margin_bf16_cannot_flip)."""
    samples = [Sample(tok(p)["input_ids"], tok(t, add_special_tokens=False)["input_ids"] + [tok.eos_token_id], t)
               for p, t in zip(prompts, targets)]
    batch = {k: v.to(model.device) for k, v in pack_samples(samples, tok.pad_token_id).items()}
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    model.train()
    for _ in range(steps):
        logp = token_logprobs(model, batch["input_ids"], batch["attention_mask"])  # (N, T-1)
        loss = -(logp * batch["completion_mask"]).sum() / batch["completion_mask"].sum()
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()


def greedy_margin(model, tok, prompts, targets) -> float:
    """The smallest lead, in logits, of each target token (then eos) over the best other token."""
    leads = []
    for p, t in zip(prompts, targets):
        prompt = tok(p)["input_ids"]
        ids = prompt + tok(t, add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
        with torch.no_grad():
            logits = model(input_ids=torch.tensor([ids], device=model.device)).logits[0]
        for pos in range(len(prompt) - 1, len(ids) - 1):
            others = logits[pos].clone()
            others[ids[pos + 1]] = -float("inf")
            leads.append((logits[pos, ids[pos + 1]] - others.max()).item())
    return min(leads)


def test_fit_leaves_a_margin_bf16_cannot_flip():
    """The GPU tests compare greedy completions of a float32 model (HF) and a bf16 engine (vLLM): `fit`
    must make each target token lead by far more than bf16 rounding moves a logit. Same sequence as
    the GPU tests: a full model fitted to two target sets in turn, and a LoRA adapter."""
    model, tok = tiny_llama(hidden=128, heads=2), toy.build_tokenizer()
    margins = []
    for targets in (["04323", "05555", "00012", "10000"], ["77777", "12121", "00900", "31415"]):
        fit(model, tok, PROMPTS, targets)
        margins.append(greedy_margin(model, tok, PROMPTS, targets))
    pytest.importorskip("peft")
    from soar.lora import LoraSettings, add_adapter

    lora = add_adapter(tiny_llama(hidden=128, heads=2, seed=1), LoraSettings(rank=8, alpha=16), seed=0)
    fit(lora, tok, PROMPTS, ["04323", "05555", "00012", "10000"])
    margins.append(greedy_margin(lora, tok, PROMPTS, ["04323", "05555", "00012", "10000"]))
    print(f"greedy margins (logits): full {margins[0]:.2f}, {margins[1]:.2f}; LoRA {margins[2]:.2f}")
    assert min(margins[:2]) > 4 and margins[2] > 1.5, margins


@pytest.fixture(scope="module")
def gpu_world(tmp_path_factory):
    """A tiny Llama on the GPU (head size 64, which every vLLM attention backend supports), saved with the
    toy tokenizer, and one vLLM generator following it."""
    path = tmp_path_factory.mktemp("tiny-llama")
    model, tok = tiny_llama(hidden=128, heads=2), toy.build_tokenizer()
    model.save_pretrained(path)
    tok.save_pretrained(path)
    model = model.cuda()
    cfg = GenerationConfig(backend="vllm", gpu_memory_utilization=0.2, max_new_tokens=8)
    return model, tok, make_generator(model, tok, cfg, str(path))


@gpu
def test_vllm_greedy_matches_hf(gpu_world):
    model, tok, vgen = gpu_world
    targets = ["04323", "05555", "00012", "10000"]
    fit(model, tok, PROMPTS, targets)
    hf = HFGenerator(model, tok, GenerationConfig(max_new_tokens=8)).generate(PROMPTS, 2, greedy=True)
    vl = vgen.generate(PROMPTS, 2, greedy=True)
    assert vl == hf  # same prompt ids, same completion ids (eos kept), same texts
    assert [[s.text for s in g] for g in vl] == [[t, t] for t in targets]


@gpu
def test_vllm_follows_optimizer_steps(gpu_world):
    model, tok, vgen = gpu_world
    targets = ["77777", "12121", "00900", "31415"]
    before = [g[0].text for g in vgen.generate(PROMPTS, 1, greedy=True)]
    assert before != targets
    fit(model, tok, PROMPTS, targets)
    after = vgen.generate(PROMPTS, 1, greedy=True)
    assert after == HFGenerator(model, tok, GenerationConfig(max_new_tokens=8)).generate(PROMPTS, 1, greedy=True)
    assert [g[0].text for g in after] == targets
    sampled = vgen.generate(PROMPTS, 4, seed=0)
    assert [len(g) for g in sampled] == [4] * len(PROMPTS) and sampled == vgen.generate(PROMPTS, 4, seed=0)


@gpu
def test_vllm_serves_a_lora_adapter_as_it_trains(tmp_path):
    """A LoRA student on the GPU: the engine holds the frozen base and serves the adapter as a LoRA
    request, renewed after every optimizer step, and its greedy completions are HF's."""
    pytest.importorskip("peft")
    from soar.lora import LoraSettings, add_adapter

    model, tok = tiny_llama(hidden=128, heads=2, seed=1), toy.build_tokenizer()
    model.save_pretrained(tmp_path)
    tok.save_pretrained(tmp_path)
    lora = add_adapter(model.cuda(), LoraSettings(rank=8, alpha=16), seed=0)
    cfg = GenerationConfig(backend="vllm", gpu_memory_utilization=0.2, max_new_tokens=8, max_lora_rank=8)
    vgen = make_generator(lora, tok, cfg, str(tmp_path))
    hf = HFGenerator(lora, tok, GenerationConfig(max_new_tokens=8))
    assert vgen.generate(PROMPTS, 1, greedy=True) == hf.generate(PROMPTS, 1, greedy=True)  # B = 0: the base
    targets = ["04323", "05555", "00012", "10000"]
    fit(lora, tok, PROMPTS, targets)  # only the adapter trains
    after = vgen.generate(PROMPTS, 1, greedy=True)
    assert after == hf.generate(PROMPTS, 1, greedy=True)
    assert [g[0].text for g in after] == targets
