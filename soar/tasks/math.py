"""Competition mathematics: MATH, HARP and OlympiadBench problems with boxed answers (SOAR_SPEC §2-§4).

A problem is a dict `{"id": str, "question": str, "answer": str}`. Every loader reads a local file
(`.jsonl`, `.json`, `.parquet`), a folder written by `datasets.Dataset.save_to_disk`, or a hub id
(`datasets.load_dataset(source, config, split=split)`), and returns `(problems, skipped)`: `skipped`
counts the rows that have no usable answer. A malformed row (bad JSON, a missing field) stops the load
with an error naming the file, the line (or row) and the problem.
"""

from __future__ import annotations

import json
from functools import partial
from pathlib import Path
from typing import Callable, Iterator

from soar.grading import Grader, extract_boxed
from soar.tasks import Task

# ---------------------------------------------------------------------------------------------------
# Prompts (SOAR_SPEC §3, verbatim; the closing tag the paper prints as `<question>` is `</question>`)

TEACHER_PROMPT = """\
You are generating a new math problem for a math assistant.
Allowed topics: Algebra, Counting and Probability, Geometry, Intermediate Algebra, Number Theory,
Prealgebra, or Precalculus.
Output rules (follow EXACTLY):
- Provide the final formatted problem in this structure: <question>[full math question]</question><answer>\\boxed{[answer]}</answer>
- Any explanations, steps, or reasoning about the problem goes OUTSIDE the <question> and <answer> tags.
Constraints:
- The problem must be original, challenging, and require at least 2--3 steps of reasoning.
- Output exactly ONE problem. You MUST follow the specified format EXACTLY.
Begin now:"""

STUDENT_PROMPT = """\
A conversation between User and Assistant. The user asks a question, and the Assistant solves it. The assistant
first shows the complete reasoning process step by step, then provides the final answer in \\boxed{}. The
assistant must always follow the format: 'User: [question] Assistant: [detailed reasoning] The final answer is:
\\boxed{[answer]}.
User: <QUESTION> Assistant:"""


def student_prompt(question: str) -> str:
    """The student prompt (SOAR_SPEC §3) for one question."""
    return STUDENT_PROMPT.replace("<QUESTION>", question)


def chat_prompt(tokenizer, text: str) -> str:
    """`text` as one user turn in a Hugging Face tokenizer's chat template, ready for the reply."""
    return tokenizer.apply_chat_template([{"role": "user", "content": text}], tokenize=False,
                                         add_generation_prompt=True)


# ---------------------------------------------------------------------------------------------------
# Teacher output filter (SOAR_SPEC §4)

MAX_QUESTION_CHARS = 2000
"""Longest question kept, in characters: about the teacher's whole 512-token budget, so at the paper's
settings only a degenerate, repeating question reaches it; it bounds student prompts if that budget grows."""


def _last_between(text: str, tag: str) -> str | None:
    """Content of the last `<tag>...</tag>` pair (a template echoed before the real problem is skipped)."""
    end = text.rfind(f"</{tag}>")
    start = text.rfind(f"<{tag}>", 0, end)
    return None if end < 0 or start < 0 else text[start + len(tag) + 2 : end]


def split_teacher_output(text: str, max_question_chars: int = MAX_QUESTION_CHARS) -> tuple[str, str] | str:
    """The format part of the §4 filter: (question, boxed answer content), or a rejection reason:
    "no_tags" (a question or answer tag pair is missing), "empty_question", "too_long" (question over
    `max_question_chars`), "no_box" (no closed `\\boxed{}` in the answer) or "unparsable" (empty box)."""
    question, answer = _last_between(text, "question"), _last_between(text, "answer")
    if question is None or answer is None:
        return "no_tags"
    question = question.strip()
    if not question:
        return "empty_question"
    if len(question) > max_question_chars:
        return "too_long"
    boxed = extract_boxed(answer)
    if boxed is None:
        return "no_box"
    return (question, boxed.strip()) if boxed.strip() else "unparsable"


def parse_teacher_output(text: str, grader: Grader, max_question_chars: int = MAX_QUESTION_CHARS) -> tuple[str, str] | str:
    """SOAR_SPEC §4 filter: (question, boxed answer) if the sample has both tag pairs, a boxed answer and
    that answer parses with Math-Verify; else one of "no_tags", "empty_question", "too_long", "no_box",
    "unparsable". The parse runs in `grader`'s worker processes, under its timeout (a timeout is
    "unparsable"): Math-Verify takes exponential time on some short inputs (20 nested braces: seconds)."""
    out = split_teacher_output(text, max_question_chars)
    if isinstance(out, str):
        return out
    return out if grader.parses([out[1]])[0] else "unparsable"


