import os

import pytest

os.environ.setdefault("SOAR_QUIET", "1")


@pytest.fixture(scope="session")
def tiny_toy(tmp_path_factory):
    """A tiny toy world (a few pretraining steps): real files and code paths, not a useful model."""
    from soar.tasks.toy import ToyConfig, build

    cfg = ToyConfig(hidden_size=32, num_layers=1, num_heads=2, pretrain_steps=300, batch_size=32, lr=3e-3,
                    num_hard_candidates=24, num_easy=8, num_curriculum=16)
    return build(cfg, tmp_path_factory.mktemp("toy"), log=lambda *_: None), cfg



@pytest.fixture(scope="session")
def one_carry_hard_set(toy_world, tmp_path_factory):
    """A hard-set directory whose D_train is the toy world's 1-carry curriculum problems (true answers):
    the base student solves ~2% of samples, so training on a few of them moves Acc within K steps."""
    from soar.runs import read_problems, write_jsonl
    from soar.tasks.toy import problem_truth

    rows = [r for r in read_problems(toy_world / "oracle_curriculum.jsonl")
            if problem_truth(r["question"], r["answer"])["carries"] == 1]
    path = tmp_path_factory.mktemp("one_carry")
    write_jsonl(path / "train.jsonl", rows)
    return path


@pytest.fixture(scope="session")
def toy_world():
    """The default toy world, built once (about 3 minutes on 2 cores) and cached like a user's."""
    from soar.tasks.toy import ToyConfig, build

    return build(ToyConfig(), log=lambda *_: None)
