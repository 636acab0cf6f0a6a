"""Tasks: what a problem looks like, how the teacher and the student are prompted, how answers are graded.

A task is a bundle of plain functions (no base class). The loop and the RL code only ever call these
fields, so the same code runs the toy world and competition mathematics.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable


@dataclass(frozen=True)
class Task:
    name: str
    teacher_prompt: str
    """The prompt after which the teacher writes one whole (question, answer) problem."""
    student_prompt: Callable[[str], str]
    """question -> the text the student completes."""
    parse_teacher_output: Callable[[str], "tuple[str, str] | str"]
    """teacher completion -> (question, answer), or a short rejection reason (SOAR_SPEC §4)."""
    grade: Callable[[list[str], list[str]], list[bool]]
    """(student completions, reference answers) -> correct or not, one per pair."""
    truth: Callable[[list[dict]], dict] | None = None
    """Teacher problems -> what is known to be true of them (share correct, well-formed, stepping
    stones), where the task can compute it (the toy world); None elsewhere."""


def configured_task(cfg, tokenizer) -> Task:
    """The task a config names (cfg.task), its prompts in the model's chat template when
    cfg.chat_template is set (instruct models; the math task)."""
    if cfg.chat_template and cfg.task != "math":
        raise ValueError("chat_template applies to the math task only")
    return load_task(cfg.task, tokenizer=tokenizer) if cfg.chat_template else load_task(cfg.task)


def load_task(name: str, **kwargs) -> Task:
    """The task called `name`: "toy" (the built-in arithmetic world) or "math" (boxed-answer maths)."""
    if name == "toy":
        from soar.tasks.toy import make_task
        return make_task(**kwargs)
    if name == "math":
        from soar.tasks.math import make_task
        return make_task(**kwargs)
    raise ValueError(f"unknown task {name!r}: expected 'toy' or 'math'")