# ---------------------------------------------------------------------------------------------------
# Loaders

_FILE_SUFFIXES = (".jsonl", ".json", ".parquet")


def _rows(source: str, split: str, config: str | None) -> Iterator[tuple[str, dict]]:
    """(location for error messages, row) for each row of a local file, a saved folder or a hub dataset."""
    path = Path(source)
    if path.suffix in _FILE_SUFFIXES and not path.exists():
        raise FileNotFoundError(source)
    # pyarrow and datasets are imported only on the paths that need them: datasets takes seconds.
    if path.is_file() and path.suffix == ".parquet":
        import pyarrow.parquet as pq

        for i, row in enumerate(pq.read_table(path).to_pylist()):
            yield f"{source}: row {i}", row
        return
    if path.is_file():
        text = path.read_text(encoding="utf-8")
        if text.lstrip().startswith("["):  # a JSON array; anything else is read as JSON Lines
            try:
                rows = json.loads(text)
            except json.JSONDecodeError as e:
                raise ValueError(f"{source}: line {e.lineno}: not valid JSON ({e.msg})") from None
            for i, row in enumerate(rows):
                yield f"{source}: item {i}", row
            return
        for n, line in enumerate(text.split("\n"), 1):  # not splitlines(): JSON strings may hold U+2028
            if line.strip():
                try:
                    yield f"{source}: line {n}", json.loads(line)
                except json.JSONDecodeError as e:
                    raise ValueError(f"{source}: line {n}: not valid JSON ({e.msg})") from None
        return
    import datasets

    if path.is_dir():
        data = datasets.load_from_disk(source)
        data = data[split] if isinstance(data, datasets.DatasetDict) else data
    else:
        data = datasets.load_dataset(source, config, split=split)
    for i, row in enumerate(data):
        yield f"{source}: row {i}", row


def _load(source: str, split: str, config: str | None,
          to_problem: Callable[[dict, int], dict | None]) -> tuple[list[dict], int]:
    """Apply `to_problem` (a row and its index -> a problem, or None to skip it) to every row."""
    problems, skipped, ids = [], 0, set()
    for i, (where, row) in enumerate(_rows(source, split, config)):
        if not isinstance(row, dict):
            raise ValueError(f"{where}: expected a JSON object, got {type(row).__name__}")
        try:
            problem = to_problem(row, i)
        except KeyError as e:
            raise ValueError(f"{where}: missing field {e.args[0]!r}") from None
        except ValueError as e:
            raise ValueError(f"{where}: {e}") from None
        if problem is None:
            skipped += 1
        elif problem["id"] in ids:
            raise ValueError(f"{where}: duplicate id {problem['id']!r}")
        else:
            ids.add(problem["id"])
            problems.append(problem)
    return problems, skipped


def _text(row: dict, field: str) -> str:
    """A required field as stripped text (see `_as_text`)."""
    return _as_text(row[field], field)


def _as_text(value, field: str) -> str:
    """A field's value as stripped text: strings and numbers are kept, null is empty, anything else is an error."""
    if value is None:
        return ""
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise ValueError(f"field {field!r} should be text, got {type(value).__name__}")
    return str(value).strip()


def _problem(id: str, question: str, answer: str) -> dict | None:
    if not id:
        raise ValueError("empty id")
    if not question:
        raise ValueError("empty question")
    return {"id": id, "question": question, "answer": answer} if answer else None


def math_problem(row: dict, index: int) -> dict | None:
    """A MATH row -> problem. MATH-500 rows have `answer` and `unique_id`; rows of the original MATH
    release have neither, so the answer is the last box of `solution` and the id `math/<row index>`."""
    answer = _text(row, "answer") if "answer" in row else (extract_boxed(_text(row, "solution")) or "").strip()
    return _problem(str(row.get("unique_id") or f"math/{index}"), _text(row, "problem"), answer)


