"""Answer extraction and grading for boxed-answer mathematics (SOAR_SPEC §2: Math-Verify parse + verify).

A prediction is a whole completion (its last `\\boxed{}` is graded) or a bare answer; a reference is a
bare answer, possibly in `$...$`. Both go through the same pipeline:

1. `answer_text`: the last boxed content if the text has a box, else the whole text.
2. `normalize_answer`: a few rewrites for equivalences Math-Verify misses (listed in its docstring).
3. Identical normalized strings are correct at once; anything else is parsed and compared by Math-Verify
   in a worker process (`Grader`), with a hard wall-clock timeout per answer: Math-Verify can take
   exponential time (20 nested braces: minutes) or never finish (`10^{10^{10}}`), and its own
   `signal.alarm` timeout only works in a main thread. A timed-out worker is killed and replaced.

Safety: model output is never evaluated. Only Math-Verify's LaTeX path is used (an ANTLR grammar
building SymPy objects); its plain-expression path calls `sympy.parse_expr`, which runs `eval`.
Workers also get an address-space cap, because `2^{2^{32}}` grows to gigabytes before any timeout.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import re
import resource
import subprocess
import sys
import time
import weakref
from collections import deque
from dataclasses import dataclass
from fractions import Fraction
from multiprocessing.connection import wait
from pathlib import Path

from math_verify import LatexExtractionConfig, parse, verify

# ---------------------------------------------------------------------------------------------------
# Extraction and normalization (pure functions, run in the calling process)

_BOX = re.compile(r"\\(?:boxed|fbox)(?![A-Za-z])")


def extract_boxed(text: str) -> str | None:
    """Content of the last `\\boxed{...}` or `\\fbox{...}` in `text` (nested and escaped braces handled).

    `\\boxed 5` without braces gives the run of characters up to the next space or `$`. None when there
    is no box, or when the last box is never closed (a truncated completion).
    """
    last = None
    for last in _BOX.finditer(text):
        pass
    if last is None:
        return None
    i = last.end()
    while i < len(text) and text[i].isspace():
        i += 1
    if i < len(text) and text[i] == "{":
        depth, k = 0, i
        while k < len(text):
            c = text[k]
            if c == "\\":  # an escaped character such as \{ or \} does not count
                k += 2
                continue
            if c == "{":
                depth += 1
            elif c == "}":
                depth -= 1
                if depth == 0:
                    return text[i + 1 : k]
            k += 1
        return None
    bare = re.match(r"[^\s$]+", text[i:])
    return bare.group() if bare else None


def answer_text(text: str) -> str | None:
    """The answer in `text`: its last boxed content if it has a box (None if that box is unclosed), else
    the whole text. A completion without a box therefore only counts if it is nothing but an answer."""
    return extract_boxed(text) if _BOX.search(text) else text


_UNICODE = {"°": "^{\\circ}", "√": "\\sqrt ", "∞": "\\infty ", "π": "\\pi ", "²": "^{2}", "³": "^{3}", "≤": "\\le ",
            "≥": "\\ge ", "½": "\\frac{1}{2}", "⅓": "\\frac{1}{3}", "⅔": "\\frac{2}{3}", "¼": "\\frac{1}{4}", "¾": "\\frac{3}{4}"}
_THOUSANDS_SPACE = re.compile(r"(?<=\d)(?:\\[,;:! ]|~)(?=\d{3}(?!\d))")
_REPEATING = re.compile(r"(?<![\d.])(\d*)\.(\d*)\\overline\{(\d+)\}")  # starts a digit run: linear time


def _repeating_to_fraction(m: re.Match) -> str:
    whole, fixed, period = m.groups()
    if len(m.group()) > 100:  # not a number anyone writes; int() refuses over 4300 digits
        return m.group()
    value = int(whole or 0) + Fraction(int(fixed + period) - int(fixed or 0), 10 ** len(fixed) * (10 ** len(period) - 1))
    return f"\\frac{{{value.numerator}}}{{{value.denominator}}}"


def normalize_answer(answer: str) -> str:
    """Rewrite a bare answer for the equivalences Math-Verify misses; each rewrite keeps the value.

    - `$` delimiters and `\\$` currency signs are dropped;
    - unicode maths (`°`, `√`, `∞`, `π`, `²`, `½`, ...) becomes LaTeX (Math-Verify ignores `^{\\circ}`);
    - `\\varnothing` becomes `\\emptyset`;
    - thin-space thousands separators go: `1\\,000`, `1~000` -> `1000` (Math-Verify handles `1,000`,
      `1{,}000` and `1,\\!000` itself, and knows that `(3,200)` and `1,2` are not numbers);
    - repeating decimals become fractions: `0.\\overline{3}` -> `\\frac{1}{3}`;
    - trailing punctuation goes: `5.` -> `5`.
    """
    s = answer.replace("\\$", "").replace("$", "")
    s = "".join(_UNICODE.get(c, c) for c in s).replace("\\varnothing", "\\emptyset")
    s = _THOUSANDS_SPACE.sub("", s)
    s = _REPEATING.sub(_repeating_to_fraction, s)
    while (trimmed := s.rstrip(" \t\n.,;").removesuffix("\\text{.}")) != s:
        s = trimmed
    return s.strip()


MAX_ANSWER_CHARS = 1000
"""Longer answers are never parsed (incorrect unless identical to the reference). The longest of the 1175
MATH-500 and OlympiadBench answers has 198 characters; Math-Verify's time grows fast with length."""
MAX_NESTING = 10
"""Deeper nesting of `{([` is never parsed. Those 1175 answers nest at most 3 deep; Math-Verify's parse
time is exponential in depth (10 nested braces: about 1 s, 20: minutes)."""


