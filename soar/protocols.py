"""Evaluation protocols of a SOAR run (SOAR_SPEC §7) and their controls, at the fresh-student budget.

- PS: the promoted student with the best greedy accuracy on D_train (ties: the best log-probability of
  the D_train reference answers), pass@k on D_test.
- PQ: a fresh student trained on PQ ∪ D_train for the Hard-Only budget, with the schedule
  ("mixed" or "curriculum") and the slope checkpoint rule of baselines.fresh_student.
- Teacher sampling (Grounded-T, Base-T, Intrinsic-T): questions sampled from a teacher checkpoint
  (a SOAR run's final teacher, or the base model for Base-T), then the PQ protocol on them.
- No-selection: a fresh student trained, like PS, through as many inner loops as PS had promotions,
  each on a random untrained-teacher dataset — what PS would be without the grounded selection.
- PS replayed: a fresh student trained through the promoted datasets in promotion order, with new
  seeds — whether PS's gain is carried by its questions or by which student trajectories were promoted.

A run with no promotion has no PS, PQ, no-selection or replayed result: these return None.
"""

from __future__ import annotations

import dataclasses
import json
import random
import tempfile
import time
from pathlib import Path

from soar.baselines import FreshStudentConfig, fresh_student, teacher_questions
from soar.evaluation import evaluate_pass_at_k, greedy_accuracy, reference_logprob
from soar.generation import make_generator
from soar.loop import SoarConfig, inner_seed
from soar.lora import is_adapter_dir, merge_adapter_dir
from soar.models import frozen_copy, load_model, load_tokenizer, resolve_device
from soar.progress import log
from soar.runs import read_jsonl, read_problems, write_json, write_jsonl
from soar.student import train_student
from soar.tasks import configured_task
from soar.vllm_generation import release_engines


def promoted_student(run: SoarConfig, eval_cfg: FreshStudentConfig, log=log) -> dict | None:
    """PS: pick the promoted student with the best greedy accuracy on D_train; pass@k on D_test.

    Ties on greedy accuracy are broken by the mean log-probability of the D_train reference answers
    (`reference_logprob`), then by promotion order (earliest). The paper does not say how it breaks
    ties; at toy scale they are the rule (every promoted student solves 0 D_train problems greedily),
    and taking the earliest there would ignore everything the later promotions added."""
    candidates = sorted((Path(run.out) / "promoted").glob("step_*"))
    if not candidates:
        return None
    tokenizer = load_tokenizer(run.model)
    task = configured_task(run, tokenizer)
    train = read_problems(Path(run.hard_set) / "train.jsonl")
    device = resolve_device(eval_cfg.device)
    scored = []
    for path in candidates:
        model = load_model(str(path), device)
        gen = make_generator(model, tokenizer, eval_cfg.generation, str(path))
        scored.append((greedy_accuracy(gen, task, train), reference_logprob(model, tokenizer, task, train), path))
        del model, gen
    train_acc, train_logprob, path = max(scored, key=lambda s: s[:2])  # the earliest on full ties
    gen = make_generator(load_model(str(path), device), tokenizer, eval_cfg.generation, str(path))
    test = read_problems(Path(eval_cfg.hard_set) / "test.jsonl")
    result = evaluate_pass_at_k(gen, task, test, eval_cfg.eval_samples, seed=eval_cfg.seed)
    if eval_cfg.retention:
        result["retention"] = greedy_accuracy(gen, task, read_problems(eval_cfg.retention))
    result.update({"student": path.name, "train_greedy_accuracy": train_acc, "train_reference_logprob": train_logprob,
                   "candidates": len(candidates)})
    log(f"PS ({path.name}): pass@{eval_cfg.eval_samples} {result['pass_at_k'][str(eval_cfg.eval_samples)]:.1f}%")
    return result


def promoted_questions(run: SoarConfig, eval_cfg: FreshStudentConfig, log=log) -> dict | None:
    """PQ: a fresh student on the promoted questions ∪ D_train, mixed, for eval_cfg.steps steps."""
    path = Path(run.out) / "promoted_questions.jsonl"
    if not path.exists():
        return None
    pq = [{"id": f"pq-{i:05d}", "question": r["question"], "answer": r["answer"]} for i, r in enumerate(read_jsonl(path))]
    return fresh_student(eval_cfg, extra=pq, log=log)


def teacher_model_dir(teacher: str | Path) -> str:
    """A teacher checkpoint: a SOAR run directory gives the teacher of its latest checkpoint
    (RUN/<state.json's checkpoint>/teacher); anything else is a model directory or hub id as given."""
    state = Path(teacher) / "state.json"
    if not state.exists():
        return str(teacher)
    return str(Path(teacher) / json.loads(state.read_text())["checkpoint"] / "teacher")


