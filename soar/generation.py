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
    """Most sequences generated in one batch (memory bound on the backend)."""


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
