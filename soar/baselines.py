"""Fresh-student runs: Hard-Only, the oracle curriculum, and the Base-T control (SOAR_SPEC §7-8).

All three train a fresh copy of the base model with RLOO for the same number of steps and measure
pass@k on D_test along the way; they differ only in the extra problems mixed into D_train:
none (Hard-Only), true stepping stones with correct answers (oracle), or questions sampled from the
untrained teacher with its own answers (Base-T). Retention on easy problems is reported for every arm,
so that a student who learned a wrong rule is never counted as a success.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from soar.evaluation import PASS_KS, evaluate_pass_at_k, greedy_accuracy
from soar.generation import GenerationConfig, HFGenerator
from soar.models import frozen_copy, load_model, load_tokenizer, seed_everything
from soar.progress import log
from soar.runs import read_problems, write_json, write_jsonl
from soar.student import StudentConfig, train_student
from soar.tasks import Task, load_task


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
    steps: int = 80
    """Student RLOO steps."""
    eval_every: int = 20
    """Evaluate pass@k on D_test every this many steps (and at the end)."""
    eval_samples: int = 32
    """Samples per D_test problem for pass@k (k up to this)."""
    retention: str | None = None
    """Easy problems (JSONL) whose greedy accuracy is reported as retention (toy: easy.jsonl)."""
    extra: str | None = None
    """Extra problems mixed into training: curriculum (oracle) or synthetic questions (JSONL)."""
    seed: int = 0
    """Seed of the student's sampling and batches."""
    student: StudentConfig = field(default_factory=StudentConfig)
    generation: GenerationConfig = field(default_factory=GenerationConfig)


def fresh_student(cfg: FreshStudentConfig, extra: list[dict] | None = None, log=log) -> dict:
    """Train a fresh student on D_train (+ `extra`, else cfg.extra) and return its pass@k curve."""
    t0 = time.time()
    seed_everything(cfg.seed)
    task = load_task(cfg.task)
    train = read_problems(Path(cfg.hard_set) / "train.jsonl")
    test = read_problems(Path(cfg.hard_set) / "test.jsonl")
    if extra is None and cfg.extra:
        extra = read_problems(cfg.extra)
    retention = read_problems(cfg.retention) if cfg.retention else []
    tokenizer = load_tokenizer(cfg.model)
    model = load_model(cfg.model)
    ref = frozen_copy(model)
    generator = HFGenerator(model, tokenizer, cfg.generation)
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
                  tokenizer.pad_token_id, extra=extra, on_step=on_step)
    final = evaluate(cfg.steps)
    result = {"pass_at_k": final["pass_at_k"], "retention": final.get("retention"), "steps": cfg.steps,
              "train_reward": rewards, "curve": curve, "num_extra": len(extra or []),
              "wall_seconds": round(time.time() - t0, 1), "seed": cfg.seed}
    out = Path(cfg.out)
    write_jsonl(out / "curve.jsonl", curve)
    write_json(out / "result.json", result)
    return result


def teacher_questions(generator: HFGenerator, task: Task, count: int, seed: int, max_new_tokens: int,
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
    """Base-T: a fresh student on D_train mixed with questions from the untrained teacher (as given)."""
    task = load_task(cfg.task)
    generator = HFGenerator(load_model(cfg.model), load_tokenizer(cfg.model), cfg.generation)
    questions, _, rejected = teacher_questions(generator, task, num_questions, cfg.seed, teacher_max_new_tokens)
    write_jsonl(Path(cfg.out) / "teacher_questions.jsonl", questions)
    result = fresh_student(cfg, extra=questions, log=log)
    result["teacher_rejections"] = rejected
    write_json(Path(cfg.out) / "result.json", result)
    return result


__all__ = ["FreshStudentConfig", "fresh_student", "teacher_questions", "base_t", "PASS_KS"]