def harp_problem(row: dict, index: int) -> dict | None:
    """A HARP row (github.com/aadityasingh/HARP: problem, answer, year, contest, number, level, subject,
    multiple_choice_only, solution_1, ...) -> problem with HARP's own id `year/contest/number`.
    Problems marked `multiple_choice_only` cannot be answered without their choices, so they are
    skipped, as HARP's own short-answer evaluation does."""
    if row.get("multiple_choice_only"):
        return None
    key = [row.get(k) for k in ("year", "contest", "number")]
    id = "/".join(map(str, key)) if None not in key else f"harp/{index}"
    return _problem(id, _text(row, "problem"), _text(row, "answer"))


def olympiadbench_problem(row: dict, index: int) -> dict | None:
    """An OlympiadBench row -> problem with id `olympiadbench/<id>`.

    `context` (shared set-up of related questions), when present, comes before the question. Several
    final answers are joined with ", " (the grader reads a comma list as a set). A unit is not part of the
    answer, as in OlympiadBench; it is stated at the end of the question ("The unit of the answer is
    km."), as OlympiadBench's own prompts do, since some questions do not name it. The `error` field
    (a numeric tolerance on a few rows) is not used: the grader compares numbers to 6 decimals.
    """
    answers = row["final_answer"]
    if not isinstance(answers, list):
        raise ValueError(f"field 'final_answer' should be a list, got {type(answers).__name__}")
    answer = ", ".join(a for a in (_as_text(a, "final_answer") for a in answers) if a)
    question = _text(row, "question")
    if context := _as_text(row.get("context"), "context"):
        question = f"{context}\n\n{question}"
    if unit := _as_text(row.get("unit"), "unit"):
        unit = f"${unit}$" if "$" not in unit and ("\\" in unit or "^" in unit) else unit
        question = f"{question}\n\nThe unit of the answer is {unit}."
    return _problem(f"olympiadbench/{row['id']}", question, answer)


def load_math(source: str, split: str = "test", config: str | None = None) -> tuple[list[dict], int]:
    """MATH problems (e.g. /work/shared/data/math500.jsonl, or the hub's "HuggingFaceH4/MATH-500");
    returns (problems, skipped rows)."""
    return _load(source, split, config, math_problem)


def load_harp(source: str, split: str = "train", config: str | None = None) -> tuple[list[dict], int]:
    """HARP problems from HARP.jsonl (unzipped from the HARP repository) or a hub copy; returns
    (problems, skipped rows)."""
    return _load(source, split, config, harp_problem)


def load_olympiadbench(source: str, split: str = "train", config: str | None = None) -> tuple[list[dict], int]:
    """OlympiadBench problems (e.g. /work/shared/data/olympiadbench_en_comp.jsonl, or the hub's
    "Hothan/OlympiadBench" with config "OE_TO_maths_en_COMP"); returns (problems, skipped rows)."""
    return _load(source, split, config, olympiadbench_problem)


def load_problems(source: str, question_field: str = "question", answer_field: str = "answer",
                  id_field: str | None = None, split: str = "train", config: str | None = None) -> tuple[list[dict], int]:
    """Problems from any dataset, given its field names; without `id_field` the id is the row index.
    Returns (problems, skipped rows)."""
    def to_problem(row: dict, index: int) -> dict | None:
        id = _text(row, id_field) if id_field else str(index)
        return _problem(id, _text(row, question_field), _text(row, answer_field))

    return _load(source, split, config, to_problem)


# ---------------------------------------------------------------------------------------------------
# The task


def make_task(tokenizer=None, max_question_chars: int = MAX_QUESTION_CHARS, grade_timeout: float = 5.0,
              grade_workers: int = 4) -> Task:
    """The maths task: SOAR prompts (in `tokenizer`'s chat template when one is given), the §4 teacher
    filter and Math-Verify grading, both run by one `Grader` (`grade_workers` processes, started on
    first use, `grade_timeout` seconds per answer)."""
    grader = Grader(workers=grade_workers, timeout=grade_timeout)
    wrap = partial(chat_prompt, tokenizer) if tokenizer is not None else (lambda text: text)
    return Task(
        name="math",
        teacher_prompt=wrap(TEACHER_PROMPT),
        student_prompt=lambda question: wrap(student_prompt(question)),
        parse_teacher_output=partial(parse_teacher_output, grader=grader, max_question_chars=max_question_chars),
        grade=lambda completions, answers: [r.correct for r in grader.grade(completions, answers)],
    )