def _nesting(s: str) -> tuple[int, int]:
    """(deepest nesting of {([, final depth of the curly braces); escaped characters do not count."""
    depth = deepest = braces = k = 0
    while k < len(s):
        c = s[k]
        if c == "\\":
            k += 2
            continue
        if c in "{([":
            depth += 1
            deepest = max(deepest, depth)
        elif c in "})]":
            depth -= 1
        if c in "{}":
            braces += 1 if c == "{" else -1
            if braces < 0:
                return deepest, braces
        k += 1
    return deepest, braces


def prepare_answer(text: str) -> str | None:
    """`text` (completion or bare answer) -> its normalized answer, or None if it has no gradable answer:
    no answer, an unclosed box, an empty answer, unbalanced braces, or one beyond `MAX_ANSWER_CHARS` or
    `MAX_NESTING`."""
    answer = answer_text(text)
    if answer is None or len(answer) > MAX_ANSWER_CHARS:
        return None
    answer = normalize_answer(answer)
    if not answer:
        return None
    deepest, braces = _nesting(answer)
    return answer if braces == 0 and deepest <= MAX_NESTING else None


# ---------------------------------------------------------------------------------------------------
# Math-Verify calls (run inside worker processes: they can hang)

# LaTeX only (see the module docstring); the answer is wrapped in a box that is matched first and alone.
_LATEX_ONLY = [LatexExtractionConfig(boxed_match_priority=0, try_extract_without_anchor=False)]


def _parse_variants(answer: str) -> list:
    """Math-Verify's parse of a normalized answer: SymPy objects, then its normalized string. With a
    percent sign, the answer without it is a second reading (`4.2\\%` for a reference `4.2`)."""
    variants = [answer]
    if "%" in answer:
        variants.append(answer.replace("\\%", "").replace("%", "").strip())
    return [x for v in variants if v for x in parse("\\boxed{" + v + "}", _LATEX_ONLY,
                                                    extraction_mode="first_match", parsing_timeout=None)]


def answers_match(pred: str, ref: str) -> bool:
    """Math-Verify's verdict on two normalized answers (reference first: `verify` is not symmetric).
    Can run for ever: call it through a `Grader`."""
    gold, target = _parse_variants(ref), _parse_variants(pred)
    # Relations may match sets both ways round (`0<x<1` for `(0,1)`); by default only one way is allowed.
    return verify(gold, target, allow_set_relation_comp=True, timeout_seconds=None)


def answer_parses(answer: str) -> bool:
    """Whether Math-Verify parses a normalized answer into a SymPy object. Call it through a `Grader`."""
    return any(not isinstance(x, str) for x in _parse_variants(answer))


_JOBS = {"match": answers_match, "parse": answer_parses}


def _worker_main(memory_mb: int) -> None:
    """Worker loop: read JSON jobs `[kind, *args]` from stdin, write `true`/`false` lines to stdout."""
    if memory_mb:
        limit, hard = memory_mb << 20, resource.getrlimit(resource.RLIMIT_AS)[1]
        resource.setrlimit(resource.RLIMIT_AS, (limit if hard == resource.RLIM_INFINITY else min(limit, hard), hard))
    out = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)  # a library print() must not corrupt the replies
    logging.getLogger("math_verify").setLevel(logging.ERROR)  # it warns that its own timeout is off
    # Also the warm-up: first-call imports and regex compilation happen before the first timed job.
    if not answers_match("\\frac{1}{2}", "0.5"):
        sys.exit("Math-Verify cannot parse LaTeX: is the antlr4 runtime right? pip install 'math-verify[antlr4_13_2]'")
    print("ready", file=out, flush=True)
    for line in sys.stdin:
        kind, *args = json.loads(line)
        try:
            result = bool(_JOBS[kind](*args))
        except Exception:  # includes MemoryError and RecursionError on pathological input
            result = False
        print(json.dumps(result), file=out, flush=True)


