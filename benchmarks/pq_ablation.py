"""What in a SOAR run's promoted questions helps? PQ as promoted, with true answers, correct only, stones only.

    python benchmarks/pq_ablation.py RUN_DIR [RUN_DIR ...] [--seeds 5] [--steps 80] [--out runs/pq_ablation]
                                     [--schedule mixed|curriculum]
                                     [--versions promoted true_answers correct stones oracle_same_size
                                                 base_t base_t_true_answers teacher_majority
                                                 base_t_teacher_majority]

For toy-world SOAR runs: pools the promoted questions of the given runs and trains fresh students
(the PQ protocol: D_train plus the extra problems, the run's hard set, `--steps` RLOO steps) on
versions of the pool:

- promoted: every promoted question with the teacher's answer (SOAR-PQ itself);
- true_answers: every promoted question with its correct sum (what the teacher's wrong answers cost);
- correct: only the questions whose answer is correct;
- stones: only the useful stepping stones (correct, 1-2 carries);
- oracle_same_size: as many problems as the pool, drawn from the world's oracle curriculum (correct,
  0-2 carries; a new draw per seed): what the teacher's choice of questions costs against the oracle's;
- base_t: as many questions from the untrained teacher (the base model), with its answers, sampled
  with the seed (Base-T's questions in `benchmarks/teacher_signal.py`);
- base_t_true_answers: the same questions with their correct sums: with true_answers, whether the
  grounded selection picks better questions or only better answers;
- teacher_majority, base_t_teacher_majority: PQ's or Base-T's questions, each answered by the most
  common of 16 answers the untrained teacher writes after it (self-consistency, no truth used): how
  much of the true sums' gain a relabelling the toy world does not need to know reaches.

Prints the pool's correct/all counts by number of carries, then per version its problems and correct
answers, pass@32 on D_test (mean ± SD over seeds) and retention. Finished cells are read back, so
a killed call resumes. With one run and the same `--steps`, the promoted version trains exactly the
fresh students of `benchmarks/teacher_signal.py`'s soar_pq cells (with the same `--schedule`:
the extra problems mixed into every batch, or alone for 64 steps and then D_train alone, the paper's
MATH setting). Prints figures, asserts nothing.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import random
from collections import Counter
from pathlib import Path

from soar.baselines import FreshStudentConfig, fresh_student, teacher_questions
from soar.compare import seed_summary
from soar.generation import GenerationConfig, make_generator
from soar.models import load_model, load_tokenizer, set_threads
from soar.runs import read_jsonl, read_problems
from soar.student import SCHEDULES
from soar.tasks import load_task
from soar.tasks.toy import TEACH, problem_truth, true_answer

VERSIONS = ("promoted", "true_answers", "correct", "stones", "oracle_same_size", "base_t", "base_t_true_answers",
            "teacher_majority", "base_t_teacher_majority")


def with_true_answers(problems: list[dict]) -> list[dict]:
    return [{**p, "answer": true_answer(p["question"])} for p in problems]


def teacher_majority(problems: list[dict], generator, samples: int = 16) -> list[dict]:
    """Each problem answered by the most common answer the teacher writes after its question."""
    outputs = generator.generate([TEACH + p["question"] for p in problems], samples, max_new_tokens=8, seed=0)
    return [{**p, "answer": Counter(s.text.strip() for s in out).most_common(1)[0][0]}
            for p, out in zip(problems, outputs)]


def extra_problems(version: str, pool: list[dict], model: str, seed: int) -> list[dict]:
    """The extra problems of one version for one evaluation seed."""
    if version == "promoted":
        return pool
    if version == "true_answers":
        return with_true_answers(pool)
    if version in ("correct", "stones"):
        key = "correct" if version == "correct" else "stepping_stone"
        return [p for p in pool if problem_truth(p["question"], p["answer"])[key]]
    if version == "oracle_same_size":
        oracle = read_problems(Path(model) / "oracle_curriculum.jsonl")
        return random.Random(f"oracle_same_size/{len(pool)}/{seed}").sample(oracle, len(pool))
    generator = make_generator(load_model(model), load_tokenizer(model), GenerationConfig(), model)
    if version == "teacher_majority":
        return teacher_majority(pool, generator)
    # Base-T's questions, sampled as protocols.teacher_sampling samples them
    questions = teacher_questions(generator, load_task("toy"), len(pool), seed, max_new_tokens=24)[0]
    relabel = {"base_t": lambda qs: qs, "base_t_true_answers": with_true_answers,
               "base_t_teacher_majority": lambda qs: teacher_majority(qs, generator)}
    return relabel[version](questions)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("runs", nargs="+")
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--steps", type=int, default=80, help="RLOO steps of every fresh student")
    ap.add_argument("--versions", nargs="+", choices=VERSIONS, default=list(VERSIONS))
    ap.add_argument("--schedule", choices=SCHEDULES, default="mixed", help="how the extra problems meet D_train")
    ap.add_argument("--out", default="runs/pq_ablation")
    args = ap.parse_args()
    set_threads(int(os.environ["SOAR_THREADS"]) if os.environ.get("SOAR_THREADS") else None)
    config = json.loads((Path(args.runs[0]) / "config.json").read_text())
    pool = [{"id": f"pq-{i:05d}", "question": r["question"], "answer": r["answer"]}
            for i, r in enumerate(row for run in args.runs for row in read_jsonl(Path(run) / "promoted_questions.jsonl"))]
    truth = [problem_truth(p["question"], p["answer"]) for p in pool]
    fresh = FreshStudentConfig(model=config["model"], hard_set=config["hard_set"], out="", retention=config["retention"],
                               steps=args.steps, eval_every=max(1, args.steps // 4), schedule=args.schedule)
    quiet = lambda *_: None  # noqa: E731
    print(f"{len(args.runs)} run(s), {len(pool)} promoted questions; by carries (correct answers / all):")
    print("  " + "  ".join(f"{c}: {sum(t['correct'] for t in truth if t['carries'] == c)}/"
                           f"{sum(t['carries'] == c for t in truth)}" for c in sorted({t['carries'] for t in truth})))
    one_carry = [t["top_carry"] for t in truth if t["correct"] and t["carries"] == 1]
    print(f"  correct 1-carry problems: {sum(one_carry)} out of the top column, {len(one_carry) - sum(one_carry)} lower")
    print(f"{'version':23s} {'count':>5s} {'correct':>7s}  fresh students, {args.steps} steps ({args.schedule}), "
          f"over {args.seeds} seeds "
          "(count and correct answers: the first seed's problems)")
    for name in args.versions:
        first = extra_problems(name, pool, config["model"], 0)
        results, count = [], len(first)
        correct = sum(problem_truth(p["question"], p["answer"])["correct"] for p in first)
        for s in range(args.seeds if count else 0):
            cells = f"{name}_{args.steps}steps" + (f"_{args.schedule}" if args.schedule != "mixed" else "")
            cell = dataclasses.replace(fresh, out=str(Path(args.out) / cells / f"seed{s}"), seed=s)
            done = Path(cell.out) / "result.json"
            if done.exists():
                results.append(json.loads(done.read_text()))
                continue
            extra = first if s == 0 else extra_problems(name, pool, config["model"], s)
            results.append(fresh_student(cell, extra=extra, log=quiet))
        print(f"{name:23s} {count:5d} {correct:7d}  {seed_summary(results) if results else '–'}")


if __name__ == "__main__":
    main()
