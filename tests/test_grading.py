"""soar.grading: extraction, normalization, answer equivalence, the worker pool and `soar grade`."""

import json
import os
import random
import re
import subprocess
import sys
import time
from fractions import Fraction
from pathlib import Path

import pytest
from hypothesis import given, settings, strategies as st

from soar.grading import Grader, extract_boxed, grade_answers, main, normalize_answer, prepare_answer

DATA = Path("/work/shared/data")
needs_data = pytest.mark.skipif(not DATA.is_dir(), reason=f"benchmark files not at {DATA}")


@pytest.fixture(scope="module")
def grader():
    with Grader(workers=2, timeout=10.0) as g:  # generous: the CI machine is shared
        yield g


# ---------------------------------------------------------------------------------------------------
# Extraction and normalization


@pytest.mark.parametrize("text, expected", [
    ("The answer is $\\boxed{5}$.", "5"),
    ("\\boxed{1} then \\boxed{2}", "2"),
    ("\\boxed{\\frac{1}{2}}", "\\frac{1}{2}"),
    ("\\boxed{\\{1,2\\}}", "\\{1,2\\}"),  # escaped braces do not close the box
    ("\\boxed{a}\\\\{b}", "a"),  # \\ is a line break, not an escape of the next brace
    ("\\fbox{7}", "7"),
    ("\\boxed {7}", "7"),
    ("so $\\boxed 5$.", "5"),
    ("\\boxed5", "5"),
    ("\\boxed{}", ""),
    ("\\boxed{\\boxed{3}}", "3"),
    ("no box here", None),
    ("\\boxed{unclosed", None),
    ("\\boxed", None),
    ("\\boxedfoo{3}", None),  # another macro
    ("\\boxed{1}\\boxed{2", None),  # the last box is truncated
])
def test_extract_boxed(text, expected):
    assert extract_boxed(text) == expected


@pytest.mark.parametrize("answer, expected", [
    ("$\\frac12$", "\\frac12"),
    ("\\$5", "5"),
    ("30°", "30^{\\circ}"),
    ("√2", "\\sqrt 2"),
    ("1\\,000\\,000", "1000000"),
    ("1~000", "1000"),
    ("(1,\\,000)", "(1,\\,000)"),  # a comma then a space: a pair, left alone
    ("0.\\overline{3}", "\\frac{1}{3}"),
    ("1.2\\overline{34}", "\\frac{611}{495}"),
    ("-0.\\overline{6}", "-\\frac{2}{3}"),
    ("5.", "5"),
    ("\\frac{1}{2}\\text{.}", "\\frac{1}{2}"),
    ("\\varnothing", "\\emptyset"),
    ("  7 ", "7"),
])
def test_normalize_answer(answer, expected):
    assert normalize_answer(answer) == expected


@pytest.mark.parametrize("text", ["", "   ", "\\boxed{}", "\\boxed{1", "}{", "$$", "1}", "x" * 1001,
                                  "(" * 11 + "1" + ")" * 11, "\\frac{" * 11 + "1" + "}{2}" * 11])
def test_prepare_answer_rejects_non_answers(text):
    assert prepare_answer(text) is None


def test_prepare_answer_limits():
    assert prepare_answer("x" * 1000) == "x" * 1000
    assert prepare_answer("{" * 10 + "1" + "}" * 10) == "{" * 10 + "1" + "}" * 10


@settings(max_examples=300, deadline=None)
@given(st.text())
def test_extraction_never_crashes(text):
    boxed = extract_boxed(text)
    assert boxed is None or boxed in text
    assert isinstance(normalize_answer(text), str)
    assert prepare_answer(text) is None or isinstance(prepare_answer(text), str)


@settings(max_examples=200, deadline=None)
@given(prefix=st.text().filter(lambda s: "\\boxed" not in s and "\\fbox" not in s),
       body=st.recursive(st.text(alphabet="0123456789+-x^,() ", max_size=5),
                         lambda inner: st.builds(lambda a, b: a + "{" + b + "}", inner, inner), max_leaves=8))