# ---------------------------------------------------------------------------------------------------
# The worker pool


@dataclass(frozen=True)
class GradeResult:
    """The verdict on one (prediction, reference) pair."""

    correct: bool
    timeout: bool
    """The answer was still being checked after the time limit (it then counts as incorrect)."""
    seconds: float = 0.0
    """Wall-clock time from handing the answer to a worker to its verdict (0 when no worker was needed)."""


_PACKAGE_ROOT = str(Path(__file__).resolve().parents[1])  # workers import soar from here


@dataclass
class _Worker:
    process: subprocess.Popen
    ready: bool = False
    job: int | None = None
    started: float = 0.0


class Grader:
    """A pool of worker processes that run Math-Verify with a hard wall-clock timeout per answer.

    Workers are plain `python -c` subprocesses talking JSON lines over pipes (no multiprocessing: its
    spawn start re-imports the caller's main script, and fork would copy CUDA and thread state). They
    start on first use and are reused across calls; a worker that runs past `timeout`, or dies, is
    killed and replaced. Use as a context manager or call `close()`. Not thread-safe.
    """

    def __init__(self, workers: int = 4, timeout: float = 5.0, memory_mb: int = 1024):
        self.num_workers = workers
        self.timeout = timeout
        """Seconds one answer may take in a worker."""
        self.memory_mb = memory_mb
        """Address-space cap per worker in MiB (0: none); a job that exceeds it counts as incorrect."""
        self._workers: list[_Worker] = []  # mutated in place: the finalizer below holds it
        weakref.finalize(self, Grader._kill_all, self._workers)  # no hung worker outlives its pool

    def grade(self, preds: list[str], refs: list[str]) -> list[GradeResult]:
        """Grade each prediction (completion or bare answer) against its reference answer, in order."""
        if len(preds) != len(refs):
            raise ValueError(f"{len(preds)} predictions for {len(refs)} references")
        verdicts: list[bool | tuple[str, str]] = []  # settled here, or a pair for Math-Verify
        for pred, ref in zip(preds, refs):
            p, r = prepare_answer(pred), prepare_answer(ref)
            verdicts.append(False if p is None or r is None else True if p == r else (p, r))
        pairs = list(dict.fromkeys(v for v in verdicts if isinstance(v, tuple)))  # RL samples repeat answers
        done = dict(zip(pairs, self._run([["match", p, r] for p, r in pairs])))
        return [done[v] if isinstance(v, tuple) else GradeResult(v, False) for v in verdicts]

    def parses(self, answers: list[str]) -> list[bool]:
        """Whether Math-Verify parses each answer (bare, or the last box of a text); a timeout is False."""
        prepared = [prepare_answer(a) for a in answers]
        results = iter(self._run([["parse", a] for a in prepared if a is not None]))
        return [a is not None and next(results).correct for a in prepared]

    def close(self) -> None:
        """Stop the workers (they hold no state worth a clean shutdown); a later call starts new ones."""
        self._kill_all(self._workers)

    def __enter__(self) -> "Grader":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _spawn(self) -> _Worker:
        env = dict(os.environ, PYTHONPATH=os.pathsep.join([_PACKAGE_ROOT, os.environ.get("PYTHONPATH", "")]))
        code = f"from soar.grading import _worker_main; _worker_main({int(self.memory_mb)})"
        process = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                   text=True, encoding="utf-8", env=env)
        return _Worker(process)

    def _replace(self, i: int) -> None:
        self._kill(self._workers[i])
        self._workers[i] = self._spawn()

    @staticmethod
    def _kill_all(workers: list[_Worker]) -> None:
        for w in workers:
            Grader._kill(w)
        workers.clear()

    @staticmethod
    def _kill(w: _Worker) -> None:
        w.process.kill()
        w.process.wait()
        with contextlib.suppress(BrokenPipeError):  # a job written to a dead worker is still buffered
            w.process.stdin.close()
        w.process.stdout.close()

    def _run(self, jobs: list[list]) -> list[GradeResult]:
        """Run JSON jobs on the workers; one result per job, in order."""
        if not jobs:
            return []
        for i, w in enumerate(self._workers):
            if w.job is not None:  # left busy by an interrupted call: its reply belongs to no one
                self._replace(i)
        while len(self._workers) < self.num_workers:
            self._workers.append(self._spawn())
        todo, results = deque(range(len(jobs))), [None] * len(jobs)
        while todo or any(w.job is not None for w in self._workers):
            for i, w in enumerate(self._workers):
                if w.ready and w.job is None and todo:
                    w.job, w.started = todo.popleft(), time.monotonic()
                    try:
                        w.process.stdin.write(json.dumps(jobs[w.job]) + "\n")
                        w.process.stdin.flush()
                    except BrokenPipeError:  # it died while idle (killed from outside): retry on a new one
                        todo.appendleft(w.job)
                        self._replace(i)
            busy = [w.started + self.timeout for w in self._workers if w.job is not None]
            wait_s = max(0.0, min(busy) - time.monotonic()) if busy else None
            # At most one reply is ever pending per worker, so select() on the pipe sees every line.
            readable = wait([w.process.stdout for w in self._workers if w.job is not None or not w.ready], wait_s)
            now = time.monotonic()
            for i, w in enumerate(self._workers):
                if w.process.stdout in readable:
                    line = w.process.stdout.readline()
                    if line and not w.ready:
                        w.ready = True
                        continue
                    if line:
                        results[w.job], w.job = GradeResult(json.loads(line), False, now - w.started), None
                        continue
                    if not w.ready:
                        raise RuntimeError(f"a grading worker exited while starting (exit code {w.process.wait()})")
                    # The worker died (a crash in native code, or killed from outside).
                    results[w.job] = GradeResult(False, False, now - w.started)
                elif w.job is not None and now >= w.started + self.timeout:
                    results[w.job] = GradeResult(False, True, now - w.started)
                else:
                    continue
                self._replace(i)
        return results


