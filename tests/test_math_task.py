"""soar.tasks.math: prompts, the teacher output filter, the loaders and the task."""

import json
import re
from pathlib import Path

import pytest
from hypothesis import given, settings, strategies as st

from soar.grading import Grader
from soar.tasks.math import (
    MAX_QUESTION_CHARS,
    STUDENT_PROMPT,
    TEACHER_PROMPT,
    chat_prompt,
    load_harp,
    load_math,
    load_olympiadbench,
    load_problems,
    make_task,
    parse_teacher_output,
    split_teacher_output,
    student_prompt,
)

DATA = Path("/work/shared/data")
SPEC = Path("/work/shared/docs/SOAR_SPEC.md")
needs_data = pytest.mark.skipif(not DATA.is_dir(), reason=f"benchmark files not at {DATA}")

REASONS = {"no_tags", "no_box", "unparsable", "empty_question", "too_long"}


@pytest.fixture(scope="module")
def grader():
    with Grader(workers=1, timeout=10.0) as g:
        yield g


def _tokenizer():
    """A real Hugging Face tokenizer with a small chat template (no download needed)."""
    from tokenizers import Tokenizer
    from tokenizers.models import WordLevel
    from transformers import PreTrainedTokenizerFast

    tok = PreTrainedTokenizerFast(tokenizer_object=Tokenizer(WordLevel({"[UNK]": 0}, unk_token="[UNK]")))
    tok.chat_template = ("{% for m in messages %}<|{{ m.role }}|>{{ m.content }}<|end|>{% endfor %}"
                         "{% if add_generation_prompt %}<|assistant|>{% endif %}")
    return tok


# ---------------------------------------------------------------------------------------------------
# Prompts


@pytest.mark.skipif(not SPEC.exists(), reason="SOAR_SPEC.md not found")
def test_prompts_are_the_spec_verbatim():
    section = SPEC.read_text().split("## 3. Prompts")[1].split("## 4.")[0]
    teacher, student = re.findall(r"```\n(.*?)\n```", section, re.DOTALL)
    assert TEACHER_PROMPT == teacher
    assert STUDENT_PROMPT == student


def test_student_prompt():
    prompt = student_prompt("What is $1+1$?")
    assert prompt.endswith("User: What is $1+1$? Assistant:")
    assert "<QUESTION>" not in prompt and prompt.startswith("A conversation between User and Assistant.")


def test_chat_template_wrapping():
    tok = _tokenizer()
    assert chat_prompt(tok, "hi") == "<|user|>hi<|end|><|assistant|>"
    task = make_task(tokenizer=tok)
    assert task.teacher_prompt == f"<|user|>{TEACHER_PROMPT}<|end|><|assistant|>"
    assert task.student_prompt("Q?") == f"<|user|>{student_prompt('Q?')}<|end|><|assistant|>"


# ---------------------------------------------------------------------------------------------------
# Teacher output filter


@pytest.mark.parametrize("text, expected", [
    ("<question>What is 2+3?</question><answer>\\boxed{5}</answer>", ("What is 2+3?", "5")),
    ("Here it is.\n<question>\n Find $x$. \n</question>\n<answer>So \\boxed{\\frac{1}{2}}.</answer> Reasoning...",
     ("Find $x$.", "\\frac{1}{2}")),
    ("Format: <question>[full math question]</question><answer>\\boxed{[answer]}</answer>\n"
     "<question>Real one?</question><answer>\\boxed{7}</answer>", ("Real one?", "7")),  # the last pair counts
    ("<question>Q?</question>", "no_tags"),
    ("<answer>\\boxed{1}</answer>", "no_tags"),
    ("<question>Q?<question><answer>\\boxed{1}</answer>", "no_tags"),  # the paper's typo is not accepted
    ("<question>Q?</question><answer>\\boxed{1}", "no_tags"),
    ("no tags at all", "no_tags"),
    ("<question>  \n </question><answer>\\boxed{1}</answer>", "empty_question"),
    ("<question>" + "x" * (MAX_QUESTION_CHARS + 1) + "</question><answer>\\boxed{1}</answer>", "too_long"),
    ("<question>Q?</question><answer>5</answer>", "no_box"),
    ("<question>Q?</question><answer>\\boxed{5</answer>", "no_box"),
    ("<question>Q?</question><answer>\\boxed{ }</answer>", "unparsable"),
])
def test_split_teacher_output(text, expected):
    assert split_teacher_output(text) == expected