def test_extract_boxed_finds_balanced_content(prefix, body):
    assert extract_boxed(prefix + "\\boxed{" + body + "} and so on") == body


# ---------------------------------------------------------------------------------------------------
# Answer equivalence: what a human grader accepts, and what they do not.
# (pred, ref, why). Cases marked [external] come from the MATH equivalence tests (hendrycks/math
# modeling/math_equivalence_test.py) and Math-Verify's own test suite.

EQUIVALENT = [
    ("\\frac{1}{2}", "0.5", "fraction and decimal"),
    ("\\dfrac{3}{4}", "\\frac34", "\\dfrac and brace-less \\frac"),
    ("\\tfrac83", "\\frac{8}{3}", "[external] \\tfrac"),
    ("\\tfrac{1}{2} +\\! \\frac1{72}", "\\\\dfrac{1}{2} +\\frac{1}{72}", "[external] spacing macros"),
    ("1/2", "\\frac{1}{2}", "[external] slash fraction"),
    ("0.1", ".1", "[external] leading zero"),
    ("\\frac34i", "\\frac{3}{4}i", "[external] complex"),
    ("10\\sqrt{3} + \\sqrt4", "10\\sqrt3 + \\sqrt{4}", "[external] brace-less sqrt"),
    ("\\left(x-2\\right)\\left(x+2\\right)", "(x-2)(x+2)", "[external] \\left \\right"),
    ("x^2-4", "(x-2)(x+2)", "expanded product"),
    ("2\\sqrt{2}", "\\sqrt{8}", "simplified radical"),
    ("\\frac{\\sqrt{2}}{2}", "\\frac{1}{\\sqrt{2}}", "rationalized denominator"),
    ("\\frac{1+\\sqrt5}{2}", "\\frac{\\sqrt5+1}{2}", "commuted sum"),
    ("3\\frac12", "\\frac72", "mixed number"),
    ("137 \\frac{1}{2}", "137.5", "mixed number with a space"),
    ("0.3333333", "\\frac13", "decimal to 6 places"),
    ("0.\\overline{3}", "\\frac13", "repeating decimal"),
    ("1.\\overline{142857}", "\\frac{8}{7}", "repeating decimal, longer period"),
    ("2/4", "\\frac12", "unreduced fraction has the same value"),
    ("3,\\!200", "3200", "thousands separator ,\\!"),
    ("3200", "3,\\!200", "thousands separator in the reference"),
    ("3,200", "3200", "thousands separator ,"),
    ("14{,}916", "14916", "thousands separator {,}"),
    ("1\\,000\\,000", "10^6", "thin-space thousands separator"),
    ("1~000", "1000", "tie as thousands separator"),
    ("1,000.5", "1000.5", "separator with decimals"),
    ("\\$1,\\!000.50", "1000.5", "dollars and separator"),
    ("10", "\\$10", "[external] dollar sign"),
    ("\\$ 32", "32", "dollar sign with space"),
    ("a_n=2n+1", "2n+1", "sequence formula named"),
    ("2n+1", "a_n=2n+1", "sequence formula named in the reference"),
    ("f(x)=x^2", "x^2", "function named"),
    ("x=1", "1", "variable named"),
    ("1", "x=1", "variable named in the reference"),
    ("k = \\frac{1}{3}", "1/3", "[external] last = is the answer"),
    ("y=2x+3", "2x+3", "line named"),
    ("2x-y+3=0", "y=2x+3", "rearranged equation"),
    ("y^2+x^2=25", "x^2+y^2=25", "commuted equation"),
    ("( 1 ,2 )", "(1,2)", "tuple spacing"),
    ("(1,2,3)", "(1, 2, 3)", "triple spacing"),
    ("\\left(3, \\frac{\\pi}{2}\\right)", "(3,\\frac{\\pi}{2})", "tuple with \\left"),
    ("x=2,y=3", "(2,3)", "solution written as assignments"),
    ("1,2", "2,1", "solution list in any order"),
    ("10, 4, -2", "4, 10, -2", "[external, disagrees] a bare comma list is a solution set in MATH"),
    ("\\{1,2\\}", "\\{2,1\\}", "set order"),
    ("1 \\text{ and } 2", "1,2", "list with 'and'"),
    ("-2,2", "\\pm2", "plus-minus"),
    ("(1,8,19),(2,7,13),(4,5,7)", "(4,5,7),(1,8,19),(2,7,13)", "list of triples in any order"),
    ("f(x)=x,f(x)=-x", "f(x)=-x, f(x)=x", "list of functions"),
    ("(-\\infty,3)", "(-\\infty, 3)", "interval spacing"),
    ("x \\in (0,1)", "(0,1)", "interval with membership"),
    ("0<x<1", "(0,1)", "inequality for an interval"),
    ("x>3", "(3,\\infty)", "one-sided inequality"),
    ("x \\le 3", "(-\\infty,3]", "closed inequality"),
    ("|x|>1", "(-\\infty,-1)\\cup(1,\\infty)", "absolute value inequality"),
    ("x \\geq 1", "[1, \\infty)", "inequality with \\geq"),
    ("(1,\\infty)", "x>1", "interval for an inequality"),
    ("x \\ne 2", "(-\\infty,2)\\cup(2,\\infty)", "all but one point"),
    ("a=2, b=3", "(2,3)", "named pair"),
    ("\\mathbb{R}", "(-\\infty,\\infty)", "the reals"),
    ("\\emptyset", "\\varnothing", "empty set macros"),
    ("5\\text{ cm}", "5", "unit in \\text"),
    ("10\\text{ units}", "10 ", "[external] units"),
    ("8 \\text{ cm}^2", "8", "squared unit"),
    ("4\\sqrt{3}\\text{ square units}", "4\\sqrt3", "unit words"),
    ("45\\text{ minutes}", "45", "time unit"),
    ("\\frac{600}{7}\\text{ km/h}", "\\frac{600}{7}", "compound unit"),
    ("\\frac{1}{3} \\textbf{meters}", "1/3", "[external] \\textbf unit"),
    ("5 \\mbox{ cm}", "5", "\\mbox unit"),
    ("30^\\circ", "30", "degrees"),
    ("30^{\\circ}", "30", "degrees in braces"),
    ("30°", "30", "unicode degrees"),
    ("30", "30^\\circ", "degrees in the reference"),
    ("10\\%", "10", "[external] percent sign"),
    ("4.2\\%", "4.2", "percent sign on a decimal"),
    ("50", "50\\%", "percent sign in the reference"),
    ("12.5\\%", "\\frac18", "percent as a probability"),
    ("5\\%", "0.05", "percent as a decimal"),
    ("\\text{Monday}", "Monday", "text answer"),
    ("\\text{Sunday}", "\\text{sunday}", "text answer, case"),
    ("\\text{(C)}", "C", "multiple-choice letter"),
    ("\\textbf{(A)}", "\\text{(A)}", "bold letter"),
    ("\\pi/2", "\\frac{\\pi}{2}", "pi over two"),
    ("π/2", "\\frac{\\pi}{2}", "unicode pi"),
    ("√2", "\\sqrt2", "unicode root"),
    ("½", "\\frac12", "unicode half"),
    ("x²", "x^2", "unicode square"),
    ("∞", "\\infty", "unicode infinity"),
    ("−3", "-3", "unicode minus"),
    ("3\\times 2", "6", "product"),
    ("10^{10}", "10000000000", "power of ten"),
    ("1.0", "1", "trailing zero"),
    ("5.", "5", "sentence full stop"),
    ("\\displaystyle\\frac12", "0.5", "\\displaystyle"),
    ("\\sqrt[3]{8}", "2", "cube root"),
    ("\\log_2 8", "3", "logarithm"),
    ("2\\pi r", "2r\\pi", "commuted product"),
    ("\\begin{pmatrix}1\\\\2\\end{pmatrix}", "\\begin{pmatrix} 1 \\\\ 2 \\end{pmatrix}", "vector spacing"),
    ("\\begin{bmatrix}1&2\\\\3&4\\end{bmatrix}", "\\begin{pmatrix}1&2\\\\3&4\\end{pmatrix}", "matrix brackets"),
    ("The final answer is $\\boxed{\\frac{14}{3}}$.", "\\frac{14}{3}", "a whole completion"),
    ("First \\boxed{2}, no wait: \\boxed{3}.", "3", "the last box counts"),
    ("$\\boxed{\\text{Evelyn}}$", "\\text{Evelyn}", "[external] boxed text"),
    ("\\boxed{5}", "$5$", "reference in dollars"),
]

