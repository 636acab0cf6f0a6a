"""The toy world's plateau and stepping stones, measured: prints figures, asserts nothing.

    python benchmarks/plateau.py [--seeds 5] [--steps 80] [--out runs/plateau]
                                 [--teacher-carry-keep Q --teacher-carry-mix P0 P1 ...] [--pretrain-steps N]

1. builds (or reuses) the toy world (default, or the variant of the last three flags) and prints its build time;
2. `soar filter`: the fail@128 hard set of the hard candidates (train/test sizes);
3. base-model pass@1..32 on D_test, and its success per sample by number of carries (and for one
   carry out of the top column: the hard problems' leading 1);
4. for each seed, a fresh student trained for the same N RLOO steps on
   Hard-Only (D_train only), Base-T (D_train + untrained-teacher questions) and the oracle curriculum
   (D_train + correct stepping stones): pass@32 on D_test, retention (greedy accuracy on carry-free
   problems) and wall time, per seed and as mean ± SD;
5. what the untrained teacher writes: well-formed, correct, and useful stepping stones.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import time
from pathlib import Path

from soar.baselines import FreshStudentConfig, base_t, fresh_student, teacher_questions
from soar.compare import mean_sd
from soar.evaluation import count_correct, evaluate_pass_at_k, greedy_accuracy
from soar.generation import HFGenerator
from soar.hardset import FilterConfig, run_filter
from soar.models import load_model, load_tokenizer, set_threads
from soar.runs import read_problems
from soar.tasks import load_task
from soar.tasks.toy import ToyConfig, build, carry_columns, format_question, problem_truth


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--steps", type=int, default=80)
    ap.add_argument("--base-t-questions", type=int, default=128)
    ap.add_argument("--out", default="runs/plateau")
    ap.add_argument("--teacher-carry-keep", type=float, default=ToyConfig.teacher_carry_keep)
    ap.add_argument("--teacher-carry-mix", type=float, nargs="+", default=list(ToyConfig.teacher_carry_mix))
    ap.add_argument("--pretrain-steps", type=int, default=ToyConfig.pretrain_steps)
    args = ap.parse_args()
    out = Path(args.out)
    quiet = lambda *_: None  # noqa: E731

    t0 = time.time()
    toy_dir = build(ToyConfig(teacher_carry_keep=args.teacher_carry_keep, teacher_carry_mix=tuple(args.teacher_carry_mix),
                              pretrain_steps=args.pretrain_steps))
    print(f"toy world: {toy_dir} (ready in {time.time() - t0:.1f}s)")

    t0 = time.time()
    hard = out / "hard_set"
    if not (hard / "manifest.json").exists():
        run_filter(FilterConfig(model=str(toy_dir), problems=str(toy_dir / "hard_candidates.jsonl"), out=str(hard)), quiet)
    manifest = json.loads((hard / "manifest.json").read_text())
    print(f"fail@128 hard set: {manifest['hard']} of {manifest['candidates']} candidates "
          f"-> train {manifest['train']} / test {manifest['test']}  ({time.time() - t0:.1f}s)")

    task = load_task("toy")
    test = read_problems(hard / "test.jsonl")
    easy = read_problems(toy_dir / "easy.jsonl")
    gen = HFGenerator(load_model(str(toy_dir)), load_tokenizer(str(toy_dir)))
    base = evaluate_pass_at_k(gen, task, test, 32, seed=0)
    print("base model pass@k on D_test: " + "  ".join(f"@{k} {v:.2f}" for k, v in base["pass_at_k"].items())
          + f"   retention {greedy_accuracy(gen, task, easy):.2f}")

    rng = random.Random(7)
    rates = []
    kinds = [(f"{c} carries", lambda columns, c=c: sum(columns) == c) for c in range(4)]
    kinds.append(("1 carry, out of the top column", lambda columns: sum(columns) == 1 and columns[-1]))
    for seed, (name, accept) in enumerate(kinds):
        probs = []
        while len(probs) < 64:
            a, b = rng.randrange(10**4), rng.randrange(10**4)
            if accept(carry_columns(a, b, 4)):
                probs.append({"question": format_question(a, b, 4), "answer": str(a + b).zfill(5)})
        correct = sum(count_correct(gen, task, probs, 64, seed=seed))
        rates.append(f"{name} {correct}/{64 * 64} ({100 * correct / 4096:.2f}%)")
    print("base model, success per sample at temperature 1: " + ", ".join(rates))

    qs, _, rejected = teacher_questions(gen, task, 1000, seed=123, max_new_tokens=24)
    truth = [problem_truth(q["question"], q["answer"]) for q in qs]
    print(f"untrained teacher (1000 valid of {1000 + sum(rejected.values())} samples): "
          f"correct {100 * sum(t['correct'] for t in truth) / 1000:.1f}%  "
          f"useful stepping stones {100 * sum(t['stepping_stone'] for t in truth) / 1000:.1f}%  "
          f"carries " + "/".join(str(sum(t['carries'] == c for t in truth)) for c in range(5)))

    arms = {"hard_only": {}, "base_t": {}, "oracle": {}}
    for seed in range(args.seeds):
        for arm in arms:
            cfg = FreshStudentConfig(model=str(toy_dir), hard_set=str(hard), out=str(out / arm / f"seed{seed}"),
                                     steps=args.steps, eval_every=args.steps, retention=str(toy_dir / "easy.jsonl"),
                                     extra=str(toy_dir / "oracle_curriculum.jsonl") if arm == "oracle" else None,
                                     seed=seed)
            r = base_t(cfg, args.base_t_questions, log=quiet) if arm == "base_t" else fresh_student(cfg, log=quiet)
            arms[arm][seed] = r
            print(f"seed {seed} {arm:9s} pass@1 {r['pass_at_k']['1']:5.1f}  pass@32 {r['pass_at_k']['32']:5.1f}  "
                  f"retention {r['retention']:.2f}  train reward {sum(r['train_reward']) / len(r['train_reward']):.4f}  "
                  f"{r['wall_seconds']:.0f}s", flush=True)

    if not args.seeds:
        return
    print(f"\nafter {args.steps} student steps, {args.seeds} seeds, D_test pass@k in % (mean ± SD):")
    print(f"{'arm':10s} {'pass@1':>12s} {'pass@32':>12s} {'retention':>10s} {'wall s':>7s}  per-seed pass@32")
    for arm, runs in arms.items():
        p1 = [r["pass_at_k"]["1"] for r in runs.values()]
        p32 = [r["pass_at_k"]["32"] for r in runs.values()]
        ret = [r["retention"] for r in runs.values()]
        wall = [r["wall_seconds"] for r in runs.values()]
        print(f"{arm:10s} {mean_sd(p1):>12s} {mean_sd(p32):>12s} {statistics.mean(ret):10.2f} "
              f"{statistics.median(wall):7.0f}  " + " ".join(f"{x:.0f}" for x in p32))


if __name__ == "__main__":
    set_threads(int(os.environ["SOAR_THREADS"]) if os.environ.get("SOAR_THREADS") else None)  # as the CLI
    main()
