"""How many true stepping stones does a fresh student need? pass@32 by the number of extra problems.

    python benchmarks/stone_dose.py [--sizes 16 32 64 128 256] [--seeds 5] [--out runs/stone_dose]

A fresh student (the PQ protocol's budget: 80 RLOO steps, 75% of each batch from the extra problems)
trains on D_train plus N problems drawn from the toy world's oracle curriculum (correct answers,
0-2 carries), for several N and seeds; prints pass@32 on D_test (mean ± SD) and retention. This is the
ceiling of a PQ of N questions whose answers are all right: SOAR-PQ's 16 questions per promotion can
be read against it. Prints figures, asserts nothing.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import random
import statistics
from pathlib import Path

from soar.baselines import FreshStudentConfig, fresh_student
from soar.compare import seed_summary
from soar.demo import toy_hard_set
from soar.models import set_threads
from soar.runs import read_problems
from soar.tasks.toy import ToyConfig, build, problem_truth


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=[16, 32, 64, 128, 256])
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--out", default="runs/stone_dose")
    args = ap.parse_args()
    set_threads(int(os.environ["SOAR_THREADS"]) if os.environ.get("SOAR_THREADS") else None)
    out = Path(args.out)
    toy_dir = build(ToyConfig())
    toy_hard_set(toy_dir, out / "hard_set", 256, 0)
    curriculum = read_problems(toy_dir / "oracle_curriculum.jsonl")
    fresh = FreshStudentConfig(model=str(toy_dir), hard_set=str(out / "hard_set"), out="",
                               retention=str(toy_dir / "easy.jsonl"))
    quiet = lambda *_: None  # noqa: E731
    print(f"{'N':>5}  {'stones':>6}  fresh students over {args.seeds} seeds")
    for size in args.sizes:
        results, stones = [], []
        for seed in range(args.seeds):
            extra = random.Random(f"dose/{size}/{seed}").sample(curriculum, min(size, len(curriculum)))
            stones.append(sum(problem_truth(p["question"], p["answer"])["stepping_stone"] for p in extra))
            cell = dataclasses.replace(fresh, out=str(out / f"n{size}" / f"seed{seed}"), seed=seed)
            results.append(fresh_student(cell, extra=extra, log=quiet))
        print(f"{size:5d}  {statistics.mean(stones):6.1f}  {seed_summary(results)}")


if __name__ == "__main__":
    main()
