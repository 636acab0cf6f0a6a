"""Which stepping stones lift the hard set? By where they carry, and how many times.

    python benchmarks/carry_column.py [--seeds 10] [--steps 160] [--size 32]
                                      [--arms top lower top_lower any two lower_and_top_only_sums]
                                      [--teacher-carry-keep Q --teacher-carry-mix P0 P1 ...] [--out runs/carry_column]

Every hard problem carries out of its top column (the answer's leading 1) and in two lower columns.
This trains fresh students (the PQ protocol: D_train plus `--size` extra problems, `--steps` RLOO
steps) on extra problems whose answers are all correct: half carry-free, half with exactly one
carry, out of the top column ("top"), out of the ones, tens or hundreds column ("lower"), the two
in turn ("top_lower"), or out of any column ("any"); or half with exactly two carries, anywhere
("two"). One arm breaks the rule that answers are correct: "lower_and_top_only_sums" pairs the
lower one-carry problems with 3-carry problems answered as a student that keeps only the carry out
of the top column would (the leading 1 right, the lower carries dropped): whether such wrong answers
teach the top carry like a correct one-carry problem does. A new draw per seed. Prints pass@32 on
D_test (mean ± SD over seeds) and retention per arm; finished cells are read back.
`--teacher-carry-keep` / `--teacher-carry-mix` / `--pretrain-steps` pick the toy world variant (its student lines, and
so the plateau, are the same). Prints figures, asserts nothing.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import random
from pathlib import Path

from soar.baselines import FreshStudentConfig, fresh_student
from soar.compare import seed_summary
from soar.demo import toy_hard_set
from soar.models import set_threads
from soar.tasks.toy import ToyConfig, build, carry_columns, format_question, parse_question, true_answer


def column_sums(a: int, b: int, digits: int) -> list[int]:
    """Each column's digit sum without the carry from below, least significant first."""
    return [(a // 10**i) % 10 + (b // 10**i) % 10 for i in range(digits)]


def top_carry_only_sum(question: str) -> str:
    """The sum a student writes when it keeps the carry out of the top column and drops every other."""
    a, b = parse_question(question)
    sums = column_sums(a, b, len(question.split("+")[0]))
    return str(int(sums[-1] >= 10)) + "".join(str(c % 10) for c in reversed(sums))


# Where a problem's carries are, from its carry columns and its column digit sums (least significant first).
TOP, LOWER, ANYWHERE = (lambda c, s: c[-1]), (lambda c, s: not c[-1]), (lambda c, s: True)
TOP_ALONE = lambda c, s: c[-1] and s[-1] >= 10  # noqa: E731  the top column carries without the carry from below
ARMS = {"top": [(1, TOP, true_answer)], "lower": [(1, LOWER, true_answer)],
        "top_lower": [(1, TOP, true_answer), (1, LOWER, true_answer)], "any": [(1, ANYWHERE, true_answer)],
        "two": [(2, ANYWHERE, true_answer)],
        "lower_and_top_only_sums": [(1, LOWER, true_answer), (3, TOP_ALONE, top_carry_only_sum)]}
# arm: the (carries, where, answer) of its carry problems, in turn


def extra_problems(arm: str, size: int, seed: int, digits: int = 4) -> list[dict]:
    """`size` problems: half carry-free, half with the carries `arm` asks for, answered as it says."""
    rng = random.Random(f"carry_column/{arm}/{size}/{seed}")
    rows: list[dict] = []
    while len(rows) < size:
        a, b = rng.randrange(10**digits), rng.randrange(10**digits)
        carries = carry_columns(a, b, digits)
        turn = len(rows) - size // 2
        wanted, where, answer = (0, ANYWHERE, true_answer) if turn < 0 else ARMS[arm][turn % len(ARMS[arm])]
        if sum(carries) == wanted and where(carries, column_sums(a, b, digits)):
            q = format_question(a, b, digits)
            rows.append({"id": f"{arm}-{len(rows):05d}", "question": q, "answer": answer(q)})
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, default=10)
    ap.add_argument("--steps", type=int, default=160, help="RLOO steps of every fresh student")
    ap.add_argument("--size", type=int, default=32, help="extra problems per student (half carry-free)")
    ap.add_argument("--arms", nargs="+", choices=list(ARMS), default=list(ARMS))
    ap.add_argument("--teacher-carry-keep", type=float, default=ToyConfig.teacher_carry_keep)
    ap.add_argument("--teacher-carry-mix", type=float, nargs="+", default=list(ToyConfig.teacher_carry_mix))
    ap.add_argument("--pretrain-steps", type=int, default=ToyConfig.pretrain_steps)
    ap.add_argument("--out", default="runs/carry_column")
    args = ap.parse_args()
    set_threads(int(os.environ["SOAR_THREADS"]) if os.environ.get("SOAR_THREADS") else None)
    out = Path(args.out)
    toy_dir = build(ToyConfig(teacher_carry_keep=args.teacher_carry_keep, teacher_carry_mix=tuple(args.teacher_carry_mix),
                              pretrain_steps=args.pretrain_steps))
    train, test = toy_hard_set(toy_dir, out / "hard_set", 256, 0)
    fresh = FreshStudentConfig(model=str(toy_dir), hard_set=str(out / "hard_set"), out="",
                               retention=str(toy_dir / "easy.jsonl"), steps=args.steps,
                               eval_every=max(1, args.steps // 4))
    quiet = lambda *_: None  # noqa: E731
    print(f"hard set {len(train)} train / {len(test)} test; {args.size} extra problems per student, "
          f"{args.steps} steps, {args.seeds} seeds")
    for arm in args.arms:
        results = []
        for s in range(args.seeds):
            cell = dataclasses.replace(fresh, out=str(out / f"{arm}_{args.size}_{args.steps}steps" / f"seed{s}"), seed=s)
            done = Path(cell.out) / "result.json"
            results.append(json.loads(done.read_text()) if done.exists()
                           else fresh_student(cell, extra=extra_problems(arm, args.size, s), log=quiet))
        print(f"{arm:6s} {seed_summary(results)}")


if __name__ == "__main__":
    main()
