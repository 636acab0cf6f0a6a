"""LoRA students and teacher (PEFT): a trained model is the frozen base plus a small adapter.

With LoRA, each inner-loop student is a fresh adapter on the shared baseline θ, so resetting a
student copies the adapter's initial values (a few kB on the toy model) instead of the whole model,
and keeping a trained student keeps its adapter only. Promoting a student merges its adapter into θ.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class LoraSettings:
    """Low-rank adapters (PEFT LoRA). rank 0 = full fine-tuning (the paper's setting)."""

    rank: int = 0
    """Adapter rank r; 0 trains every weight instead."""
    alpha: float = 32.0
    """LoRA scaling numerator (the update is scaled by alpha / rank)."""
    dropout: float = 0.0
    """Dropout on the adapter input (0 keeps the inner loop deterministic)."""
    target_modules: str = "all-linear"
    """Which linear layers get adapters: "all-linear" or a comma-separated list (e.g. "q_proj,v_proj")."""


def add_adapter(model, settings: LoraSettings, seed: int = 0):
    """`model` wrapped as a PEFT model with one trainable adapter (base weights frozen)."""
    try:
        from peft import LoraConfig, get_peft_model
    except ImportError as e:
        raise ImportError("LoRA (rank > 0) needs PEFT: pip install 'soar-rl[lora]'") from e

    targets = settings.target_modules if settings.target_modules == "all-linear" else \
        [m.strip() for m in settings.target_modules.split(",") if m.strip()]
    config = LoraConfig(r=settings.rank, lora_alpha=settings.alpha, lora_dropout=settings.dropout,
                        target_modules=targets, bias="none", task_type="CAUSAL_LM")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)  # the adapter's initial A matrices, the same in every process
        return get_peft_model(model, config)


def is_adapter_dir(path: str) -> bool:
    """Whether `path` is a LoRA checkpoint (a PEFT adapter directory) rather than a full model."""
    from pathlib import Path

    return (Path(path) / "adapter_config.json").exists()


def merge_adapter_dir(adapter_dir: str, out_dir: str) -> str:
    """Write a LoRA checkpoint out as a full model (its base with the adapter merged) in `out_dir`.

    For engines that serve full weights only, such as vLLM sampling from a LoRA teacher checkpoint.
    """
    try:
        from peft import AutoPeftModelForCausalLM
    except ImportError as e:
        raise ImportError(f"{adapter_dir} is a LoRA adapter, which needs PEFT: pip install 'soar-rl[lora]'") from e

    AutoPeftModelForCausalLM.from_pretrained(adapter_dir).merge_and_unload().save_pretrained(out_dir)
    return out_dir


def is_lora(model) -> bool:
    return hasattr(model, "peft_config")


def trainable_state(model) -> dict[str, torch.Tensor]:
    """A CPU copy of the trainable weights: the whole model, or only the adapter under LoRA."""
    return {name: p.detach().to("cpu", copy=True) for name, p in model.named_parameters() if p.requires_grad}


def load_trainable(model, state: dict[str, torch.Tensor]) -> None:
    """Copy `state` (from trainable_state) into the model's trainable weights, in place."""
    params = dict(model.named_parameters())
    missing = [name for name in state if name not in params]
    if missing:
        raise KeyError(f"weights not in the model: {missing[:3]}")
    with torch.no_grad():
        for name, value in state.items():
            params[name].copy_(value)


def load_weights(model, weights: dict[str, torch.Tensor]) -> None:
    """Load full weights (a state dict, or trainable_state of a fully trained model) into a plain model.

    Tied weights appear once among the parameters, so the check is that every parameter is given.
    """
    missing = {name for name, _ in model.named_parameters()} - set(weights)
    if missing:
        raise KeyError(f"weights missing: {sorted(missing)[:3]}")
    model.load_state_dict(weights, strict=False)


def merged_weights(model, adapter: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The full weights of base + `adapter` (a student's trainable_state), as a plain model's state dict.

    `model` is a PEFT model; it is left as it was (its own adapter values are restored).
    """
    own, base_before = trainable_state(model), base_weights(model)
    load_trainable(model, adapter)
    model.merge_adapter()
    try:
        state = base_weights(model)
    finally:  # restore exactly (unmerging would subtract the update again, with rounding)
        model.unmerge_adapter()
        load_base_weights(model, base_before)
        load_trainable(model, own)
    return state


def base_weights(model) -> dict[str, torch.Tensor]:
    """A CPU copy of a PEFT model's base weights, named as in the plain model."""
    return {_plain_name(name): value.detach().to("cpu", copy=True)
            for name, value in model.get_base_model().state_dict().items() if "lora_" not in name}


def load_base_weights(model, state: dict[str, torch.Tensor]) -> None:
    """Load a plain model's state dict into the frozen base weights of a PEFT model (the new θ)."""
    base = model.get_base_model()
    targets = {_plain_name(name): tensor for name, tensor in base.state_dict().items() if "lora_" not in name}
    missing = set(targets) - set(state)
    if missing:
        raise KeyError(f"base weights missing from the state: {sorted(missing)[:3]}")
    with torch.no_grad():
        for name, tensor in targets.items():
            tensor.copy_(state[name])


def _plain_name(name: str) -> str:
    """A PEFT base-model parameter name as the plain model names it (drops the `.base_layer`)."""
    return name.replace(".base_layer.", ".")
