"""Outer-step time by phase on the toy world, inner loops run by the local and by the Ray executor.

    python benchmarks/executors.py [--steps 3] [--workers 2] [--executors local ray]

Builds (or reuses) the default toy world and a hard set of 1-carry problems, runs `--steps` outer
steps of SOAR with each executor and the same seed, and prints the median seconds per phase (from each
run's metrics.jsonl; the first step, which pays for start-up, is left out when there are more), plus
whether the two executors gave the same rewards. Needs `pip install 'soar-rl[ray]'` for "ray".
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from soar.loop import SoarConfig, run
from soar.runs import read_jsonl, read_problems, write_jsonl
from soar.tasks.toy import ToyConfig, build, problem_truth


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--executors", nargs="+", default=["local", "ray"])
    args = ap.parse_args()
    toy = build(ToyConfig())
    work = Path(tempfile.mkdtemp(prefix="soar-bench-"))
    rows = [r for r in read_problems(toy / "oracle_curriculum.jsonl")
            if problem_truth(r["question"], r["answer"])["carries"] == 1]
    write_jsonl(work / "hard" / "train.jsonl", rows)
    results = {}
    for executor in args.executors:
        cfg = SoarConfig(model=str(toy), hard_set=str(work / "hard"), out=str(work / executor), outer_steps=args.steps,
                         reward_metric="sampled", executor=executor, num_workers=args.workers, device="cpu")
        t0 = time.time()
        run(cfg)
        wall = time.time() - t0
        metrics = read_jsonl(work / executor / "metrics.jsonl")
        timed = metrics[1:] if len(metrics) > 1 else metrics
        phases = {name: statistics.median(m["time"][name] for m in timed) for name in timed[0]["time"]}
        results[executor] = {"wall": wall, "phases": phases,
                             "rewards": [m["teacher/student_rewards"] for m in metrics]}
    names = list(next(iter(results.values()))["phases"])
    print(f"toy world, g=4 n=16 r=2 K=10 M=64, {args.steps} outer steps, Ray workers: {args.workers}")
    print(f"{'phase (median s/step)':24s}" + "".join(f"{e:>10s}" for e in results))
    for name in names + ["total"]:
        values = [sum(r["phases"].values()) if name == "total" else r["phases"][name] for r in results.values()]
        print(f"{name:24s}" + "".join(f"{v:10.2f}" for v in values))
    print(f"{'wall incl. start-up (s)':24s}" + "".join(f"{r['wall']:10.1f}" for r in results.values()))
    if len(results) > 1:
        rewards = [r["rewards"] for r in results.values()]
        print("same rewards across executors:", all(r == rewards[0] for r in rewards))


if __name__ == "__main__":
    main()
