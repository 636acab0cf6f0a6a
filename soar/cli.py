"""The `soar` command: a thin layer over the library. Each subcommand parses one config dataclass.

    soar toy build     build (or reuse) the toy world's model and problem files
    soar filter        build the fail@k hard set of a problem file
    soar eval          pass@k of a model on a problem file
    soar hard-only     Hard-Only baseline: RLOO directly on D_train
    soar oracle        oracle curriculum: D_train mixed with true stepping stones
    soar base-t        Base-T control: D_train mixed with questions from the untrained teacher
    soar teacher-sampling  questions from a trained teacher (a SOAR run), then the PQ protocol
    soar compare       methods × seeds: the paper's pass@k table (Hard-Only, Intrinsic-T, SOAR-PQ/PS, ...)
    soar demo          the whole method on the toy world, with a report (the main job)
    soar train         run SOAR (Algorithm 1); `--preset FILE.toml` starts from a preset;
                       `soar train --resume RUN_DIR` continues a killed run
    soar grade         grade predictions against reference answers (maths)

`soar COMMAND --help` lists every option with its documentation and default.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

import tyro

from soar.baselines import FreshStudentConfig
from soar.generation import GenerationConfig
from soar.hardset import FilterConfig
from soar.models import set_threads
from soar.tasks.toy import ToyConfig


@dataclass
class ToyBuildArgs:
    """Build the toy world: the tiny model (shipped weights where the package has them, else pretrained)
    and the problem files (cached by config)."""

    out: str | None = None
    """Directory to build into (default: ~/.cache/soar/toy-<config hash>, or under $SOAR_CACHE)."""
    force: bool = False
    """Rebuild even if the directory already holds a build."""
    pretrain: bool = False
    """Pretrain the model from the seed even where weights ship with the package (the default world, and
    the earlier q_T = 0.4 world at 1,200 pretraining steps). Another CPU than the one that made them can
    pretrain a different model."""
    toy: ToyConfig = field(default_factory=ToyConfig)


@dataclass
class EvalArgs:
    """pass@k of a model on a problem file (unbiased estimator, SOAR_SPEC §7)."""

    model: str
    """Model directory or hub id."""
    problems: str
    """Problems to evaluate on (JSONL with question and answer)."""
    task: str = "toy"
    """Task of the problems: "toy" or "math"."""
    chat_template: bool = False
    """Wrap the prompts in the model's chat template (instruct models; math task)."""
    device: str = "auto"
    """Where the model runs: "auto" (CUDA when available), "cpu" or "cuda"."""
    samples: int = 32
    """Samples per problem (N); pass@k is reported for k in {1, 4, 8, 16, 32} up to N."""
    seed: int = 0
    """Sampling seed."""
    out: str | None = None
    """Write the results as JSON here."""
    generation: GenerationConfig = field(default_factory=GenerationConfig)


@dataclass
class BaseTArgs:
    """Base-T control: a fresh student on D_train mixed with questions from the untrained teacher."""

    run: FreshStudentConfig
    num_questions: int = 128
    """Questions sampled from the untrained teacher (with the teacher's answers, right or wrong)."""
    teacher_max_new_tokens: int = 24
    """Longest teacher sample (paper: 512)."""


@dataclass
class TeacherSamplingArgs:
    """Teacher sampling (Grounded-T, Intrinsic-T): questions from a trained teacher, then the PQ protocol."""

    teacher: str
    """A SOAR run directory (the teacher of its latest checkpoint) or a teacher model directory."""
    run: FreshStudentConfig
    num_questions: int = 128
    """Questions sampled from the teacher (with the teacher's answers, right or wrong)."""
    teacher_max_new_tokens: int = 24
    """Longest teacher sample (paper: 512)."""


def _json_ready(obj):
    return dataclasses.asdict(obj) if dataclasses.is_dataclass(obj) else obj