NOT_EQUIVALENT = [
    ("\\tfrac{1}{2} + \\frac1{72}", "\\\\frac{1}{2} + 2/3", "[external] different sums"),
    ("10, 4, 2", "4, 12, 2", "[external] different lists"),
    ("10\\text{ units}", "100 ", "[external] different numbers with units"),
    ("5x - 7y + 11z + 4 = 0", "x + y - z + 2 = 0", "[external] different planes"),
    ("(3,200)", "3200", "a pair is not a number with a separator"),
    ("1,2", "12", "a list is not a number"),
    ("12", "1,2", "a number is not a list"),
    ("1, 234", "1234", "a comma then a space separates items"),
    ("(1,000,000)", "1000000", "a triple is not a number"),
    ("(1,2)", "(2,1)", "ordered pair order"),
    ("[1,2]", "(1,2)", "closed and open intervals"),
    ("[1,2)", "[1,2]", "half-open interval"),
    ("(-\\infty,3]", "(-\\infty,3)", "closed and open end"),
    ("x<3", "(-\\infty,3]", "strict and non-strict"),
    ("x>3", "(3,5)", "unbounded and bounded"),
    ("x<1", "(1,\\infty)", "wrong side"),
    ("2", "x>1", "a number is not a solution set"),
    ("a=3, b=2", "(2,3)", "named pair, swapped"),
    ("1.49", "1.5", "rounded differently"),
    ("(-\\infty,-1)\\cup(1,\\infty)", "(-\\infty,-1]\\cup[1,\\infty)", "union ends"),
    ("(1,8,19),(2,7,13)", "(1,8,19),(2,7,13),(4,5,7)", "missing solution"),
    ("3,4", "3,4,5", "missing list item"),
    ("1, 2, 3", "1,2", "extra list item"),
    ("2", "\\pm 2", "one of two solutions"),
    ("y=1", "x=1", "different variables"),
    ("n=3", "m=3", "different names"),
    ("f(x)=-x", "f(x)=x", "different functions"),
    ("y=2x+3", "y=2x+4", "different lines"),
    ("x^2+y^2=26", "x^2+y^2=25", "different circles"),
    ("2", "2x", "missing variable"),
    ("x", "y", "different variables"),
    ("x+1", "x+2", "different expressions"),
    ("2x", "2y", "different variables in a product"),
    ("2^{x}", "2x", "power and product"),
    ("x^2+2x+1", "(x-1)^2", "wrong square"),
    ("\\frac{a}{b}", "\\frac{b}{a}", "inverted fraction"),
    ("1-i", "1+i", "conjugate"),
    ("-5", "5", "sign"),
    ("-\\infty", "\\infty", "sign of infinity"),
    ("1.001", "1", "close but different"),
    ("3", "3.0001", "close but different"),
    ("\\frac{1}{3}", "0.333", "rounded too early"),
    ("0.14", "\\frac17", "rounded too early"),
    ("\\pi", "3.14", "pi is not 3.14"),
    ("\\sqrt{2}", "2", "root and number"),
    ("\\sqrt{8}", "2.828", "rounded root"),
    ("\\frac{\\sqrt{2}}{2}", "\\frac{1}{2}", "different constants"),
    ("\\frac{\\pi}{6}", "30^\\circ", "radians are not degrees"),
    ("1\\frac{1}{2}", "\\frac{1}{2}", "mixed number's whole part"),
    ("\\text{Tuesday}", "\\text{Monday}", "different days"),
    ("\\text{Evelyn}", "\\text{Devon}", "different names in text"),
    ("\\text{even}", "\\text{odd}", "different words"),
    ("\\text{yes}", "\\text{no}", "yes and no"),
    ("0", "\\text{none}", "zero is not none"),
    ("C", "\\text{(D)}", "different letters"),
    ("(A)", "B", "different letters"),
    ("\\begin{pmatrix}1\\\\2\\end{pmatrix}", "\\begin{pmatrix}2\\\\1\\end{pmatrix}", "different vectors"),
    ("\\begin{pmatrix}1&2\\\\3&5\\end{pmatrix}", "\\begin{pmatrix}1&2\\\\3&4\\end{pmatrix}", "different matrices"),
    ("1,5", "1.5", "a comma is not a decimal point"),
    ("\\boxed{5} and later 6", "6", "the boxed answer counts, not later text"),
    ("The answer is 5.", "5", "a completion without a box has no answer"),
    ("\\boxed{5", "5", "unclosed box"),
    ("", "5", "empty prediction"),
    ("\\boxed{}", "", "empty answers are never correct"),
    ("__import__('os').system('ls')", "0", "code is text, not a value"),
]


