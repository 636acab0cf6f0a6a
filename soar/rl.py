"""RLOO: leave-one-out advantages, the policy-gradient loss with a KL penalty, and one training step.

The math is in pure functions (`rloo_advantages`, `policy_gradient_loss`, `pack_samples`) tested
without a model; `rloo_step` strings them together for a model, a frozen reference and an optimizer.
Teacher and student both train with these functions (SOAR_SPEC §6).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from soar.generation import Sample


@dataclass
class RLConfig:
    """RLOO optimisation settings (SOAR_SPEC §6; defaults are the toy world's scaled-down values)."""

    lr: float = 1e-4
    """AdamW learning rate (paper: 1e-5 at 3B scale; the toy model needs 1e-4, 1e-3 wrecks it)."""
    kl_coef: float = 0.001
    """β: weight of the KL penalty to the initial (reference) model."""
    warmup_steps: int = 0
    """Linear warmup before the cosine decay (paper: 0 in the inner loop, 20 for fresh students)."""
    max_grad_norm: float = 1.0
    """Gradient clipping by global norm."""
    weight_decay: float = 0.0
    """AdamW weight decay."""


def rloo_advantages(rewards: torch.Tensor) -> torch.Tensor:
    """Leave-one-out advantages within each group.

    rewards: (B, G), G samples per group. A_i = r_i - mean_{j != i} r_j. Equal rewards give zero.
    """
    G = rewards.shape[-1]
    if G < 2:
        raise ValueError("RLOO needs at least 2 samples per group")
    baseline = (rewards.sum(-1, keepdim=True) - rewards) / (G - 1)  # (B, G)
    return rewards - baseline


def pack_samples(samples: list[Sample], pad_id: int) -> dict[str, torch.Tensor]:
    """Right-padded prompt+completion batch with a mask selecting the completion's target tokens.

    Returns input_ids (N, T), attention_mask (N, T) and completion_mask (N, T-1), aligned with the
    next-token log-probabilities of positions 1..T-1: prompt and padding tokens are excluded.
    """
    seqs = [s.prompt_ids + s.completion_ids for s in samples]
    T = max(len(s) for s in seqs)
    input_ids = torch.full((len(seqs), T), pad_id, dtype=torch.long)
    attention_mask = torch.zeros((len(seqs), T), dtype=torch.long)
    completion_mask = torch.zeros((len(seqs), T - 1), dtype=torch.float)
    for i, (s, seq) in enumerate(zip(samples, seqs)):
        input_ids[i, :len(seq)] = torch.tensor(seq)
        attention_mask[i, :len(seq)] = 1
        # target token t+1 is predicted at position t; completion tokens start at len(prompt)
        completion_mask[i, len(s.prompt_ids) - 1:len(seq) - 1] = 1.0
    return {"input_ids": input_ids, "attention_mask": attention_mask, "completion_mask": completion_mask}


def token_logprobs(model, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """log π(x_{t+1} | x_{≤t}) for every position: (N, T-1). Right padding, so positions are 0..T-1."""
    logits = model(input_ids=input_ids, attention_mask=attention_mask).logits[:, :-1]  # (N, T-1, V)
    return torch.gather(F.log_softmax(logits.float(), -1), 2, input_ids[:, 1:, None]).squeeze(2)


def policy_gradient_loss(logprobs: torch.Tensor, ref_logprobs: torch.Tensor, advantages: torch.Tensor,
                         mask: torch.Tensor, kl_coef: float) -> tuple[torch.Tensor, dict[str, float]]:
    """REINFORCE with RLOO advantages plus a KL penalty to the reference, averaged over completion tokens.

    logprobs, ref_logprobs, mask: (N, T-1); advantages: (N,). The KL uses the non-negative k3 estimator
    exp(ref - logp) - (ref - logp) - 1 per token. Every completion token counts once ("token-mean").
    """
    delta = ref_logprobs - logprobs  # (N, T-1)
    kl = torch.exp(delta) - delta - 1.0
    per_token = -advantages[:, None] * logprobs + kl_coef * kl  # (N, T-1)
    ntok = mask.sum().clamp(min=1.0)
    loss = (per_token * mask).sum() / ntok
    return loss, {"kl": ((kl * mask).sum() / ntok).item()}


def make_optimizer(model, cfg: RLConfig, total_steps: int):
    """AdamW with linear warmup then cosine decay to zero over `total_steps`."""
    from transformers import get_cosine_schedule_with_warmup

    trainable = [p for p in model.parameters() if p.requires_grad]  # all of them, or a LoRA adapter
    opt = torch.optim.AdamW(trainable, lr=cfg.lr, weight_decay=cfg.weight_decay)
    return opt, get_cosine_schedule_with_warmup(opt, cfg.warmup_steps, max(total_steps, 1))


def rloo_step(model, ref_model, optimizer, scheduler, samples: list[list[Sample]], rewards: torch.Tensor,
              cfg: RLConfig, pad_id: int, advantages: torch.Tensor | None = None) -> dict[str, float]:
    """One RLOO update on groups of samples (B groups of G) with their rewards (B, G).

    `advantages` (B, G) overrides the per-group leave-one-out ones (the teacher's dataset-level RLOO).
    Groups where every advantage is zero contribute only the KL term; if all are zero the step still
    runs, so the schedule advances the same way whatever the rewards.
    """
    adv = rloo_advantages(rewards) if advantages is None else advantages  # (B, G)
    flat = [s for group in samples for s in group]
    device = next(model.parameters()).device
    batch = {name: t.to(device) for name, t in pack_samples(flat, pad_id).items()}
    adv = adv.to(device)
    model.train()
    logp = token_logprobs(model, batch["input_ids"], batch["attention_mask"])  # (N, T-1)
    with torch.no_grad():
        ref_logp = token_logprobs(ref_model, batch["input_ids"], batch["attention_mask"])
    loss, stats = policy_gradient_loss(logp, ref_logp, adv.reshape(-1).float(), batch["completion_mask"], cfg.kl_coef)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    grad_norm = torch.nn.utils.clip_grad_norm_([p for p in model.parameters() if p.requires_grad], cfg.max_grad_norm)
    optimizer.step()
    scheduler.step()
    return {"loss": loss.item(), "reward": rewards.float().mean().item(), "grad_norm": grad_norm.item(), **stats}
