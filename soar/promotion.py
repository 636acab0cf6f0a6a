"""The promotion rule (SOAR_SPEC §5, step 5) and the teacher's dataset-level RLOO advantages, as pure functions."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Promotion:
    """The outcome of one promotion check."""

    promote: bool
    moving_average: float
    """R̄_t: mean of the last m mean rewards R̂ (after appending this step's)."""
    dataset: int | None = None
    """k*: the dataset with the highest reward R_k (None when not promoting)."""
    student: int | None = None
    """j: the repeat whose student is promoted (median reward among the r trained on X_{k*})."""


def promotion_check(rewards: list[list[float]], history: list[float], window: int, threshold: float) -> tuple[Promotion, list[float]]:
    """Decide whether to promote after one outer step.

    rewards: R_{k,j}, g lists of r student rewards. history: earlier R̂ values since the last
    promotion. Returns the decision and the new history: R̂_t appended, or emptied after a promotion
    (later rewards are measured against the stronger baseline, so old ones must not count).
    With an even r the "median" student is the lower of the two middle ones.
    """
    dataset_rewards = [sum(rs) / len(rs) for rs in rewards]  # R_k
    mean_reward = sum(dataset_rewards) / len(dataset_rewards)  # R̂_t
    history = (history + [mean_reward])[-window:]
    moving_average = sum(history) / len(history)  # R̄_t
    if moving_average <= threshold:
        return Promotion(False, moving_average), history
    best = max(range(len(dataset_rewards)), key=lambda k: dataset_rewards[k])  # k*, first on ties
    order = sorted(range(len(rewards[best])), key=lambda j: (rewards[best][j], j))
    return Promotion(True, moving_average, best, order[(len(order) - 1) // 2]), []


def dataset_advantages(dataset_rewards: list[float]) -> list[float]:
    """Teacher RLOO at dataset level: R_k minus the mean reward of the other g-1 datasets."""
    g = len(dataset_rewards)
    if g < 2:
        raise ValueError("the teacher's RLOO needs at least 2 datasets")
    total = sum(dataset_rewards)
    return [r - (total - r) / (g - 1) for r in dataset_rewards]


def learnability(success_counts: list[int], samples: int) -> float:
    """Intrinsic-T's dataset reward (SOAR_SPEC §8): mean over questions of 0 if s = 0 else 1 − s,
    where s is a question's success rate over `samples` student samples."""
    if not success_counts:
        raise ValueError("learnability of an empty dataset")
    rates = [c / samples for c in success_counts]
    return sum(0.0 if s == 0 else 1.0 - s for s in rates) / len(rates)
