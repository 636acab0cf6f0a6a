"""Loading models and tokenizers from a directory or hub id, copies for references, seeding."""

from __future__ import annotations

import copy
import random

import numpy as np
import torch


def load_model(path: str, device: str = "cpu", dtype: str = "float32"):
    """A causal LM from a local directory or hub id, in eval mode (`AutoModelForCausalLM`)."""
    from transformers import AutoModelForCausalLM
    from transformers.utils import logging

    logging.disable_progress_bar()  # the per-load weight bar is noise next to soar's own progress
    model = AutoModelForCausalLM.from_pretrained(path, dtype=getattr(torch, dtype))
    return model.to(device).eval()


def resolve_device(device: str) -> str:
    """"auto" -> "cuda" when a GPU is visible, else "cpu"; other names pass through."""
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


def load_tokenizer(path: str):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(path)
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token
    return tok


def frozen_copy(model):
    """A frozen deep copy (the KL reference): no gradients, eval mode."""
    ref = copy.deepcopy(model).eval()
    for p in ref.parameters():
        p.requires_grad_(False)
    return ref


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def set_threads(num_threads: int | None) -> None:
    """Torch CPU threads; None keeps torch's default (one per core)."""
    if num_threads:
        torch.set_num_threads(num_threads)
