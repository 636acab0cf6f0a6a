"""What in a SOAR run's promoted questions helps? PQ as promoted, correct answers only, stones only.

    python benchmarks/pq_ablation.py RUN_DIR [RUN_DIR ...] [--seeds 5] [--out runs/pq_ablation]

For toy-world SOAR runs: pools the promoted questions of the given runs and trains fresh students
(the PQ protocol: D_train plus the extra problems, the run's hard set) on three versions of the pool,
all with the teacher's answers as written: every promoted question (PQ), only those whose answer is
correct, and only the useful stepping stones (correct, 1-2 carries). Prints pass@32 on D_test
(mean ± SD over seeds) and retention, after the pool's correct/all counts by number of carries.
Prints figures, asserts nothing.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
from pathlib import Path

from soar.baselines import FreshStudentConfig, fresh_student
from soar.compare import seed_summary
from soar.models import set_threads
from soar.runs import read_jsonl
from soar.tasks.toy import problem_truth


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("runs", nargs="+")
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--out", default="runs/pq_ablation")
    args = ap.parse_args()
    set_threads(int(os.environ["SOAR_THREADS"]) if os.environ.get("SOAR_THREADS") else None)
    config = json.loads((Path(args.runs[0]) / "config.json").read_text())
    pool = [{"id": f"pq-{i:05d}", "question": r["question"], "answer": r["answer"]}
            for i, r in enumerate(row for run in args.runs for row in read_jsonl(Path(run) / "promoted_questions.jsonl"))]
    truth = [problem_truth(p["question"], p["answer"]) for p in pool]
    versions = {"PQ (as promoted)": pool,
                "correct answers only": [p for p, t in zip(pool, truth) if t["correct"]],
                "stepping stones only": [p for p, t in zip(pool, truth) if t["stepping_stone"]]}
    fresh = FreshStudentConfig(model=config["model"], hard_set=config["hard_set"], out="", retention=config["retention"])
    quiet = lambda *_: None  # noqa: E731
    print(f"{len(args.runs)} run(s), {len(pool)} promoted questions; by carries (correct answers / all):")
    print("  " + "  ".join(f"{c}: {sum(t['correct'] for t in truth if t['carries'] == c)}/"
                           f"{sum(t['carries'] == c for t in truth)}" for c in sorted({t['carries'] for t in truth})))
    print(f"{'version':22s} {'count':>5s}  fresh students over {args.seeds} seeds")
    for i, (name, extra) in enumerate(versions.items()):
        if not extra:
            print(f"{name:22s} {0:5d}  –")
            continue
        results = [fresh_student(dataclasses.replace(fresh, out=str(Path(args.out) / f"v{i}" / f"seed{s}"), seed=s),
                                 extra=extra, log=quiet) for s in range(args.seeds)]
        print(f"{name:22s} {len(extra):5d}  {seed_summary(results)}")


if __name__ == "__main__":
    main()