@pytest.mark.parametrize("pred, ref, why", EQUIVALENT, ids=[c[2] for c in EQUIVALENT])
def test_equivalent_answers(grader, pred, ref, why):
    [result] = grader.grade([pred], [ref])
    assert result.correct and not result.timeout


@pytest.mark.parametrize("pred, ref, why", NOT_EQUIVALENT, ids=[c[2] for c in NOT_EQUIVALENT])
def test_not_equivalent_answers(grader, pred, ref, why):
    [result] = grader.grade([pred], [ref])
    assert not result.correct and not result.timeout


# ---------------------------------------------------------------------------------------------------
# Real data

# MATH-500 rows whose reference solution's last box does not grade as the `answer` field: none
# (the answer field was taken from that box, so every pair is equivalent, most of them identical).
MATH500_EXCEPTIONS: dict[str, str] = {}


def _reformat(answer: str) -> str:
    """An equivalent answer written differently, inside a completion: `$` delimiters dropped, integer
    fractions as decimals (or \\dfrac), commas spaced differently, big integers with separators."""
    s = re.sub(r"(?<!\\)\$", "", answer)

    def fraction(m: re.Match) -> str:
        p, q = int(m.group(1)), int(m.group(2))
        return str(float(Fraction(p, q))) if _terminates(q) else f"\\dfrac{{{p}}}{{{q}}}"

    s = re.sub(r"(?<![\d ])\\frac\{(-?\d+)\}\{(\d+)\}", fraction, s)
    if not re.search(r"\d,(\\!)?\s*\d{3}(?!\d)", s):  # leave thousands separators alone
        s = re.sub(r"\s*,\s*", lambda m: "," if " " in m.group() else ", ", s)
    if re.fullmatch(r"\d{4,}", s):
        s = f"{int(s):,}"
    return f"Putting everything together, the answer is $\\boxed{{{s}}}$."