def teacher_sampling(teacher: str | Path, eval_cfg: FreshStudentConfig, num_questions: int = 128,
                     teacher_max_new_tokens: int = 24, max_rounds: int = 10, log=log) -> dict:
    """Teacher sampling (SOAR_SPEC §7): `num_questions` questions from a teacher, then the PQ protocol.

    `teacher`: a SOAR run directory (its latest teacher: Grounded-T, Intrinsic-T) or a model
    (eval_cfg.model: Base-T). The teacher's answers are kept as given, right or wrong; questions are
    sampled with eval_cfg.seed and written to teacher_questions.jsonl in eval_cfg.out. The tokenizer
    is the base model's (a run's checkpoints hold weights only).
    """
    tokenizer = load_tokenizer(eval_cfg.model)
    task = configured_task(eval_cfg, tokenizer)
    path = teacher_model_dir(teacher)
    with tempfile.TemporaryDirectory(prefix="soar-teacher-") as merged:
        weights = path
        if eval_cfg.generation.backend == "vllm" and is_adapter_dir(path):
            weights = merge_adapter_dir(path, merged)  # the engine serves full weights
        generator = make_generator(load_model(weights, resolve_device(eval_cfg.device)), tokenizer,
                                   eval_cfg.generation, weights)
        questions, _, rejected = teacher_questions(generator, task, num_questions, eval_cfg.seed,
                                                   teacher_max_new_tokens, max_rounds)
        del generator
        release_engines()  # a vLLM teacher's engine (none with HF): the fresh student gets the GPU
    write_jsonl(Path(eval_cfg.out) / "teacher_questions.jsonl", questions)
    log(f"teacher sampling: {num_questions} questions from {path} (rejected: {rejected})")
    result = fresh_student(eval_cfg, extra=questions, log=log)
    result.update({"teacher": path, "teacher_rejections": rejected})
    write_json(Path(eval_cfg.out) / "result.json", result)
    return result


def no_selection(run: SoarConfig, eval_cfg: FreshStudentConfig, log=log) -> dict | None:
    """No-selection control: as many inner loops as PS had promotions, on random untrained-teacher datasets."""
    return _retrace(run, eval_cfg, "no-selection", log)


def replayed_promotions(run: SoarConfig, eval_cfg: FreshStudentConfig, log=log) -> dict | None:
    """PS replayed: a fresh student through the promoted datasets, in promotion order, with new seeds.

    The same inner loops as the promoted students had (K steps on the first dataset, K + the extra
    steps on each later one), on the same questions, but nothing is selected: where PS's gain lives
    in the questions, this reaches it; where it lives in which student trajectory was promoted, this
    stays near no-selection.
    """
    return _retrace(run, eval_cfg, "replayed", log)


def _retrace(run: SoarConfig, eval_cfg: FreshStudentConfig, kind: str, log) -> dict | None:
    """A fresh student through one inner loop per promotion: on random untrained-teacher datasets
    ("no-selection") or on the promoted datasets themselves ("replayed")."""
    state_path = Path(run.out) / "state.json"
    promotions = json.loads(state_path.read_text())["promotions"] if state_path.exists() else []
    if not promotions:
        return None
    t0 = time.time()
    tokenizer = load_tokenizer(run.model)
    task = configured_task(run, tokenizer)
    base = load_model(run.model, resolve_device(eval_cfg.device))
    reference, student = frozen_copy(base), frozen_copy(base).requires_grad_(True)
    student_gen = make_generator(student, tokenizer, run.generation, run.model)
    if kind == "replayed":
        promoted = read_jsonl(Path(run.out) / "promoted_questions.jsonl")
        datasets = [[row for row in promoted if (row["step"], row["dataset"]) == (p["step"], p["dataset"])]
                    for p in promotions]
    else:
        teacher_gen = make_generator(base, tokenizer, run.generation, run.model)
        rng = random.Random(f"{eval_cfg.seed}/no-selection")
    for i, promo in enumerate(promotions):
        if kind == "replayed":
            dataset = datasets[i]
        else:
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
    log(f"{kind} ({len(promotions)} {'promoted' if kind == 'replayed' else 'random'} datasets): "
        f"pass@{eval_cfg.eval_samples} {result['pass_at_k'][str(eval_cfg.eval_samples)]:.1f}%")
    write_json(Path(eval_cfg.out) / "result.json", result)
    return result


def with_out(cfg: FreshStudentConfig, out: str | Path, **changes) -> FreshStudentConfig:
    return dataclasses.replace(cfg, out=str(out), **changes)
