"""The Inference Endpoints handler every trained checkpoint ships (``handler.py``, with ``requirements.txt``): run as
the endpoint toolkit runs it, in a fresh process that imports it by its path in the checkpoint folder, it answers
what ``hf_erc.pipeline`` answers for a feature-level checkpoint (SDT) and one saved with a processor (MAGTKD's
audio stage), and a bad request gets an error object naming the problem and what to send.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest

import hf_erc
from hf_erc.features.extract import extract_features_to_disk
from hf_erc.inference.checkpoints import ENDPOINT_HANDLER_SOURCE, foreign_code_files
from tests.utils.stage_data import media_workspace, write_magtkd_config
from tests.utils.synthetic_features import write_sdt_config
from tests.utils.tiny_encoders import write_tiny_text_encoder
from tests.utils.training import offline_environment, train_in_process

# What the endpoint toolkit does with a repository: import handler.py by its path, build EndpointHandler(folder),
# call it with each request body. Without hf_erc the import must fail with a message that says what to install.
TOOLKIT_SCRIPT = """
import importlib.util, json, sys
requests = json.load(open(sys.argv[1]))

def import_handler(folder):
    spec = importlib.util.spec_from_file_location("handler", folder + "/handler.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module

sys.modules["hf_erc"] = None
try:
    import_handler(next(iter(requests)))
    missing = "imported without hf_erc"
except ImportError as error:
    missing = str(error)
del sys.modules["hf_erc"]
answers = {}
for folder, bodies in requests.items():
    handler = import_handler(folder).EndpointHandler(folder)
    answers[folder] = [handler(body) for body in bodies]
print(json.dumps({"without_hf_erc": missing, "answers": answers}))
"""

CONVERSATION = [
    {"speaker": "Ross", "text": "i am so calm"},
    {"speaker": "Rachel", "text": "wow really"},
    {"speaker": "Zed", "text": "you ok scared"},  # a speaker no training dialogue had
]
UTTERANCE = {"speaker": "Ross", "text": "i am so calm"}
# Bad requests, and what the error message must name.
BAD_REQUESTS = [
    ([CONVERSATION], "JSON object with an 'inputs' key, got list"),
    ({"parameters": {"top_k": 1}}, "an 'inputs' key"),
    ({"inputs": "conversation.json"}, "'inputs' must be a conversation object or a list of utterances, got str"),
    ({"inputs": {"dialogue": CONVERSATION}}, "'inputs' must hold 'utterances'"),
    ({"inputs": {"utterances": []}}, "expected a non-empty list of utterances"),
    ({"inputs": [UTTERANCE, {"speaker": "Joey"}]}, "utterance 1 needs a 'speaker' and a string 'text'"),
    ({"inputs": [{"speaker": "Joey", "text": 3}]}, "utterance 0 needs a 'speaker' and a string 'text'"),
    ({"inputs": [{**UTTERANCE, "start": "soon"}]}, "'start' 'soon': expected seconds"),
    ({"inputs": [{**UTTERANCE, "audio": "/etc/hostname"}]}, "utterance 0: its audio '/etc/hostname' is outside"),
    ({"inputs": [UTTERANCE, {**UTTERANCE, "video": "../x.mp4"}]}, "utterance 1: its video '../x.mp4' is outside"),
    ({"inputs": [{**UTTERANCE, "audio": "clip.wav"}]}, "its audio 'clip.wav' is not a readable file in the repository"),
    ({"inputs": CONVERSATION, "parameters": [1]}, "'parameters' must be an object, got list"),
    ({"inputs": CONVERSATION, "parameters": {"temperature": 2}}, "Unknown parameters ['temperature']"),
    ({"inputs": CONVERSATION, "parameters": {"online": "yes"}}, "'online' must be true or false, got str 'yes'"),
    ({"inputs": CONVERSATION, "parameters": {"top_k": 0}}, "'top_k' must be a whole number >= 1, got int 0"),
    ({"inputs": CONVERSATION, "parameters": {"top_k": True}}, "'top_k' must be a whole number >= 1, got bool True"),
]


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    root = tmp_path_factory.mktemp("endpoint")
    media_workspace(root, train_dialogues=2, eval_dialogues=1)
    return root


@pytest.fixture(scope="module")
def feature_checkpoint(workspace):
    """Text-only SDT on a tiny encoder's features, trained by `hf_erc.training.train` (scripts/train.py's entry):
    the checkpoint carries the encoder (``text_encoder/``) and the endpoint files."""
    encoder = write_tiny_text_encoder(workspace / "encoder")
    features = workspace / "features"
    extract_features_to_disk("meld", workspace / "data", features, text_encoder=str(encoder))
    config = write_sdt_config(
        workspace / "sdt.yaml", features, workspace / "sdt", modalities=["text"], num_train_epochs=1
    )
    train_in_process(config)
    return workspace / "sdt"


@pytest.fixture(scope="module")
def processor_checkpoint(workspace):
    """MAGTKD's audio stage, saved with its processor, trained by `hf_erc.training.train`."""
    output_dir = workspace / "magtkd-audio"
    config = write_magtkd_config(workspace / "audio.yaml", workspace, output_dir, stage="audio", modalities=["audio"])
    train_in_process(config)
    return output_dir


