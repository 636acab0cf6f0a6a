"""Fresh-student runs: Hard-Only, the oracle curriculum, and the PQ protocol (SOAR_SPEC §7-8).

Every arm trains a fresh copy of the base model with RLOO for the same number of steps and measures
pass@k on D_test along the way; arms differ only in the extra problems combined with D_train:
none (Hard-Only), true stepping stones with correct answers (oracle), promoted questions (SOAR-PQ) or
questions sampled from a teacher with its own answers (teacher sampling, protocols.py). Retention on
easy problems is reported for every arm, so that a student who learned a wrong rule is never counted
as a success.

Two scores are reported: the final evaluation ("pass_at_k"), and the paper's checkpoint rule
("pass_at_k_slope_rule"): the checkpoint where the smoothed training-reward slope has dropped below
15% of its maximum (`slope_checkpoint`), scored by the mean of the evaluations in the
`average_window` steps from it (`slope_rule_score`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from soar.evaluation import PASS_KS, evaluate_pass_at_k, greedy_accuracy
from soar.generation import GenerationConfig, Generator, make_generator
from soar.models import frozen_copy, load_model, load_tokenizer, resolve_device, seed_everything
from soar.progress import log
from soar.runs import read_problems, write_json, write_jsonl
from soar.student import StudentConfig, check_schedule, train_student
from soar.tasks import Task, configured_task


@dataclass
class FreshStudentConfig:
    """A fresh student trained with RLOO on D_train (and extra problems), evaluated on D_test."""

    model: str
    """Base model directory or hub id."""
    hard_set: str
    """Directory with train.jsonl and test.jsonl (made by `soar filter`)."""
    out: str
    """Output directory: config, curve.jsonl, result.json."""
    task: str = "toy"
    """Task of the problems: "toy" or "math"."""
    chat_template: bool = False
    """Wrap the student (and teacher) prompts in the model's chat template (instruct models; math task)."""
    device: str = "auto"
    """Where the student trains: "auto" (CUDA when available), "cpu" or "cuda"."""
    steps: int = 80
    """Student RLOO steps."""
    eval_every: int = 20
    """Evaluate pass@k on D_test every this many steps (and at the end)."""
    eval_samples: int = 32
    """Samples per D_test problem for pass@k (k up to this)."""
    retention: str | None = None
    """Easy problems (JSONL) whose greedy accuracy is reported as retention (toy: easy.jsonl)."""
    extra: str | None = None
    """Extra problems trained on with D_train: curriculum (oracle) or synthetic questions (JSONL)."""
    schedule: str = "mixed"
    """How extra problems meet D_train: "mixed" (extra_fraction of every batch; the paper's HARP and
    OlympiadBench setting) or "curriculum" (extra only for curriculum_steps steps, then D_train only;
    the paper's MATH setting)."""
    curriculum_steps: int = 64
    """Steps on the extra problems alone under the "curriculum" schedule (paper: 64)."""
    average_window: int = 200
    """Slope rule: evaluations from the checkpoint to this many steps after it are averaged (paper: 200)."""
    seed: int = 0
    """Seed of the student's sampling and batches."""
    student: StudentConfig = field(default_factory=StudentConfig)
    generation: GenerationConfig = field(default_factory=GenerationConfig)


def fresh_student(cfg: FreshStudentConfig, extra: list[dict] | None = None, log=log) -> dict:
    """Train a fresh student on D_train (+ `extra`, else cfg.extra) and return its pass@k curve."""
    check_schedule(cfg.schedule)
    t0 = time.time()
    seed_everything(cfg.seed)
    tokenizer = load_tokenizer(cfg.model)
    task = configured_task(cfg, tokenizer)
    train = read_problems(Path(cfg.hard_set) / "train.jsonl")
    test = read_problems(Path(cfg.hard_set) / "test.jsonl")
    if extra is None and cfg.extra:
        extra = read_problems(cfg.extra)
    retention = read_problems(cfg.retention) if cfg.retention else []
    model = load_model(cfg.model, resolve_device(cfg.device))
    ref = frozen_copy(model)
    generator = make_generator(model, tokenizer, cfg.generation, cfg.model)
    curve: list[dict] = []

    def evaluate(step: int) -> dict:
        point = {"step": step, **evaluate_pass_at_k(generator, task, test, cfg.eval_samples,
                                                    seed=cfg.seed * 1_000_003 + step)}
        if retention:
            point["retention"] = greedy_accuracy(generator, task, retention)
        curve.append(point)
        log(f"  step {step:4d}  pass@{cfg.eval_samples} {point['pass_at_k'][str(cfg.eval_samples)]:5.1f}%"
            + (f"  retention {point['retention']:.2f}" if retention else ""))
        return point

    evaluate(0)
    rewards: list[float] = []

    def on_step(step: int, stats: dict) -> None:
        rewards.append(stats["reward"])
        if (step + 1) % cfg.eval_every == 0 and step + 1 < cfg.steps:
            evaluate(step + 1)

    train_student(model, ref, generator, task, train, cfg.steps, cfg.student, cfg.seed,
                  tokenizer.pad_token_id, extra=extra, schedule=cfg.schedule,
                  curriculum_steps=cfg.curriculum_steps, on_step=on_step)
    final = evaluate(cfg.steps)
    checkpoint = slope_checkpoint(rewards)
    slope = slope_rule_score(curve, checkpoint, cfg.average_window)
    result = {"pass_at_k": final["pass_at_k"], "retention": final.get("retention"), "steps": cfg.steps,
              "pass_at_k_slope_rule": slope["pass_at_k"], "retention_slope_rule": slope["retention"],
              "slope_checkpoint": checkpoint, "slope_rule_steps": slope["steps"],
              "train_reward": rewards, "curve": curve, "num_extra": len(extra or []), "schedule": cfg.schedule,
              "wall_seconds": round(time.time() - t0, 1), "seed": cfg.seed}
    out = Path(cfg.out)
    write_jsonl(out / "curve.jsonl", curve)
    write_json(out / "result.json", result)
    return result