def _terminates(q: int) -> bool:
    """Whether 1/q has a finite decimal expansion."""
    for f in (2, 5):
        while q % f == 0:
            q //= f
    return q == 1


@needs_data
def test_math500_solutions_grade_as_their_answers(grader):
    rows = [json.loads(line) for line in (DATA / "math500.jsonl").open()]
    results = grader.grade([r["solution"] for r in rows], [r["answer"] for r in rows])
    wrong = {r["unique_id"] for r, res in zip(rows, results) if not res.correct}
    assert wrong == set(MATH500_EXCEPTIONS)
    assert 1 - len(wrong) / len(rows) >= 0.99


@needs_data
def test_math500_reformatted_answers(grader):
    """Every MATH-500 answer, rewritten by `_reformat`, grades as the original (no exceptions)."""
    rows = [json.loads(line) for line in (DATA / "math500.jsonl").open()]
    preds = [_reformat(r["answer"]) for r in rows]
    assert sum(prepare_answer(p) != prepare_answer(r["answer"]) for p, r in zip(preds, rows)) >= 90
    results = grader.grade(preds, [r["answer"] for r in rows])
    wrong = {r["unique_id"]: extract_boxed(p) for r, p, res in zip(rows, preds, results) if not res.correct}
    assert wrong == {}


