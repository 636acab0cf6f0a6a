"""Run directories and files: atomic writes, JSONL reading with clear errors."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Iterable


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write `data` to `path` so that a crash at any moment leaves either the old file or the new one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json(path: str | Path, obj) -> None:
    atomic_write_bytes(path, (json.dumps(obj, indent=2, sort_keys=False) + "\n").encode())


def write_jsonl(path: str | Path, rows: Iterable[dict]) -> None:
    atomic_write_bytes(path, "".join(json.dumps(r) + "\n" for r in rows).encode())


def append_jsonl(path: str | Path, row: dict) -> None:
    with open(path, "a") as f:
        f.write(json.dumps(row) + "\n")
        f.flush()
        os.fsync(f.fileno())


def read_jsonl(path: str | Path) -> list[dict]:
    """Rows of a JSONL file; a malformed line stops with the file name and line number."""
    rows = []
    with open(path) as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise ValueError(f"{path}:{lineno}: not valid JSON ({e.msg})") from None
            if not isinstance(row, dict):
                raise ValueError(f"{path}:{lineno}: expected a JSON object, got {type(row).__name__}")
            rows.append(row)
    return rows


def read_problems(path: str | Path) -> list[dict]:
    """Problems ({"id", "question", "answer"}) from a JSONL file, checked row by row."""
    rows = read_jsonl(path)
    for i, row in enumerate(rows):
        missing = [k for k in ("question", "answer") if not isinstance(row.get(k), str) or not row.get(k)]
        if missing:
            raise ValueError(f"{path}: problem {i + 1} lacks a non-empty string field {missing[0]!r}")
        row.setdefault("id", f"{Path(path).stem}-{i:05d}")
    return rows


def file_sha256(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


# ---------------------------------------------------------------- SOAR checkpoints and resume

def save_checkpoint(out: Path, state: dict, teacher, optimizer, scheduler, baseline_student) -> None:
    """Write checkpoint ckpt_<step>/, then point state.json at it (an atomic rename), then drop older ones.

    A kill at any moment leaves state.json naming a complete checkpoint.
    """
    import torch
    name = f"ckpt_{state['step']:04d}"
    tmp = out / f".{name}.partial"
    shutil.rmtree(tmp, ignore_errors=True)
    teacher.save_pretrained(tmp / "teacher")
    baseline_student.save_pretrained(tmp / "baseline_student")
    torch.save({"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict()}, tmp / "teacher_optimizer.pt")
    shutil.rmtree(out / name, ignore_errors=True)
    tmp.rename(out / name)
    write_json(out / "state.json", {**state, "checkpoint": name})
    for old in out.glob("ckpt_*"):
        if old.name != name:
            shutil.rmtree(old, ignore_errors=True)


def load_checkpoint(out: Path, teacher, optimizer, scheduler, baseline_student) -> dict:
    """Restore the teacher (a full model or a LoRA adapter), its optimizer and schedule, and θ from
    the checkpoint state.json names; returns the state (step, moving-average history, promotions)."""
    import torch
    from safetensors.torch import load_file

    from soar.lora import is_lora

    state = json.loads((out / "state.json").read_text())
    ckpt = out / state.pop("checkpoint")
    if is_lora(teacher):
        from peft import set_peft_model_state_dict
        set_peft_model_state_dict(teacher, load_file(ckpt / "teacher" / "adapter_model.safetensors"))
    else:
        teacher.load_state_dict(load_file(ckpt / "teacher" / "model.safetensors"), strict=False)
    baseline_student.load_state_dict(load_file(ckpt / "baseline_student" / "model.safetensors"), strict=False)
    opt = torch.load(ckpt / "teacher_optimizer.pt", weights_only=True)
    optimizer.load_state_dict(opt["optimizer"])
    scheduler.load_state_dict(opt["scheduler"])
    return state


def truncate_logs(out: Path, step: int) -> None:
    """Drop log lines and promoted students of steps >= `step` (a run killed before its checkpoint landed)."""
    for path in (out / "promoted").glob("step_*"):
        if int(path.name.split("_")[1]) >= step:
            shutil.rmtree(path)
    for name in ("metrics.jsonl", "promoted_questions.jsonl"):
        path = out / name
        if path.exists():
            write_jsonl(path, [row for row in read_jsonl(path) if row["step"] < step])