def grade_answers(preds: list[str], refs: list[str], timeout: float = 5.0, workers: int = 4) -> list[GradeResult]:
    """Grade predictions against references with a one-off `Grader` (keep a `Grader` for repeated calls)."""
    with Grader(workers=workers, timeout=timeout) as grader:
        return grader.grade(preds, refs)


# ---------------------------------------------------------------------------------------------------
# soar grade


def _read_pairs(path: str) -> tuple[list[str], list[str]]:
    preds, refs = [], []
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise ValueError(f"{path}:{n}: not valid JSON ({e.msg})") from None
            if not isinstance(row, dict) or not all(isinstance(row.get(k), str) for k in ("pred", "ref")):
                raise ValueError(f'{path}:{n}: expected an object with string fields "pred" and "ref"')
            preds.append(row["pred"])
            refs.append(row["ref"])
    return preds, refs


def main(argv: list[str] | None = None) -> int:
    """`soar grade PRED REF` prints correct/incorrect (exit 0/1); `soar grade --file F` prints one JSON
    verdict `{"correct", "timeout", "seconds"}` per non-blank input line, in order (exit 0; 2 on bad input)."""
    parser = argparse.ArgumentParser(prog="soar grade", description="Grade answers with Math-Verify.")
    parser.add_argument("pred", nargs="?", help="a completion (its last \\boxed{} is graded) or a bare answer")
    parser.add_argument("ref", nargs="?", help="the reference answer")
    parser.add_argument("--file", help='JSONL file of {"pred": ..., "ref": ...} rows (blank lines are skipped)')
    parser.add_argument("--timeout", type=float, default=5.0, help="seconds per answer (default: 5)")
    parser.add_argument("--workers", type=int, default=4, help="worker processes (default: 4)")
    args = parser.parse_args(argv)
    if args.file is None and args.ref is None:
        parser.error("give PRED and REF, or --file F")
    if args.file is not None and args.pred is not None:
        parser.error("give PRED and REF, or --file F, not both")
    if args.file is None:
        [result] = grade_answers([args.pred], [args.ref], timeout=args.timeout, workers=1)
        if result.timeout:
            print(f"timed out after {args.timeout:g} s", file=sys.stderr)
        print("correct" if result.correct else "incorrect")
        return 0 if result.correct else 1
    try:
        preds, refs = _read_pairs(args.file)
    except (OSError, ValueError) as e:
        print(f"soar grade: {e}", file=sys.stderr)
        return 2
    for r in grade_answers(preds, refs, timeout=args.timeout, workers=args.workers):
        print(json.dumps({"correct": r.correct, "timeout": r.timeout, "seconds": round(r.seconds, 3)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