def test_every_trained_checkpoint_ships_the_package_handler_and_its_requirements(feature_checkpoint):
    assert (feature_checkpoint / "handler.py").read_bytes() == ENDPOINT_HANDLER_SOURCE.read_bytes()
    assert f"hf-erc=={hf_erc.__version__}" in (feature_checkpoint / "requirements.txt").read_text().splitlines()
    assert foreign_code_files(feature_checkpoint) == []  # the quickstart's reload check accepts it as hf_erc's own
    assert "## Deploy as an Inference Endpoint" in (feature_checkpoint / "README.md").read_text()


def test_the_handler_answers_what_the_pipeline_answers_and_names_what_is_wrong(
    workspace, feature_checkpoint, processor_checkpoint, tmp_path
):
    # SDT reads the text; MAGTKD's audio stage the audio of a clip the repository carries, named by its path in it.
    shutil.copy(workspace / "media" / "test_0_0.mp4", processor_checkpoint / "clip.mp4")
    conversations = {
        feature_checkpoint: CONVERSATION,
        processor_checkpoint: [{**utterance, "audio": "clip.mp4"} for utterance in CONVERSATION],
    }
    requests = {
        str(checkpoint): [
            {"inputs": {"utterances": conversation}},
            {"inputs": conversation, "parameters": {"online": True}},
            {"inputs": conversation, "parameters": {"top_k": 2}},
        ]
        for checkpoint, conversation in conversations.items()
    }
    requests[str(feature_checkpoint)] += [body for body, _ in BAD_REQUESTS]
    (tmp_path / "requests.json").write_text(json.dumps(requests))
    completed = subprocess.run(
        [sys.executable, "-c", TOOLKIT_SCRIPT, str(tmp_path / "requests.json")],
        # On the CPU, as the pipelines it is compared with.
        cwd=tmp_path, env=offline_environment(CUDA_VISIBLE_DEVICES=""), capture_output=True, text=True, timeout=180,
        check=False,
    )  # fmt: skip
    assert completed.returncode == 0, completed.stderr[-3000:]
    result = json.loads(completed.stdout.splitlines()[-1])
    assert "needs the hf_erc package" in result["without_hf_erc"] and "requirements.txt" in result["without_hf_erc"]

    for checkpoint, conversation in conversations.items():
        answers = result["answers"][str(checkpoint)]
        labeller = hf_erc.pipeline(str(checkpoint), device="cpu")
        # What the pipeline answers here, the clip named by its path in this machine's checkpoint folder.
        here = [{**u, "audio": str(checkpoint / u["audio"])} if "audio" in u else u for u in conversation]
        expected = [labeller(here), list(labeller.stream(here))]
        for answer, rows in zip(answers, expected):
            assert isinstance(answer, list), answer
            for got, want in zip(answer, rows, strict=True):  # the same row: labels, texts, times; numbers to 1e-6
                assert {**got, "score": 0, "probabilities": 0} == {**want, "score": 0, "probabilities": 0}
                assert got["score"] == pytest.approx(want["score"], abs=1e-6)
                assert got["probabilities"] == pytest.approx(want["probabilities"], abs=1e-6)
        for row, whole in zip(answers[2], answers[0]):  # top_k: the two most probable, most probable first
            ranked = sorted(whole["probabilities"], key=whole["probabilities"].get, reverse=True)
            assert row["probabilities"] == {label: whole["probabilities"][label] for label in ranked[:2]}
            assert list(row["probabilities"]) == ranked[:2] and row["emotion"] == ranked[0]

    errors = result["answers"][str(feature_checkpoint)][3:]
    for error, (body, named) in zip(errors, BAD_REQUESTS, strict=True):
        assert list(error) == ["error"], (body, error)
        assert named in error["error"] and 'Send {"inputs"' in error["error"], (body, error)