def test_too_long_is_a_keyword():
    text = "<question>" + "y" * 50 + "</question><answer>\\boxed{1}</answer>"
    assert split_teacher_output(text, max_question_chars=49) == "too_long"
    assert split_teacher_output(text, max_question_chars=50) == ("y" * 50, "1")


@pytest.mark.parametrize("answer, expected", [
    ("\\boxed{\\frac{3}{4}}", "\\frac{3}{4}"),
    ("\\boxed{(1, 2)}", "(1, 2)"),
    ("\\boxed{\\text{Monday}}", "\\text{Monday}"),
    ("\\boxed{__import__('os').system('ls')}", "unparsable"),
    ("\\boxed{" + "{" * 30 + "1" + "}" * 30 + "}", "unparsable"),  # too deep to parse in reasonable time
    ("\\boxed{x" + "+x" * 600 + "}", "unparsable"),  # too long
    ("\\boxed{\\frac{1}{2}", "no_box"),
])
def test_parse_teacher_output_checks_the_answer_parses(grader, answer, expected):
    out = parse_teacher_output(f"<question>Q?</question><answer>{answer}</answer>", grader)
    assert out == (("Q?", expected) if expected not in REASONS else expected)


_tags = st.sampled_from(["<question>", "</question>", "<answer>", "</answer>", "\\boxed{", "\\boxed", "{", "}",
                         "\\frac{1}{2}", "x", " ", "\n", "$", "\\"])


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.text(), st.lists(st.one_of(_tags, st.text(max_size=5)), max_size=30).map("".join)))
def test_split_teacher_output_never_crashes(text):
    out = split_teacher_output(text)
    assert out in REASONS or (isinstance(out, tuple) and out[0] and out[1] and len(out[0]) <= MAX_QUESTION_CHARS)


@settings(max_examples=40, deadline=None)
@given(question=st.text(min_size=1, max_size=50).filter(lambda s: "<" not in s and s.strip()),
       answer=st.text(max_size=30), noise=st.text(max_size=30))
def test_parse_teacher_output_never_crashes(grader, question, answer, noise):
    out = parse_teacher_output(f"{noise}<question>{question}</question><answer>\\boxed{{{answer}}}</answer>", grader)
    assert out in REASONS or out == (question.strip(), out[1])


# ---------------------------------------------------------------------------------------------------
# Loaders


def _write_jsonl(path: Path, rows: list) -> str:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return str(path)


@needs_data
def test_load_math500():
    problems, skipped = load_math(str(DATA / "math500.jsonl"))
    assert (len(problems), skipped) == (500, 0)
    assert problems[0] == {
        "id": "test/precalculus/807.json",
        "question": problems[0]["question"],
        "answer": "\\left( 3, \\frac{\\pi}{2} \\right)",
    }
    assert problems[0]["question"].startswith("Convert the point $(0,3)$")


@needs_data
def test_load_olympiadbench():
    problems, skipped = load_olympiadbench(str(DATA / "olympiadbench_en_comp.jsonl"))
    assert (len(problems), skipped) == (675, 0)
    by_id = {p["id"]: p for p in problems}
    assert by_id["olympiadbench/1606"]["answer"] == "2"
    assert by_id["olympiadbench/2419"]["question"].endswith("in $\\mathrm{cm}^{2}$.\n\nThe unit of the answer is $cm^2$.")
    assert by_id["olympiadbench/1760"]["question"].endswith("The unit of the answer is $^{\\circ}$.")
    assert by_id["olympiadbench/2253"]["question"].endswith("The unit of the answer is minute.")