# OlympiadBench answers that do not grade as their reformatted selves, and why.
OLYMPIADBENCH_EXCEPTIONS = {
    "olympiadbench/1965": "a sentence (`f(x)=ax+b, where b is an arbitrary integer, ...`): compared as text",
    "olympiadbench/2045": "`t(0,4]` is not a formula; compared as text",
}


@needs_data
def test_olympiadbench_answers_grade_as_themselves_and_reformatted(grader):
    from soar.tasks.math import load_olympiadbench

    problems, _ = load_olympiadbench(str(DATA / "olympiadbench_en_comp.jsonl"))
    refs = [p["answer"] for p in problems]
    assert all(r.correct for r in grader.grade(refs, refs))
    preds = [_reformat(r) for r in refs]
    assert sum(prepare_answer(p) != prepare_answer(r) for p, r in zip(preds, refs)) >= 200
    results = grader.grade(preds, refs)
    wrong = {p["id"] for p, res in zip(problems, results) if not res.correct}
    assert wrong == set(OLYMPIADBENCH_EXCEPTIONS)
    assert 1 - len(wrong) / len(refs) >= 0.97


# ---------------------------------------------------------------------------------------------------
# The worker pool


def test_a_hung_answer_times_out_and_the_next_ones_are_still_graded():
    with Grader(workers=1, timeout=1.0) as g:
        t = time.monotonic()
        results = g.grade(["10^{10^{10}}", "\\frac12", "3"], ["1", "0.5", "4"])
        assert time.monotonic() - t < 10
    assert [(r.correct, r.timeout) for r in results] == [(False, True), (True, False), (False, False)]
    assert 1.0 <= results[0].seconds < 2.0


def test_a_worker_killed_from_outside_is_replaced():
    with Grader(workers=1, timeout=5.0) as g:
        assert g.grade(["\\frac12"], ["0.5"])[0].correct
        os.kill(g._workers[0].process.pid, 9)  # as the kernel's OOM killer would
        g._workers[0].process.wait()
        assert [r.correct for r in g.grade(["\\frac12", "2"], ["0.5", "3"])] == [True, False]


def test_a_call_interrupted_midway_leaves_the_pool_usable():
    import signal

    def interrupt(*_):
        raise KeyboardInterrupt

    with Grader(workers=1, timeout=60.0) as g:
        previous = signal.signal(signal.SIGALRM, interrupt)
        signal.setitimer(signal.ITIMER_REAL, 0.5)
        try:
            with pytest.raises(KeyboardInterrupt):
                g.grade(["10^{10^{10}}"], ["1"])  # hangs until interrupted
        finally:
            signal.signal(signal.SIGALRM, previous)
        t = time.monotonic()
        assert [r.correct for r in g.grade(["\\frac12"], ["0.5"])] == [True]
        assert time.monotonic() - t < 10


def test_batches_with_repeats_and_parse_checks(grader):
    results = grader.grade(["\\frac12"] * 50 + ["0.3"], ["0.5"] * 50 + ["0.5"])
    assert [r.correct for r in results] == [True] * 50 + [False]
    assert grader.parses(["\\frac12", "\\boxed{x^2}", "", "\\boxed{1", "__import__('os')"]) == [
        True, True, False, False, False]


def test_grade_answers_checks_lengths():
    with pytest.raises(ValueError, match="2 predictions for 1 references"):
        grade_answers(["1", "2"], ["1"])


