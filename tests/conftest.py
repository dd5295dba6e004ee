"""Shared fixtures: where the real data lives, and deterministic seeds."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]


def shared_dir() -> Path:
    """The project's ``shared/`` folder (next to the checkout), or ``$HF_ERC_SHARED_DIR``."""
    return Path(os.environ.get("HF_ERC_SHARED_DIR", REPO_ROOT.parent / "shared"))


def runs_slow_tests() -> bool:
    """Slow end-to-end tests (``@pytest.mark.slow``: launched processes, real-data quickstarts) run in CI (``CI`` set)
    or with ``HF_ERC_RUN_SLOW=1``; elsewhere the README's test command stays within about five minutes on 2 cores."""
    return bool(os.environ.get("CI") or os.environ.get("HF_ERC_RUN_SLOW"))


def pytest_collection_modifyitems(config, items):
    if runs_slow_tests():
        return
    skip = pytest.mark.skip(reason="slow end-to-end test: runs in CI (CI=true) or with HF_ERC_RUN_SLOW=1")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def meld_csv_dir() -> Path:
    """Folder with the real MELD ``{train,dev,test}_sent_emo.csv``.

    Outside CI a checkout without ``../shared`` skips the real-data tests; in CI their
    absence is an error, since CI always has the data.
    """
    path = shared_dir() / "data" / "meld"
    if not (path / "train_sent_emo.csv").is_file():
        message = f"real MELD CSVs not found in {path} (set HF_ERC_SHARED_DIR)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return path


@pytest.fixture(scope="session")
def text_only_checkpoint(tmp_path_factory):
    """A tiny text-only SDT checkpoint on MiniLM features (the quickstart's kind, untrained), with its encoder
    record: what the pipelines, `hf-erc predict` and the demo load."""
    import torch

    from hf_erc.features.encoders import TextEncoder
    from hf_erc.features.extract import save_encoder_specs
    from hf_erc.models import SDTConfig, SDTForEmotionRecognition

    path = tmp_path_factory.mktemp("sdt-text")
    torch.manual_seed(0)
    config = SDTConfig.for_dataset("meld", modalities=["text"], text_dim=384, hidden_size=32, num_attention_heads=2)
    SDTForEmotionRecognition(config).save_pretrained(path)
    save_encoder_specs({"text": TextEncoder("minilm").spec}, path)
    return path


@pytest.fixture(scope="session")
def talk(tmp_path_factory):
    """A folder with ``talk.mp4`` (7 s, with audio) and its subtitles ``talk.srt`` (the three cues of
    ``tests.utils.subtitle_files.SCENE``)."""
    from tests.utils.media_fixtures import write_mp4
    from tests.utils.subtitle_files import srt_text, write_subtitles

    folder = tmp_path_factory.mktemp("talk")
    write_mp4(folder / "talk.mp4", seconds=7.0, fps=10, size=(32, 40))
    write_subtitles(folder / "talk.srt", srt_text())
    return folder


@pytest.fixture(autouse=True)
def _seed_everything():
    import random

    import numpy as np
    import torch

    random.seed(0)
    np.random.seed(0)
    torch.manual_seed(0)
    yield
