"""Evaluation protocols of a SOAR run (SOAR_SPEC §7) and their controls, at the fresh-student budget.

- PS: the promoted student with the best greedy accuracy on D_train, pass@k on D_test.
- PQ: a fresh student trained on PQ ∪ D_train (mixed schedule) for the Hard-Only budget.
- Base-T (baselines.base_t): as many questions from the untrained teacher as PQ holds, same protocol.
- No-selection: a fresh student trained, like PS, through as many inner loops as PS had promotions,
  each on a random untrained-teacher dataset — what PS would be without the grounded selection.

A run with no promotion has no PS, PQ or no-selection result: these return None.
"""

from __future__ import annotations

import dataclasses
import random
import time
from pathlib import Path

from soar.baselines import FreshStudentConfig, fresh_student, teacher_questions
from soar.evaluation import evaluate_pass_at_k, greedy_accuracy
from soar.generation import HFGenerator
from soar.loop import SoarConfig, inner_seed
from soar.models import frozen_copy, load_model, load_tokenizer
from soar.progress import log
from soar.runs import read_jsonl, read_problems, write_json
from soar.student import train_student
from soar.tasks import load_task


def promoted_student(run: SoarConfig, eval_cfg: FreshStudentConfig, log=log) -> dict | None:
    """PS: pick the promoted student with the best greedy accuracy on D_train; pass@k on D_test."""
    candidates = sorted((Path(run.out) / "promoted").glob("step_*"))
    if not candidates:
        return None
    task = load_task(run.task)
    tokenizer = load_tokenizer(run.model)
    train = read_problems(Path(run.hard_set) / "train.jsonl")
    scored = []
    for path in candidates:
        gen = HFGenerator(load_model(str(path)), tokenizer, eval_cfg.generation)
        scored.append((greedy_accuracy(gen, task, train), path.name, gen))
    train_acc, name, gen = max(scored, key=lambda s: s[0])  # first (earliest) on ties
    test = read_problems(Path(eval_cfg.hard_set) / "test.jsonl")
    result = evaluate_pass_at_k(gen, task, test, eval_cfg.eval_samples, seed=eval_cfg.seed)
    if eval_cfg.retention:
        result["retention"] = greedy_accuracy(gen, task, read_problems(eval_cfg.retention))
    result.update({"student": name, "train_greedy_accuracy": train_acc, "candidates": len(candidates)})
    log(f"PS ({name}): pass@{eval_cfg.eval_samples} {result['pass_at_k'][str(eval_cfg.eval_samples)]:.1f}%")
    return result


def promoted_questions(run: SoarConfig, eval_cfg: FreshStudentConfig, log=log) -> dict | None:
    """PQ: a fresh student on the promoted questions ∪ D_train, mixed, for eval_cfg.steps steps."""
    path = Path(run.out) / "promoted_questions.jsonl"
    if not path.exists():
        return None
    pq = [{"id": f"pq-{i:05d}", "question": r["question"], "answer": r["answer"]} for i, r in enumerate(read_jsonl(path))]
    return fresh_student(eval_cfg, extra=pq, log=log)


def no_selection(run: SoarConfig, eval_cfg: FreshStudentConfig, log=log) -> dict | None:
    """No-selection control: as many inner loops as PS had promotions, on random untrained-teacher datasets."""
    state_path = Path(run.out) / "state.json"
    import json

    promotions = json.loads(state_path.read_text())["promotions"] if state_path.exists() else []
    if not promotions:
        return None
    t0 = time.time()
    task = load_task(run.task)
    tokenizer = load_tokenizer(run.model)
    base = load_model(run.model)
    reference, student = frozen_copy(base), frozen_copy(base).requires_grad_(True)
    teacher_gen = HFGenerator(base, tokenizer, run.generation)
    student_gen = HFGenerator(student, tokenizer, run.generation)
    rng = random.Random(f"{eval_cfg.seed}/no-selection")
    for i, promo in enumerate(promotions):
        dataset, _, _ = teacher_questions(teacher_gen, task, run.dataset_size, rng.randrange(2**31),
                                          run.teacher_max_new_tokens, run.max_teacher_rounds)
        steps = run.inner_steps + (run.extra_inner_steps_after_promotion if i > 0 else 0)
        train_student(student, reference, student_gen, task, dataset, steps, run.student,
                      inner_seed(eval_cfg.seed, promo["step"], -1, i), tokenizer.pad_token_id)
    test = read_problems(Path(eval_cfg.hard_set) / "test.jsonl")
    result = evaluate_pass_at_k(student_gen, task, test, eval_cfg.eval_samples, seed=eval_cfg.seed)
    if eval_cfg.retention:
        result["retention"] = greedy_accuracy(student_gen, task, read_problems(eval_cfg.retention))
    result.update({"inner_loops": len(promotions), "wall_seconds": round(time.time() - t0, 1)})
    log(f"no-selection ({len(promotions)} random datasets): pass@{eval_cfg.eval_samples} "
        f"{result['pass_at_k'][str(eval_cfg.eval_samples)]:.1f}%")
    write_json(Path(eval_cfg.out) / "result.json", result)
    return result


def with_out(cfg: FreshStudentConfig, out: str | Path, **changes) -> FreshStudentConfig:
    return dataclasses.replace(cfg, out=str(out), **changes)