# ---------------------------------------------------------------------------------------------------
# soar grade


def test_cli_single_pair(capsys):
    assert main(["The answer is $\\boxed{\\dfrac{1}{2}}$.", "0.5"]) == 0
    assert capsys.readouterr().out == "correct\n"
    assert main(["\\boxed{3}", "4"]) == 1
    assert capsys.readouterr().out == "incorrect\n"


def test_cli_file(tmp_path, capsys):
    rows = [{"pred": "\\boxed{3,\\!200}", "ref": "3200"}, {"pred": "x", "ref": "y"}, {"pred": "(1, 2)", "ref": "$(1,2)$"}]
    f = tmp_path / "pairs.jsonl"
    f.write_text("\n".join(json.dumps(r) for r in rows) + "\n\n")
    assert main(["--file", str(f), "--timeout", "10"]) == 0
    out = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(o["correct"], o["timeout"]) for o in out] == [(True, False), (False, False), (True, False)]


@pytest.mark.parametrize("line, message", [
    ('{"pred": "1", "ref": ', "not valid JSON"),
    ('{"pred": "1"}', 'string fields "pred" and "ref"'),
    ('{"pred": "1", "ref": 2}', 'string fields "pred" and "ref"'),
    ('[1, 2]', 'string fields "pred" and "ref"'),
])
def test_cli_file_malformed_line(tmp_path, capsys, line, message):
    f = tmp_path / "pairs.jsonl"
    f.write_text('{"pred": "1", "ref": "1"}\n' + line + "\n")
    assert main(["--file", str(f)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert f"{f}:2: " in captured.err and message in captured.err


@pytest.mark.parametrize("argv", [[], ["1"], ["--file", "x.jsonl", "1", "2"]])
def test_cli_usage_errors(argv):
    with pytest.raises(SystemExit) as e:
        main(argv)
    assert e.value.code == 2


def _adversarial(sentinel: Path) -> list[str]:
    """Inputs meant to hang, exhaust or exploit the grader."""
    touch = f"touch {sentinel}"
    code = [f"__import__('os').system('{touch}')", f"eval(\"__import__('os').system('{touch}')\")",
            f"exec('import os; os.system(\"{touch}\")')", f"import os; os.system('{touch}')",
            "().__class__.__bases__[0].__subclasses__()", f"lambda: __import__('os').system('{touch}')",
            f"\\boxed{{__import__('os').system('{touch}')}}", f"__import__('subprocess').run(['touch', '{sentinel}'])",
            f"open('{sentinel}', 'w')", f"Symbol('x').__class__.__init__.__globals__['os'].system('{touch}')",
            f"$({touch})", f"`{touch}`", "{{7*7}}", "${jndi:ldap://x}", f"\\immediate\\write18{{{touch}}}",
            "\\input{/etc/passwd}", "\\def\\x{\\x}\\x", "\\newcommand{\\a}{\\a}\\a", "\\catcode`\\{=12"]
    huge = ["9^9^9^9", "10^{10^{10}}-10^{10^{10}}", "\\sqrt{10^{10^{10}}}", "99999999999^{99999999}",
            "\\frac{1}{0}", "0^0", "\\infty-\\infty", "\\lim_{x\\to0}\\frac{1}{x}", "\\sum_{n=1}^{10^{10}} n",
            "\\prod_{k=1}^{10^{9}} k", "\\int_0^{10^{10}} x^{x} dx", "e^{e^{e^{e^{e}}}}", "1e999999999"]
    huge += [f"{b}^{{{b}^{{{b}^{{{b}}}}}}}" for b in (2, 3, 9, 10, 99)]
    huge += [f"{b}^{{{b}^{{{e}}}}}" for b in (2, 3, 10) for e in (9, 25, 32)]
    huge += [f"(10^{{{k}}})!" for k in (5, 7, 9)] + [f"\\binom{{10^{{{k}}}}}{{10^{{{k - 1}}}}}" for k in (6, 9)]
    nested = []
    for depth in (10, 20, 30, 100, 1000, 3000):
        nested += ["{" * depth + "1" + "}" * depth, "\\frac{" * depth + "1" + "}{2}" * depth,
                   "\\sqrt{" * depth + "2" + "}" * depth, "(" * depth + "1" + ")" * depth,
                   "\\left(" * depth + "1" + "\\right)" * depth, "2^{" * depth + "2" + "}" * depth,
                   "[" * depth + "1" + "]" * depth, "\\boxed{" * depth + "1" + "}" * depth]
    nested += ["{" * 5000, "}" * 5000, "\\begin{pmatrix}" * 500, "\\\\" * 5000]
    big = ["x" * 100_000, "1+" * 50_000 + "1", "\\boxed{" + "a" * 100_000 + "}", "9" * 100_000,
           ("(1," * 20_000) + "1" + ")" * 20_000, "\\frac12" * 15_000, "1" + ",\\!000" * 15_000,
           "x^" * 30_000 + "x", "\\sqrt" * 20_000 + "2", "," * 100_000]
    weird = ["∑∫√∞≈≠", "😀" * 100, "\u202eRTL\u202c", "\u200b1\u200b", "\x00", "\ud800", "１２３", "٣", "Ⅻ",
             "\\x", "\\\\", "\\", "{", "}", "$", "$$", "\\(", "\\[", "%", "&", "#", "_", "^", "~",
             "\\boxed{\\boxed{", "\\text{" * 50, "\\verb|x|", "\\mathrm{\\mathrm{\\mathrm{x}}}", "\\left.",
             "\\right)", "\\overline{", "0.\\overline{" + "9" * 500 + "}"]
    rng = random.Random(0)
    tokens = ["\\frac", "\\sqrt", "{", "}", "(", ")", "[", "]", "^", "_", "\\left(", "\\right)", "\\pi", "x",
              "1", "9", ",", "=", "<", "\\le", "\\cup", "\\text{a}", "\\%", "\\$", "\\\\", "&", "!", "\\infty",
              "\\begin{pmatrix}", "\\end{pmatrix}", "\\sum", "\\int", "\\lim", "\\log", "'", '"', " "]
    soup = ["".join(rng.choice(tokens) for _ in range(rng.randint(5, 400))) for _ in range(60)]
    noise = ["".join(chr(rng.randint(1, 0x2FFF)) for _ in range(rng.randint(1, 300))) for _ in range(20)]
    return list(dict.fromkeys(code + huge + nested + big + weird + soup + noise))


def test_adversarial_inputs_through_the_cli(tmp_path):
    sentinel = tmp_path / "SENTINEL"
    inputs = _adversarial(sentinel)
    assert len(inputs) >= 200
    refs = ["1", "x", "\\frac{1}{2}"]
    rows = [{"pred": s, "ref": refs[i % 3]} for i, s in enumerate(inputs)]
    rows += [{"pred": "\\boxed{1}", "ref": s} for s in inputs[::4]]  # hostile references too
    f = tmp_path / "adversarial.jsonl"
    f.write_text("".join(json.dumps(r) + "\n" for r in rows))
    timeout = 2.0
    t = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "soar.grading", "--file", str(f), "--timeout", str(timeout),
                           "--workers", "4"], cwd=tmp_path, capture_output=True, text=True, timeout=600)
    elapsed = time.monotonic() - t
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = [json.loads(line) for line in proc.stdout.splitlines()]
    assert len(out) == len(rows)
    assert max(o["seconds"] for o in out) <= timeout + 1
    assert not sentinel.exists() and not list(tmp_path.glob("SENTINEL*"))
    n_timeouts = sum(o["timeout"] for o in out)
    print(f"{len(rows)} adversarial rows in {elapsed:.1f} s, {n_timeouts} timeouts, "
          f"slowest {max(o['seconds'] for o in out):.2f} s")
    assert not any(o["correct"] and o["timeout"] for o in out)

