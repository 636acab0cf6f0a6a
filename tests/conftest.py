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
def toy_world():
    """The default toy world, built once (about 3 minutes on 2 cores) and cached like a user's."""
    from soar.tasks.toy import ToyConfig, build

    return build(ToyConfig(), log=lambda *_: None)
