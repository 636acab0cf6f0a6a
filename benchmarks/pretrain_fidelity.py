"""How faithfully pretraining learns the toy corpus: prints figures, asserts nothing.

    python benchmarks/pretrain_fidelity.py [--seeds 0 1 2] [--pretrain-steps 4000] [--teacher-share 0.3]
        [--num-layers 2] [--lr 2e-3] [--teacher-carry-keep Q --teacher-carry-mix P0 P1 ...]
        [--samples 2000] [--out runs/fidelity]

What SOAR can do in the toy world depends on what the untrained teacher writes, so a pretraining recipe
should leave the model's teacher lines close to the distribution that wrote its corpus, whichever seed
(or machine) pretrained it. For each pretraining seed this builds the world in `--out` (reused when
there) and prints, for `--samples` teacher samples, next to what the corpus's adder gives:
- the carry mix of the questions (share with 0, 1, 2, ... carries; corpus: `teacher_carry_mix`);
- the share of correct answers, overall and by carry count (corpus: q_T ** carries);
- useful stepping stones (correct, 1-2 carries) and too-high answers (spurious carries; corpus: 0);
and for the student format: greedy accuracy on carry-free problems (corpus: 1) and success per sample
at temperature 1 on 1-carry problems (corpus: q_S). The last lines give each figure's mean and spread
over the seeds.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import time
from pathlib import Path

from soar.baselines import teacher_questions
from soar.evaluation import count_correct, greedy_accuracy
from soar.generation import HFGenerator
from soar.models import load_model, load_tokenizer, set_threads
from soar.runs import read_problems
from soar.tasks import load_task
from soar.tasks.toy import ToyConfig, build, format_question, problem_truth, sample_operands, teacher_corpus_figures


def corpus_figures(cfg: ToyConfig) -> dict[str, float]:
    """What the corpus holds, in percent: the teacher lines' expectation, then the student lines'."""
    out = {k: 100 * v for k, v in teacher_corpus_figures(cfg).items()}
    out["too_high"] = 0.0  # the noisy adders only drop carries
    out["student carry-free greedy"] = 100.0
    out["student 1-carry per sample"] = 100 * cfg.student_carry_keep
    return out


def model_figures(toy_dir: Path, cfg: ToyConfig, samples: int) -> dict[str, float]:
    task = load_task("toy")
    gen = HFGenerator(load_model(str(toy_dir)), load_tokenizer(str(toy_dir)))
    qs, _, rejected = teacher_questions(gen, task, samples, seed=123, max_new_tokens=24)
    truth = [problem_truth(q["question"], q["answer"]) for q in qs]
    out = {f"carries={c}": 100 * sum(t["carries"] == c for t in truth) / samples for c in range(len(cfg.teacher_carry_mix))}
    out["correct"] = 100 * sum(t["correct"] for t in truth) / samples
    out["stones"] = 100 * sum(t["stepping_stone"] for t in truth) / samples
    for c in range(len(cfg.teacher_carry_mix)):
        with_c = [t for t in truth if t["carries"] == c]
        out[f"correct|{c}"] = 100 * sum(t["correct"] for t in with_c) / len(with_c) if with_c else float("nan")
    out["too_high"] = 100 * sum(t["too_high"] for t in truth) / samples
    out["malformed"] = 100 * sum(rejected.values()) / (samples + sum(rejected.values()))
    out["student carry-free greedy"] = 100 * greedy_accuracy(gen, task, read_problems(toy_dir / "easy.jsonl"))
    rng = random.Random(7)
    one_carry = [{"question": format_question(a, b, cfg.digits), "answer": str(a + b).zfill(cfg.digits + 1)}
                 for a, b in (sample_operands(rng, cfg.digits, 1) for _ in range(64))]
    out["student 1-carry per sample"] = 100 * sum(count_correct(gen, task, one_carry, 64, seed=0)) / 64**2
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--pretrain-steps", type=int, default=ToyConfig.pretrain_steps)
    ap.add_argument("--teacher-share", type=float, default=ToyConfig.teacher_share)
    ap.add_argument("--num-layers", type=int, default=ToyConfig.num_layers)
    ap.add_argument("--lr", type=float, default=ToyConfig.lr)
    ap.add_argument("--teacher-carry-keep", type=float, default=ToyConfig.teacher_carry_keep)
    ap.add_argument("--teacher-carry-mix", type=float, nargs="+", default=list(ToyConfig.teacher_carry_mix))
    ap.add_argument("--samples", type=int, default=2000)
    ap.add_argument("--out", default="runs/fidelity")
    args = ap.parse_args()

    rows = {}
    for seed in args.seeds:
        cfg = ToyConfig(seed=seed, pretrain_steps=args.pretrain_steps, teacher_share=args.teacher_share,
                        num_layers=args.num_layers, lr=args.lr, teacher_carry_keep=args.teacher_carry_keep,
                        teacher_carry_mix=tuple(args.teacher_carry_mix))
        t0 = time.time()
        toy_dir = build(cfg, Path(args.out) / f"toy-{cfg.fingerprint()}", pretrain_weights=True, log=lambda *_: None)
        built = time.time() - t0
        rows[seed] = model_figures(toy_dir, cfg, args.samples)
        print(f"seed {seed}: {toy_dir} (ready in {built:.0f}s)  " +
              "  ".join(f"{k} {v:.1f}" for k, v in rows[seed].items()), flush=True)

    corpus = corpus_figures(cfg)
    print(f"\n{'figure (%)':28s} {'corpus':>7s} {'mean':>7s} {'sd':>6s}  per seed")
    for key in rows[args.seeds[0]]:
        vals = [rows[s][key] for s in args.seeds]
        sd = statistics.stdev(vals) if len(vals) > 1 else 0.0
        target = f"{corpus[key]:7.1f}" if key in corpus else f"{'':7s}"
        print(f"{key:28s} {target} {statistics.mean(vals):7.1f} {sd:6.1f}  " + " ".join(f"{v:.1f}" for v in vals))


if __name__ == "__main__":
    set_threads(int(os.environ["SOAR_THREADS"]) if os.environ.get("SOAR_THREADS") else None)  # as the CLI
    main()
