"""Generation behind one interface: sample n completions per prompt.

The loop, the RL code and the evaluations call `generator.generate(...)` and nothing else, so the
backend (Hugging Face `generate` here; vLLM on GPU) is chosen once, where the generator is built.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import torch


@dataclass
class Sample:
    """One completion: the token ids the policy produced (for training) and their text (for grading)."""

    prompt_ids: list[int]
    completion_ids: list[int]
    text: str


@dataclass
class GenerationConfig:
    """How completions are sampled."""

    temperature: float = 1.0
    """Sampling temperature (1.0 everywhere in the paper); ignored when greedy."""
    max_new_tokens: int = 8
    """Longest completion (paper: 512 teacher, 1024 student; the toy answers need 6 tokens)."""
    batch_size: int = 1024
    """Most sequences generated in one batch by the HF backend (vLLM schedules its own batches)."""
    backend: str = "hf"
    """Who generates: "hf" (Hugging Face `generate`, CPU or GPU) or "vllm" (a vLLM engine on the GPU that
    follows the trained model's weights; `pip install 'soar-rl[gpu]'`)."""
    gpu_memory_utilization: float = 0.3
    """vLLM: share of the GPU's memory one engine may take for its weights and KV cache. The trained
    model, its reference copy and the optimizer state share the same GPU."""
    dtype: str = "bfloat16"
    """vLLM: dtype of the engine's weights and activations ("bfloat16", "float16" or "float32")."""
    max_lora_rank: int = 0
    """vLLM: highest LoRA rank the engine serves (0: no LoRA; set it to the adapters' rank with LoRA)."""
    max_model_len: int = 4096
    """vLLM: longest prompt + completion the engine accepts (capped at the model's context length);
    it bounds the KV cache one sequence may need."""
    enforce_eager: bool = False
    """vLLM: run the model eagerly, without torch.compile and CUDA graphs: the engine starts faster and
    decodes more slowly (short runs, checks)."""


class Generator(Protocol):
    def generate(self, prompts: list[str], n: int = 1, *, greedy: bool = False,
                 temperature: float | None = None, max_new_tokens: int | None = None,
                 seed: int | None = None) -> list[list[Sample]]:
        """n completions for each prompt (greedy: n identical ones), grouped by prompt."""
        ...


class HFGenerator:
    """Hugging Face `model.generate` with the KV cache, prompts batched with left padding.

    It holds a reference to the model, so a training step on that model is seen by the next call.
    """

    def __init__(self, model, tokenizer, cfg: GenerationConfig | None = None):
        self.model, self.tokenizer = model, tokenizer
        self.cfg = cfg or GenerationConfig()
        self.tokenizer.padding_side = "left"

    @torch.no_grad()
    def generate(self, prompts, n=1, *, greedy=False, temperature=None, max_new_tokens=None, seed=None):
        cfg = self.cfg
        temperature = cfg.temperature if temperature is None else temperature
        max_new_tokens = cfg.max_new_tokens if max_new_tokens is None else max_new_tokens
        if seed is not None:
            torch.manual_seed(seed)
        reps = 1 if greedy else n
        flat = [p for p in prompts for _ in range(reps)]
        was_training = self.model.training
        self.model.eval()
        eos, pad = self.tokenizer.eos_token_id, self.tokenizer.pad_token_id
        out: list[Sample] = []
        for start in range(0, len(flat), cfg.batch_size):
            enc = self.tokenizer(flat[start:start + cfg.batch_size], return_tensors="pt", padding=True)
            ids, mask = enc["input_ids"], enc["attention_mask"]  # (B, P)
            sampling = {"do_sample": False} if greedy else {"do_sample": True, "temperature": temperature,
                                                              "top_k": 0, "top_p": 1.0}
            gen = self.model.generate(input_ids=ids.to(self.model.device), attention_mask=mask.to(self.model.device),
                                      max_new_tokens=max_new_tokens, pad_token_id=pad, eos_token_id=eos,
                                      **sampling).cpu()  # (B, P + new)
            for row in range(ids.shape[0]):
                prompt = ids[row][mask[row].bool()].tolist()
                completion = gen[row, ids.shape[1]:].tolist()
                if eos in completion:  # keep the eos: the policy chose to stop
                    completion = completion[:completion.index(eos) + 1]
                else:
                    completion = [t for t in completion if t != pad]
                text = self.tokenizer.decode(completion, skip_special_tokens=True)
                out.append(Sample(prompt, completion, text))
        self.model.train(was_training)
        grouped = [out[i * reps:(i + 1) * reps] for i in range(len(prompts))]
        return [g * n for g in grouped] if greedy else grouped


def make_generator(model, tokenizer, cfg: GenerationConfig, model_path: str | None = None) -> Generator:
    """The generator `cfg.backend` names, for `model` (the torch model being trained or evaluated).

    The vLLM backend builds its engine from `model_path` (the directory or hub id `model` was loaded
    from: config, tokenizer and, for a PEFT model, the base weights), then keeps it in step with `model`.
    """
    if cfg.backend == "hf":
        return HFGenerator(model, tokenizer, cfg)
    if cfg.backend == "vllm":
        if model_path is None:
            raise ValueError("the vllm backend needs model_path: the directory or hub id the model was loaded from")
        from soar.vllm_generation import VLLMGenerator

        return VLLMGenerator(model, tokenizer, cfg, model_path)
    raise ValueError(f"unknown generation backend {cfg.backend!r}: expected 'hf' or 'vllm'")