def _dump_config(out: str, cfg) -> None:
    from soar.runs import write_json

    write_json(Path(out) / "config.json", _json_ready(cfg))


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__)
        return 0
    command, rest = argv[0], argv[1:]
    # torch uses every core by default; SOAR_THREADS=1 helps when other jobs share the cores.
    set_threads(int(os.environ["SOAR_THREADS"]) if os.environ.get("SOAR_THREADS") else None)

    if command == "grade":
        from soar.grading import main as grade_main
        return grade_main(rest)

    if command == "toy":
        if not rest or rest[0] != "build":
            print("usage: soar toy build [--help]", file=sys.stderr)
            return 2
        args = tyro.cli(ToyBuildArgs, args=rest[1:], prog="soar toy build")
        from soar.tasks.toy import build
        print(build(args.toy, args.out, force=args.force, pretrain_weights=args.pretrain))
        return 0

    if command == "demo":
        from soar.demo import DemoConfig, run_demo
        run_demo(tyro.cli(DemoConfig, args=rest, prog="soar demo"))
        return 0

    if command == "compare":
        from soar.compare import CompareConfig, check, run_compare
        cfg = tyro.cli(CompareConfig, args=rest, prog="soar compare")
        try:
            check(cfg)
        except ValueError as e:
            print(f"soar compare: {e}", file=sys.stderr)
            return 2
        if not cfg.collect_only:
            _dump_config(cfg.out, cfg)
        run_compare(cfg)
        return 0

    if command == "train":
        from soar.loop import SoarConfig, config_from_dict, run
        if rest[:1] == ["--resume"]:
            if len(rest) != 2:
                print("usage: soar train --resume RUN_DIR", file=sys.stderr)
                return 2
            config_file = Path(rest[1]) / "config.json"
            if not config_file.exists():
                print(f"soar train --resume: {config_file} not found (not a run directory)", file=sys.stderr)
                return 2
            cfg = config_from_dict(json.loads(config_file.read_text()))
            if Path(cfg.out).resolve() != Path(rest[1]).resolve():
                cfg = dataclasses.replace(cfg, out=rest[1])  # the run directory was moved
            state = run(cfg, resume=(Path(rest[1]) / "state.json").exists())
        else:
            default = None
            if rest[:1] == ["--preset"] and len(rest) >= 2:
                from soar.loop import load_preset
                default, rest = load_preset(rest[1]), rest[2:]
            cfg = tyro.cli(SoarConfig, args=rest, prog="soar train", default=default)
            missing = [f"--{name.replace('_', '-')}" for name in ("model", "hard_set", "out") if not getattr(cfg, name)]
            if missing:
                print(f"soar train: {', '.join(missing)} required", file=sys.stderr)
                return 2
            state = run(cfg)
        print(json.dumps({"outer_steps": state["step"], "promotions": len(state["promotions"])}))
        return 0

    if command == "filter":
        cfg = tyro.cli(FilterConfig, args=rest, prog="soar filter")
        from soar.hardset import run_filter
        run_filter(cfg)
        return 0

    if command == "eval":
        args = tyro.cli(EvalArgs, args=rest, prog="soar eval")
        from soar.evaluation import evaluate_pass_at_k
        from soar.generation import make_generator
        from soar.models import load_model, load_tokenizer, resolve_device
        from soar.runs import read_problems, write_json
        from soar.tasks import configured_task
        tokenizer = load_tokenizer(args.model)
        generator = make_generator(load_model(args.model, resolve_device(args.device)), tokenizer, args.generation,
                                   args.model)
        result = evaluate_pass_at_k(generator, configured_task(args, tokenizer), read_problems(args.problems),
                                    args.samples, seed=args.seed)
        print(f"{'k':>4}  pass@k (%)")
        for k, v in result["pass_at_k"].items():
            print(f"{k:>4}  {v:9.2f}")
        if args.out:
            write_json(args.out, {"model": args.model, "problems": args.problems, **result})
        return 0

    if command in ("hard-only", "oracle", "base-t", "teacher-sampling"):
        from soar.baselines import fresh_student
        from soar.protocols import teacher_sampling
        if command in ("base-t", "teacher-sampling"):
            args = tyro.cli(BaseTArgs if command == "base-t" else TeacherSamplingArgs, args=rest, prog=f"soar {command}")
            cfg = args.run
        else:
            cfg = tyro.cli(FreshStudentConfig, args=rest, prog=f"soar {command}")
        if command == "oracle" and not cfg.extra:
            print("soar oracle needs --extra CURRICULUM.jsonl (toy world: oracle_curriculum.jsonl)", file=sys.stderr)
            return 2
        if command == "hard-only" and cfg.extra:
            print("soar hard-only trains on D_train only: drop --extra", file=sys.stderr)
            return 2
        _dump_config(cfg.out, args if command in ("base-t", "teacher-sampling") else cfg)
        if command in ("base-t", "teacher-sampling"):
            teacher = cfg.model if command == "base-t" else args.teacher  # Base-T: the untrained teacher
            result = teacher_sampling(teacher, cfg, args.num_questions, args.teacher_max_new_tokens)
        else:
            result = fresh_student(cfg)
        print(json.dumps({key: result[key] for key in ("pass_at_k", "retention", "pass_at_k_slope_rule",
                                                        "slope_checkpoint", "wall_seconds")}))
        return 0

    print(f"soar: unknown command {command!r}\n{__doc__}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