def test_olympiadbench_rows(tmp_path):
    rows = [
        {"id": 1, "question": "Find them.", "final_answer": ["$1$", "$2$"], "context": "Let $f(x)=x$.", "unit": None},
        {"id": 2, "question": "No answer.", "final_answer": [], "context": None, "unit": None},
        {"id": 3, "question": "Null answer.", "final_answer": None, "context": None, "unit": None},
    ]
    problems, skipped = load_olympiadbench(_write_jsonl(tmp_path / "ob.jsonl", rows[:2]))
    assert skipped == 1
    assert problems == [{"id": "olympiadbench/1", "question": "Let $f(x)=x$.\n\nFind them.", "answer": "$1$, $2$"}]
    with pytest.raises(ValueError, match=r"ob3.jsonl: line 1: field 'final_answer' should be a list"):
        load_olympiadbench(_write_jsonl(tmp_path / "ob3.jsonl", rows[2:]))


def test_math_rows_without_answer_field_use_the_solution_box(tmp_path):
    rows = [{"problem": "1+1?", "solution": "It is $\\boxed{2}$.", "level": "Level 1", "type": "Algebra"},
            {"problem": "No box?", "solution": "It is 2.", "level": "Level 1", "type": "Algebra"}]
    problems, skipped = load_math(_write_jsonl(tmp_path / "math.jsonl", rows))
    assert problems == [{"id": "math/0", "question": "1+1?", "answer": "2"}] and skipped == 1


def test_harp_rows(tmp_path):
    rows = [
        {"year": 2019, "contest": "AMC_10A", "number": 5, "level": 2, "subject": "algebra", "multiple_choice_only": False,
         "problem": "What is $2+2$?", "answer": "$4$", "solution_1": "...", "num_solutions": 1},
        {"year": 2019, "contest": "AMC_10A", "number": 6, "level": 2, "subject": "algebra", "multiple_choice_only": True,
         "problem": "Which of the following?", "answer": "3", "solution_1": "...", "num_solutions": 1},
        {"year": 2020, "contest": "AIME", "number": 1, "level": 5, "subject": "geometry", "multiple_choice_only": False,
         "problem": "Find it.", "answer": None, "solution_1": "...", "num_solutions": 1},
    ]
    problems, skipped = load_harp(_write_jsonl(tmp_path / "HARP.jsonl", rows))
    assert problems == [{"id": "2019/AMC_10A/5", "question": "What is $2+2$?", "answer": "$4$"}]
    assert skipped == 2


def test_generic_loader_with_field_mapping(tmp_path):
    rows = [{"q": "What is 6*7?", "a": 42, "key": "p1"}, {"q": "Empty?", "a": "", "key": "p2"},
            {"q": "Float\u2028?", "a": 0.5, "key": "p3"}]
    path = tmp_path / "mine.jsonl"
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    problems, skipped = load_problems(str(path), question_field="q", answer_field="a", id_field="key")
    assert problems == [{"id": "p1", "question": "What is 6*7?", "answer": "42"},
                        {"id": "p3", "question": "Float\u2028?", "answer": "0.5"}]
    assert skipped == 1
    assert [p["id"] for p in load_problems(str(path), question_field="q", answer_field="a")[0]] == ["0", "2"]


@pytest.mark.parametrize("lines, message", [
    (['{"question": "a", "answer": "1"}', '{"question": "b", "answer": "2"}', '{"question": "c", "answer": '],
     r"bad.jsonl: line 3: not valid JSON"),
    (['{"question": "a", "answer": "1"}', '{"question": "b"}'], r"bad.jsonl: line 2: missing field 'answer'"),
    (['{"question": "a", "answer": "1"}', '', '[1, 2]'], r"bad.jsonl: line 3: expected a JSON object, got list"),
    (['{"question": "", "answer": "1"}'], r"bad.jsonl: line 1: empty question"),
    (['{"question": "a", "answer": {"x": 1}}'], r"bad.jsonl: line 1: field 'answer' should be text, got dict"),
    (['{"question": "a", "answer": "1", "id": "x"}', '{"question": "b", "answer": "2", "id": "x"}'],
     r"bad.jsonl: line 2: duplicate id 'x'"),
])
def test_malformed_rows_stop_the_load(tmp_path, lines, message):
    path = _write_jsonl(tmp_path / "bad.jsonl", lines)
    with pytest.raises(ValueError, match=message):
        load_problems(path, id_field="id" if "id" in lines[0] else None)


