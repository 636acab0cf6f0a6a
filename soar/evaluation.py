"""Evaluation: the unbiased pass@k estimator, pass@k of a model on a problem set, greedy accuracy."""

from __future__ import annotations

from math import comb

from soar.generation import Generator
from soar.tasks import Task

PASS_KS = (1, 4, 8, 16, 32)


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k from n samples with c correct: 1 - C(n-c, k) / C(n, k) (SOAR_SPEC §7)."""
    if not 0 <= c <= n or not 1 <= k <= n:
        raise ValueError(f"need 0 <= c <= n and 1 <= k <= n, got n={n} c={c} k={k}")
    return 1.0 - comb(n - c, k) / comb(n, k)


def count_correct(generator: Generator, task: Task, problems: list[dict], n: int, seed: int | None = None,
                  temperature: float = 1.0) -> list[int]:
    """How many of n samples (temperature `temperature`) are correct, per problem."""
    groups = generator.generate([task.student_prompt(p["question"]) for p in problems], n,
                                temperature=temperature, seed=seed)
    texts = [s.text for g in groups for s in g]
    answers = [p["answer"] for p in problems for _ in range(n)]
    correct = task.grade(texts, answers)
    return [sum(correct[i * n:(i + 1) * n]) for i in range(len(problems))]


def evaluate_pass_at_k(generator: Generator, task: Task, problems: list[dict], n: int = 32,
                       ks: tuple[int, ...] = PASS_KS, seed: int | None = None) -> dict:
    """pass@k (percent, mean over problems) for each k from n samples per problem at temperature 1."""
    counts = count_correct(generator, task, problems, n, seed)
    ks = tuple(k for k in ks if k <= n)
    return {"pass_at_k": {str(k): 100.0 * sum(pass_at_k(n, c, k) for c in counts) / len(counts) for k in ks},
            "num_problems": len(problems), "samples_per_problem": n, "correct_samples": sum(counts)}


def greedy_accuracy(generator: Generator, task: Task, problems: list[dict]) -> float:
    """Fraction of problems solved by greedy decoding."""
    groups = generator.generate([task.student_prompt(p["question"]) for p in problems], 1, greedy=True)
    return sum(task.grade([g[0].text for g in groups], [p["answer"] for p in problems])) / len(problems)


def reference_logprob(model, tokenizer, task: Task, problems: list[dict], batch_size: int = 256) -> float:
    """Mean over problems of log π(reference answer + eos | student prompt): a dense, grounded score.

    The change of this score is the dense teacher reward of TOY_WORLD.md (an extension, off by default).
    """
    import torch

    from soar.generation import Sample
    from soar.rl import pack_samples, token_logprobs

    samples = [Sample(tokenizer(task.student_prompt(p["question"]))["input_ids"],
                      tokenizer(p["answer"], add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id], p["answer"])
               for p in problems]
    total = 0.0
    with torch.no_grad():
        for start in range(0, len(samples), batch_size):
            batch = {name: t.to(model.device) for name, t in
                     pack_samples(samples[start:start + batch_size], tokenizer.pad_token_id).items()}
            logp = token_logprobs(model, batch["input_ids"], batch["attention_mask"])  # (N, T-1)
            total += (logp * batch["completion_mask"]).sum().item()
    return total / len(problems)


def reward_accuracy(generator: Generator, task: Task, problems: list[dict], metric: str, samples: int,
                    seed: int) -> float:
    """Acc on the reward questions Q_R (SOAR_SPEC §5): "greedy" accuracy (the paper), mean success over
    `samples` samples at temperature 1 ("sampled"), or the reference answers' log-probability ("logprob")."""
    if metric == "logprob":
        return reference_logprob(generator.model, generator.tokenizer, task, problems)
    if metric == "greedy":
        return greedy_accuracy(generator, task, problems)
    if metric == "sampled":
        return sum(count_correct(generator, task, problems, samples, seed=seed)) / (len(problems) * samples)
    raise ValueError(f"reward_metric must be 'greedy', 'sampled' or 'logprob', not {metric!r}")