def moving_average(values: list[float], window: int) -> list[float]:
    """Centred moving average; near the ends the window is clipped to the values that exist."""
    half = window // 2
    spans = [values[max(0, i - half):i + half + 1] for i in range(len(values))]
    return [sum(span) / len(span) for span in spans]


def normalised_slope(train_rewards: list[float], window: int = 25) -> list[float]:
    """Slope per step of the smoothed training reward, divided by the raw reward's range (max − min).

    The slope is the central difference (one-sided at the ends). A flat curve (range 0) has slope 0.
    """
    n = len(train_rewards)
    smooth = moving_average(train_rewards, window)
    spread = max(train_rewards) - min(train_rewards) if n else 0.0
    if n < 2 or spread == 0:
        return [0.0] * n
    neighbours = [(max(i - 1, 0), min(i + 1, n - 1)) for i in range(n)]
    return [(smooth[hi] - smooth[lo]) / (hi - lo) / spread for lo, hi in neighbours]


def slope_checkpoint(train_rewards: list[float], window: int = 25, fraction: float = 0.15) -> int:
    """The PQ protocol's checkpoint (SOAR_SPEC §7): the step where learning has levelled off.

    `train_rewards[i]` is the mean reward of step i, earned by the model after i updates, so the
    returned step i names that model (curve step i). The curve is smoothed with a `window`-step
    centred moving average, its slope normalised by the reward range (`normalised_slope`), and the
    checkpoint is the first step after the slope's maximum (the first one, on ties) where the slope
    is below `fraction` of that maximum.

    Edge cases: a curve whose slope is never positive (flat, e.g. all rewards 0 on a fail@k plateau,
    or only falling) never rose, so there is nothing to wait for: step 0. A curve still rising at its
    end (the slope never drops below the threshold) gives its last step. A curve shorter than the
    window is still smoothed, with the window clipped at both ends; an empty one gives step 0.
    """
    slope = normalised_slope(train_rewards, window)
    if not slope or max(slope) <= 0:
        return 0
    peak = max(range(len(slope)), key=lambda i: slope[i])
    return next((i for i in range(peak + 1, len(slope)) if slope[i] < fraction * slope[peak]), len(slope) - 1)


def slope_rule_score(curve: list[dict], checkpoint: int, average_window: int) -> dict:
    """Mean pass@k (and retention) over the curve's evaluations at steps checkpoint..checkpoint+window.

    `curve`: evaluations {"step", "pass_at_k": {k: %}, optional "retention"}, in step order. When no
    evaluation falls in the window (evaluations sparser than it), the first one after the checkpoint
    is used; a fresh student's curve always ends with one at its last step. Returns {"pass_at_k",
    "retention" (None without retention), "steps" (the evaluations averaged)}.
    """
    points = [p for p in curve if checkpoint <= p["step"] <= checkpoint + average_window]
    if not points:
        points = [next(p for p in curve if p["step"] >= checkpoint)]
    ks = points[0]["pass_at_k"]
    retention = [p["retention"] for p in points if p.get("retention") is not None]
    return {"pass_at_k": {k: sum(p["pass_at_k"][k] for p in points) / len(points) for k in ks},
            "retention": sum(retention) / len(retention) if retention else None,
            "steps": [p["step"] for p in points]}


def teacher_questions(generator: Generator, task: Task, count: int, seed: int, max_new_tokens: int,
                      max_rounds: int = 10) -> tuple[list[dict], list, dict[str, int]]:
    """`count` valid (question, answer) pairs sampled from a teacher (SOAR_SPEC §4 filter).

    Samples in rounds until enough pass the task's filter and fails with a clear error after
    `max_rounds`. Returns the problems, the samples that produced them (in the same order, for the
    teacher's RLOO update) and the rejection counts by reason.
    """
    problems: list[dict] = []
    kept = []
    rejected: dict[str, int] = {}
    for round_ in range(max_rounds):
        need = count - len(problems)
        if need <= 0:
            break
        samples = generator.generate([task.teacher_prompt], need, max_new_tokens=max_new_tokens,
                                     seed=seed * 7919 + round_)[0]
        for s in samples:
            parsed = task.parse_teacher_output(s.text)
            if isinstance(parsed, str):
                rejected[parsed] = rejected.get(parsed, 0) + 1
            else:
                problems.append({"id": f"teacher-{len(problems):05d}", "question": parsed[0], "answer": parsed[1]})
                kept.append(s)
    if len(problems) < count:
        raise RuntimeError(f"the teacher produced only {len(problems)} valid problems of {count} "
                           f"in {max_rounds} rounds of sampling (rejections: {rejected})")
    return problems[:count], kept[:count], rejected


def base_t(cfg: FreshStudentConfig, num_questions: int, teacher_max_new_tokens: int = 24, log=log) -> dict:
    """Base-T: teacher sampling (protocols.teacher_sampling) from the untrained teacher, the base model."""
    from soar.protocols import teacher_sampling  # protocols builds on this module

    return teacher_sampling(cfg.model, cfg, num_questions, teacher_max_new_tokens, log=log)


__all__ = ["FreshStudentConfig", "fresh_student", "slope_checkpoint", "slope_rule_score", "teacher_questions",
           "base_t", "PASS_KS"]