def test_malformed_json_array(tmp_path):
    path = tmp_path / "rows.json"
    path.write_text('[\n {"question": "a", "answer": "1"},\n {"question": "b" "answer": "2"}\n]')
    with pytest.raises(ValueError, match=r"rows.json: line 3: not valid JSON"):
        load_problems(str(path))


def test_missing_file():
    with pytest.raises(FileNotFoundError):
        load_math("/nonexistent/math.jsonl")


MATH_ROWS = [{"problem": f"What is {i}+{i}?", "solution": f"$\\boxed{{{2 * i}}}$", "answer": "" if i == 3 else str(2 * i),
              "subject": "Prealgebra", "level": 1, "unique_id": f"test/prealgebra/{i}.json"} for i in range(5)]


def test_json_array_and_parquet(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    (tmp_path / "math.json").write_text(json.dumps(MATH_ROWS, indent=1))
    pq.write_table(pa.Table.from_pylist(MATH_ROWS), tmp_path / "math.parquet")
    from_json = load_math(str(tmp_path / "math.json"))
    from_parquet = load_math(str(tmp_path / "math.parquet"))
    assert from_json == from_parquet
    assert len(from_json[0]) == 4 and from_json[1] == 1
    assert from_json[0][2] == {"id": "test/prealgebra/2.json", "question": "What is 2+2?", "answer": "4"}


def test_saved_datasets_folder(tmp_path):
    import datasets

    datasets.Dataset.from_list(MATH_ROWS).save_to_disk(str(tmp_path / "single"))
    datasets.DatasetDict({"test": datasets.Dataset.from_list(MATH_ROWS[:2]),
                          "train": datasets.Dataset.from_list(MATH_ROWS)}).save_to_disk(str(tmp_path / "dict"))
    problems, skipped = load_math(str(tmp_path / "single"))
    assert (len(problems), skipped) == (4, 1)
    assert len(load_math(str(tmp_path / "dict"))[0]) == 2  # split "test" by default
    assert len(load_math(str(tmp_path / "dict"), split="train")[0]) == 4


@needs_data
def test_hub_ids_go_through_load_dataset(tmp_path, monkeypatch):
    """The hub is unreachable here: a hub id is answered by `load_dataset("json", data_files=...)`."""
    import datasets

    real = datasets.load_dataset
    calls = []

    def fake_load_dataset(path, name=None, split=None):
        calls.append((path, name, split))
        return real("json", data_files=str(DATA / "olympiadbench_en_comp.jsonl"), split=split,
                    cache_dir=str(tmp_path / "cache"))

    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    problems, skipped = load_olympiadbench("Hothan/OlympiadBench", config="OE_TO_maths_en_COMP")
    assert calls == [("Hothan/OlympiadBench", "OE_TO_maths_en_COMP", "train")]
    assert (len(problems), skipped) == (675, 0)
    assert problems == load_olympiadbench(str(DATA / "olympiadbench_en_comp.jsonl"))[0]


# ---------------------------------------------------------------------------------------------------
# The task


def test_make_task():
    task = make_task(grade_workers=1, grade_timeout=10.0)
    assert task.name == "math"
    assert task.teacher_prompt == TEACHER_PROMPT
    assert task.student_prompt("Q?") == student_prompt("Q?")
    assert task.parse_teacher_output("<question>Q?</question><answer>\\boxed{x^2}</answer>") == ("Q?", "x^2")
    assert task.parse_teacher_output("<question>Q?</question>") == "no_tags"
    completions = ["... so the answer is $\\boxed{\\dfrac{1}{2}}$.", "\\boxed{3}", "I give up."]
    assert task.grade(completions, ["0.5", "4", "1"]) == [True, False, False]


def test_load_task_finds_math():
    from soar.tasks import load_task

    assert load_task("math", grade_workers=1).name == "math"
