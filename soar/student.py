"""The student: RLOO training on a problem set, shared by the inner loop, Hard-Only, PQ and the controls."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Callable

import torch

from soar.generation import Generator
from soar.rl import RLConfig, make_optimizer, rloo_step
from soar.tasks import Task


@dataclass
class StudentConfig:
    """How a student trains (SOAR_SPEC §6, student column; defaults scaled to the toy world)."""

    batch_questions: int = 8
    """Questions per RLOO step (paper: 8)."""
    group_size: int = 16
    """Samples per question, the RLOO group (paper: 32)."""
    extra_fraction: float = 0.75
    """Share of each batch drawn from extra problems (synthetic or curriculum) when both sets are given.
    On a fail@k plateau the D_train share earns no reward, so a large extra share spends samples better."""
    rl: RLConfig = field(default_factory=RLConfig)


SCHEDULES = ("mixed", "curriculum")


def check_schedule(schedule: str) -> None:
    if schedule not in SCHEDULES:
        raise ValueError(f"unknown schedule {schedule!r}: expected one of {', '.join(SCHEDULES)}")


def extra_count(step: int, cfg: StudentConfig, schedule: str, curriculum_steps: int, num_problems: int,
                num_extra: int) -> int:
    """How many of step `step`'s batch_questions come from the extra problems (the rest: `problems`).

    "mixed": extra_fraction of every batch. "curriculum": the whole batch for the first
    `curriculum_steps` steps, then none (SOAR_SPEC §7, the paper's MATH setting). When one of the two
    sets is empty, every batch comes from the other, whatever the schedule.
    """
    check_schedule(schedule)
    if not num_extra or not num_problems:
        return cfg.batch_questions if num_extra else 0
    if schedule == "curriculum":
        return cfg.batch_questions if step < curriculum_steps else 0
    return round(cfg.batch_questions * cfg.extra_fraction)


def train_student(model, ref_model, generator: Generator, task: Task, problems: list[dict], steps: int,
                  cfg: StudentConfig, seed: int, pad_id: int, extra: list[dict] | None = None,
                  schedule: str = "mixed", curriculum_steps: int = 0,
                  on_step: Callable[[int, dict], None] | None = None) -> list[dict]:
    """Train `model` in place for `steps` RLOO steps; reward = the task's grade against each answer.

    With `extra` problems, batches combine them with `problems` as `schedule` says (`extra_count`;
    either list may be empty). Randomness (batches, samples) depends only on `seed`. `on_step(step,
    stats)` runs after every step (evaluation curves, progress). Returns the per-step stats.
    """
    rng = random.Random(seed)
    extra = extra or []
    if not problems and not extra:
        raise ValueError("train_student needs problems to train on")
    check_schedule(schedule)
    optimizer, scheduler = make_optimizer(model, cfg.rl, steps)
    history = []
    for step in range(steps):
        n_extra = extra_count(step, cfg, schedule, curriculum_steps, len(problems), len(extra))
        batch = _draw(rng, extra, n_extra) + _draw(rng, problems, cfg.batch_questions - n_extra)
        groups = generator.generate([task.student_prompt(p["question"]) for p in batch], cfg.group_size,
                                    seed=rng.randrange(2**31))
        texts = [s.text for g in groups for s in g]
        answers = [p["answer"] for p in batch for _ in range(cfg.group_size)]
        rewards = torch.tensor(task.grade(texts, answers), dtype=torch.float).view(len(batch), cfg.group_size)
        stats = rloo_step(model, ref_model, optimizer, scheduler, groups, rewards, cfg.rl, pad_id)
        stats["step"] = step
        history.append(stats)
        if on_step is not None:
            on_step(step, stats)
    return history


def _draw(rng: random.Random, problems: list[dict], count: int) -> list[dict]:
    """`count` problems, without repeats when there are enough of them."""
    if count <= 0 or not problems:
        return []
    if count <= len(problems):
        return rng.sample(problems, count)
    return [rng.choice(problems) for _ in range(count)]
