"""Pure-function tests for RLOO, the policy-gradient loss, masks and pass@k, plus one real RLOO step."""

import itertools
from math import comb

import pytest
import torch

from soar.evaluation import pass_at_k
from soar.generation import Sample
from soar.rl import RLConfig, make_optimizer, pack_samples, policy_gradient_loss, rloo_advantages, rloo_step, token_logprobs


@pytest.mark.parametrize("rewards, expected", [
    ([1.0, 0.0, 0.0, 0.0], [1.0, -1 / 3, -1 / 3, -1 / 3]),
    ([1.0, 1.0, 0.0, 0.0], [2 / 3, 2 / 3, -2 / 3, -2 / 3]),
    ([0.5, 0.5, 0.5], [0.0, 0.0, 0.0]),
    ([0.0, 0.0], [0.0, 0.0]),
    ([0.2, -0.4], [0.6, -0.6]),
    ([3.0, 1.0, 2.0], [1.5, -1.5, 0.0]),
])
def test_rloo_advantages_hand_computed(rewards, expected):
    adv = rloo_advantages(torch.tensor([rewards]))
    assert torch.allclose(adv, torch.tensor([expected]), atol=1e-6)


def test_rloo_advantages_rowwise_and_zero_sum():
    r = torch.rand(5, 7)
    adv = rloo_advantages(r)
    assert torch.allclose(adv.sum(-1), torch.zeros(5), atol=1e-5)  # leave-one-out advantages sum to 0
    assert torch.allclose(adv[2], rloo_advantages(r[2:3])[0])


def test_rloo_needs_two_samples():
    with pytest.raises(ValueError):
        rloo_advantages(torch.tensor([[1.0]]))


@pytest.mark.parametrize("n", [1, 2, 3, 5, 8])
def test_pass_at_k_matches_enumeration(n):
    """pass@k = P(a random k-subset of the n samples contains a correct one), by enumeration."""
    for c in range(n + 1):
        outcomes = [1] * c + [0] * (n - c)
        for k in range(1, n + 1):
            subsets = list(itertools.combinations(outcomes, k))
            exact = sum(any(s) for s in subsets) / len(subsets)
            assert pass_at_k(n, c, k) == pytest.approx(exact)


def test_pass_at_k_edges():
    assert pass_at_k(32, 0, 32) == 0.0
    assert pass_at_k(32, 1, 32) == 1.0
    assert pass_at_k(32, 1, 1) == pytest.approx(1 / 32)
    assert pass_at_k(128, 3, 16) == pytest.approx(1 - comb(125, 16) / comb(128, 16))
    with pytest.raises(ValueError):
        pass_at_k(4, 5, 1)


def test_pack_samples_masks_only_completion_tokens():
    samples = [Sample([1, 5, 6], [7, 8, 2], "x"), Sample([1, 5], [9, 2], "y")]
    b = pack_samples(samples, pad_id=0)
    assert b["input_ids"].tolist() == [[1, 5, 6, 7, 8, 2], [1, 5, 9, 2, 0, 0]]
    assert b["attention_mask"].tolist() == [[1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 0, 0]]
    # targets are input_ids[:, 1:]; only completion targets count: [6|7 8 2] and [5|9 2] pads excluded
    assert b["completion_mask"].tolist() == [[0, 0, 1, 1, 1], [0, 1, 1, 0, 0]]


def test_loss_ignores_masked_tokens_and_zero_advantage():
    logp = torch.log(torch.rand(2, 5))
    mask = torch.tensor([[0, 0, 1, 1, 0], [0, 1, 1, 0, 0]], dtype=torch.float)
    adv = torch.tensor([1.0, -1.0])
    loss, _ = policy_gradient_loss(logp, logp.clone(), adv, mask, kl_coef=0.001)
    changed = logp.clone()
    changed[mask == 0] = -50.0  # anything outside the mask must not matter
    loss2, _ = policy_gradient_loss(changed, changed.clone(), adv, mask, kl_coef=0.001)
    assert loss.item() == pytest.approx(loss2.item())
    expected = (-(logp[0, 2] + logp[0, 3]) + (logp[1, 1] + logp[1, 2])) / 4
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)
    zero, stats = policy_gradient_loss(logp, logp.clone(), torch.zeros(2), mask, kl_coef=0.001)
    assert zero.item() == pytest.approx(0.0, abs=1e-7) and stats["kl"] == pytest.approx(0.0, abs=1e-7)


def test_kl_penalty_is_positive_when_policy_moves():
    logp = torch.log(torch.full((1, 3), 0.5))
    ref = torch.log(torch.full((1, 3), 0.25))
    loss, stats = policy_gradient_loss(logp, ref, torch.zeros(1), torch.ones(1, 3), kl_coef=1.0)
    assert stats["kl"] > 0 and loss.item() == pytest.approx(stats["kl"])


def _tiny_model(vocab=12):
    from transformers import LlamaConfig, LlamaForCausalLM
    torch.manual_seed(0)
    return LlamaForCausalLM(LlamaConfig(vocab_size=vocab, hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                                        num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=32))


def test_one_rloo_step_raises_probability_of_rewarded_completions():
    from soar.models import frozen_copy

    model = _tiny_model()
    ref = frozen_copy(model)
    prompt = [1, 3, 4]
    completions = [[5, 6, 2], [7, 8, 2], [9, 10, 2], [11, 3, 2]]
    groups = [[Sample(prompt, c, "") for c in completions]]
    rewards = torch.tensor([[1.0, 0.0, 0.0, 0.0]])  # only the first completion is rewarded
    batch = pack_samples(groups[0], pad_id=0)

    def seq_logp():
        with torch.no_grad():
            lp = token_logprobs(model, batch["input_ids"], batch["attention_mask"])
        return (lp * batch["completion_mask"]).sum(-1)  # (4,)

    before = seq_logp()
    cfg = RLConfig(lr=1e-2)
    opt, sched = make_optimizer(model, cfg, total_steps=10)
    rloo_step(model, ref, opt, sched, groups, rewards, cfg, pad_id=0)
    after = seq_logp()
    assert after[0] > before[0] + 1e-3            # rewarded completion became more likely
    assert (after[1:] < before[1:]).all()         # the others less likely
