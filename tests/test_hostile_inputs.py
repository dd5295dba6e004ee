"""Hostile inputs: every reader that takes files from strangers refuses a bad one with a clear one-line error (an
exception message; on the command line one ``error:`` line and a nonzero exit, no traceback) and never runs what
the file carries (no case may create its ``marker``).

The battery is one table, ``CASES``: a reader, a builder that writes the hostile file or folder, and a fragment of
the expected error. To add a case, add a row; a reader is checked through its API and, where it has one, through
its command line.
"""

from __future__ import annotations

import json
import os
import pickle
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

import hf_erc
from hf_erc.cli import main as hf_erc_main
from hf_erc.inference.conversations import read_conversation
from hf_erc.data.feature_files import read_feature_pickle
from hf_erc.data.magtkd_features import read_magtkd_feature_pickles
from hf_erc.features.encoders import EncoderSpec
from hf_erc.features.extract import save_encoder_specs
from hf_erc.commands.show_inputs import checkpoint_processor
from hf_erc.models import SDTConfig, SDTForEmotionRecognition
from hf_erc.commands.quickstart import SAMPLE_CONVERSATION
from hf_erc.inference.subtitles import read_subtitles
from hf_erc.training.run import main as train_main
from tests.utils.magtkd_pickles import MELD_SPLITS, write_feature_folder
from tests.utils.scripts import load_script
from tests.utils.subtitle_files import srt_text

MINILM_SPEC = EncoderSpec("text", "minilm", "mean", 384, 128)
SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"


def script_main(name: str) -> Callable:
    """``main`` of ``scripts/<name>.py`` (the scripts are files, not a package)."""
    return load_script(SCRIPTS / f"{name}.py").main


class _Call:
    """Pickles as ``function(*arguments)``, as a hostile file would."""

    def __init__(self, function, *arguments):
        self.function, self.arguments = function, arguments

    def __reduce__(self):
        return self.function, self.arguments


def _touch(marker: Path) -> _Call:
    return _Call(os.system, f"touch {marker}")


# ---- Builders: (folder, marker) -> the hostile file or folder ----------------------------------------------------


def text(name: str, content: str, encoding: str = "utf-8"):
    def build(folder: Path, marker: Path) -> Path:
        path = folder / name
        path.write_bytes(content.replace("{marker}", str(marker)).encode(encoding))
        return path

    return build


def raw(name: str, data: bytes):
    def build(folder: Path, marker: Path) -> Path:
        (folder / name).write_bytes(data)
        return folder / name

    return build


def sparse(name: str, size: int):
    """A file of ``size`` bytes that takes no disk space (readers must refuse it from its size alone)."""

    def build(folder: Path, marker: Path) -> Path:
        with open(folder / name, "wb") as file:
            file.truncate(size)
        return folder / name

    return build


def pickled(name: str, make: Callable[[Path], object]):
    def build(folder: Path, marker: Path) -> Path:
        (folder / name).write_bytes(pickle.dumps(make(marker), protocol=2))
        return folder / name

    return build


def magtkd_folder(make: Callable[[Path], object]):
    """MAGTKD's three first-stage pickles, the test split's labels replaced by ``make(marker)``."""

    def build(folder: Path, marker: Path) -> Path:
        def edit(split, contents):
            if split == "test":
                contents["labels"][7] = make(marker)

        write_feature_folder(folder / "feature", MELD_SPLITS, edit=edit)
        return folder / "feature"

    return build


def sdt_checkpoint(folder: Path) -> Path:
    """A tiny text-only SDT on MiniLM features, as training writes it (config, safetensors, code, encoder record)."""
    path = folder / "checkpoint"
    config = SDTConfig.for_dataset("meld", modalities=["text"], text_dim=384, hidden_size=8, num_attention_heads=2)
    SDTForEmotionRecognition(config).save_pretrained(path)
    save_encoder_specs({"text": MINILM_SPEC}, path)
    return path


def _edit_json(path: Path, **fields) -> None:
    values = json.loads(path.read_text())
    values.update(fields)
    path.write_text(json.dumps(values))


def _prepend(path: Path, line: str) -> None:
    path.write_text(line + "\n" + path.read_text())


def _marker_line(marker: Path) -> str:
    return f"open({str(marker)!r}, 'w').write('ran')"


def checkpoint(edit: Callable[[Path, Path], None]):
    """A tiny SDT checkpoint changed by ``edit(checkpoint, marker)``."""

    def build(folder: Path, marker: Path) -> Path:
        path = sdt_checkpoint(folder)
        edit(path, marker)
        return path

    return build


def _without(*names):
    def edit(path: Path, marker: Path) -> None:
        for name in names:
            (path / name).unlink()

    return edit


def _pickled_weights_only(path: Path, marker: Path) -> None:
    (path / "model.safetensors").unlink()
    (path / "pytorch_model.bin").write_bytes(pickle.dumps(_touch(marker)))


def _truncated_weights(path: Path, marker: Path) -> None:
    weights = path / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])


def _config_text(content: str):
    def edit(path: Path, marker: Path) -> None:
        (path / "config.json").write_text(content)

    return edit


def _config_fields(**fields):
    def edit(path: Path, marker: Path) -> None:
        _edit_json(path / "config.json", **fields)

    return edit


def _another_model_type_without_code(path: Path, marker: Path) -> None:
    config = json.loads((path / "config.json").read_text())
    del config["auto_map"]
    (path / "config.json").write_text(json.dumps({**config, "model_type": "bert-erc"}))


def _renamed_with_code(path: Path, marker: Path) -> None:
    """Another model type that ships hf_erc's code with one line added: loading it would run that line."""
    _edit_json(path / "config.json", model_type="sdt-erc-copy")
    _prepend(path / "configuration_sdt.py", _marker_line(marker))


def _foreign_processor(path: Path, marker: Path) -> None:
    (path / "processor_config.json").write_text(
        json.dumps({"processor_class": "EvilProcessor", "auto_map": {"AutoProcessor": "processing_evil.EvilProcessor"}})
    )
    (path / "processing_evil.py").write_text(_marker_line(marker) + "\n")


def _encoder_with_code(path: Path, marker: Path) -> None:
    """The encoder record names a folder whose config asks for the code it ships."""
    encoder = path.parent / "encoder"
    encoder.mkdir()
    auto_map = {"AutoConfig": "configuration_evil.EvilConfig", "AutoModel": "modeling_evil.EvilModel"}
    (encoder / "config.json").write_text(json.dumps({"model_type": "evil-encoder", "auto_map": auto_map}))
    for module in ("configuration_evil.py", "modeling_evil.py"):
        (encoder / module).write_text(_marker_line(marker) + "\n")
    save_encoder_specs({"text": EncoderSpec("text", str(encoder), "mean", 384, 128)}, path)


def _encoder_record(content: str):
    def edit(path: Path, marker: Path) -> None:
        (path / "feature_encoders.json").write_text(content)

    return edit


def missing(name: str):
    def build(folder: Path, marker: Path) -> Path:
        return folder / name

    return build


# ---- Readers: the API call that must refuse, and the command line that must exit with one error line --------------


@dataclass(frozen=True)
class Reader:
    read: Callable[[Path], object] | None
    command: Callable[[Path, dict], tuple[Callable, list[str]]] | None


READERS = {
    "conversation": Reader(
        read=read_conversation,
        command=lambda path, ready: (
            hf_erc_main, ["predict", str(path), "--model", str(ready["checkpoint"]), "--device", "cpu"]
        ),
    ),
    "subtitles": Reader(
        read=read_subtitles,
        command=lambda path, ready: (
            hf_erc_main,
            ["predict", "--model", str(ready["checkpoint"]), "--video", str(ready["video"]), "--subtitles", str(path)],
        ),
    ),
    "feature pickle": Reader(read=lambda path: read_feature_pickle(path, "meld"), command=None),
    "MAGTKD pickles": Reader(read=lambda path: read_magtkd_feature_pickles(path, "meld"), command=None),
    "checkpoint": Reader(
        read=lambda path: hf_erc.pipeline(str(path), device="cpu"),
        command=lambda path, ready: (
            hf_erc_main, ["predict", str(SAMPLE_CONVERSATION), "--model", str(path), "--device", "cpu"]
        ),
    ),
    "push_to_hub": Reader(
        read=None,
        command=lambda path, ready: (script_main("push_to_hub"), [str(path), "someone/erc", "--card-only"]),
    ),
    "train config": Reader(
        read=None,
        command=lambda path, ready: (train_main, ["--config", str(path), "--output_dir", str(path.parent / "out")]),
    ),
    "show-inputs processor": Reader(
        read=checkpoint_processor,
        command=lambda path, ready: (
            hf_erc_main,
            [
                "show-inputs", "--model-type", "telme", "--dataset", "meld", "--data-dir", str(path.parent),
                "--split", "test", "--model", str(path), "--output", str(path.parent / "inputs.jsonl"),
            ],
        ),
    ),
}


@dataclass(frozen=True)
class Case:
    reader: str  # a key of READERS
    name: str
    build: Callable[[Path, Path], Path]  # (folder, marker) -> the hostile file or folder
    error: str  # a fragment of the one-line error
    gap: str | None = None  # why the case fails for now: a fix that belongs to code outside these readers


SCENE = srt_text()

CASES = [
    # Conversation JSON (hf-erc predict CONVERSATION, hf_erc.pipeline(...)(path))
    Case("conversation", "not JSON", text("talk.json", "{utterances: oops"), "is not valid JSON"),
    Case("conversation", "not UTF-8", raw("talk.json", b"\xff\xfe\x00garbage\x80"), "is not UTF-8 text"),
    Case("conversation", "a number", text("talk.json", "42"), "expected a non-empty list of utterances"),
    Case("conversation", "utterances not a list", text("talk.json", '{"utterances": "hi"}'), "non-empty list"),
    Case("conversation", "no utterances", text("talk.json", '{"utterances": []}'), "non-empty list"),
    Case("conversation", "missing text", text("talk.json", '[{"speaker": "A"}]'), "utterance 0 needs a 'speaker'"),
    Case("conversation", "text not a string", text("talk.json", '[{"speaker": "A", "text": 5}]'), "a string 'text'"),
    Case(
        "conversation", "speaker an object", text("talk.json", '[{"speaker": {"a": 1}, "text": "hi"}]'),
        "'speaker' must be a name",
    ),
    Case(
        "conversation", "audio not a path", text("talk.json", '[{"speaker": "A", "text": "hi", "audio": [1]}]'),
        "'audio' must be the path of a media file",
    ),
    Case(
        "conversation", "start not a number", text("talk.json", '[{"speaker": "A", "text": "hi", "start": "soon"}]'),
        "has 'start' 'soon': expected seconds",
    ),
    Case(
        "conversation", "start NaN", text("talk.json", '[{"speaker": "A", "text": "hi", "start": NaN}]'),
        "has 'start' nan: expected seconds",
    ),
    Case(
        "conversation", "negative time", text("talk.json", '[{"speaker": "A", "text": "hi", "end": -1}]'),
        "expected seconds, a number >= 0",
    ),
    Case(
        "conversation", "end before start",
        text("talk.json", '[{"speaker": "A", "text": "hi", "start": 3, "end": 2}]'), "not after its start",
    ),
    Case(
        "conversation", "huge wrong item", text("talk.json", json.dumps([{"text": "x" * 100_000}])),
        "utterance 0 needs a 'speaker'",
    ),
    Case("conversation", "nested too deep", text("talk.json", "[" * 200_000), "nested too deeply"),
    Case("conversation", "huge", sparse("talk.json", 65 * 2**20), "a conversation file is at most 64 MiB"),
    Case("conversation", "a folder", lambda folder, marker: folder, "is not a file"),
    Case("conversation", "missing", missing("talk.json"), "does not exist"),
    # Subtitles (hf-erc predict --video V --subtitles S)
    Case("subtitles", "binary garbage", raw("talk.srt", bytes(range(256)) * 8), "it holds NUL bytes"),
    Case("subtitles", "binary without NULs", raw("talk.srt", bytes(range(1, 256)) * 8), "has no timed cues"),
    Case("subtitles", "UTF-16 without BOM", text("talk.srt", SCENE, "utf-16-le"), "UTF-16 text without its byte"),
    Case("subtitles", "bad UTF-16", raw("talk.srt", b"\xff\xfe\x00\xd8"), "not valid UTF-16 text"),
    Case(
        "subtitles", "huge line", text("talk.srt", "1\n00:00:01,000 --> 00:00:02,000\n" + "<v " * 400_000),
        "line 3 is 1,200,000 characters long",
    ),
    Case("subtitles", "huge file", sparse("talk.srt", 17 * 2**20), "a subtitle file is at most 16 MiB"),
    Case(
        "subtitles", "overlapping cues",
        text("talk.srt", "1\n00:00:01,000 --> 00:00:04,000\nA: hi\n\n2\n00:00:02,000 --> 00:00:05,000\nB: ho\n"),
        "(overlapping cues)",
    ),
    Case(
        "subtitles", "negative time", text("talk.srt", "1\n-00:00:01,000 --> 00:00:02,000\nA: hi\n"),
        "cannot read the timing line",
    ),
    Case(
        "subtitles", "reversed cue", text("talk.srt", "1\n00:00:03,000 --> 00:00:02,000\nA: hi\n"),
        "(a reversed cue)",
    ),
    Case("subtitles", "empty", text("talk.srt", ""), "has no timed cues"),
    Case("subtitles", "empty WebVTT", text("talk.vtt", ""), "not a WebVTT file"),
    Case("subtitles", "not subtitles", text("talk.txt", SCENE), "unsupported subtitle format"),
    Case("subtitles", "missing", missing("talk.srt"), "no such subtitle file"),
    # Feature pickles (the restricted unpickler)
    Case(
        "feature pickle", "__reduce__ calls os.system", pickled("meld.pkl", _touch), "refused to load global"
    ),
    Case(
        "feature pickle", "__reduce__ calls eval",
        pickled("meld.pkl", lambda marker: _Call(eval, f"open({str(marker)!r}, 'w')")),
        "refused to load global '__builtin__.eval (builtins.eval)'",
    ),
    Case(
        "feature pickle", "memory bomb", pickled("meld.pkl", lambda marker: _Call(bytearray, 2**40)),
        "refused bytearray(1099511627776)",
    ),
    Case("feature pickle", "garbage", raw("meld.pkl", b"\x80\x04\x95garbage"), "not a readable feature pickle"),
    Case("feature pickle", "empty", raw("meld.pkl", b""), "not a readable feature pickle"),
    Case("feature pickle", "wrong layout", pickled("meld.pkl", lambda marker: {"a": 1}), "feature tuple of 12 items"),
    Case(
        "MAGTKD pickles", "__reduce__ calls os.system", magtkd_folder(_touch), "refused to load global"
    ),
    # Checkpoint folders (hf_erc.pipeline, hf-erc predict --model)
    Case("checkpoint", "missing folder", missing("nowhere"), "does not exist"),
    Case("checkpoint", "a file", raw("model.safetensors", b"{}"), "is a file"),
    Case("checkpoint", "no config.json", checkpoint(_without("config.json")), "has no config.json"),
    Case("checkpoint", "no weights", checkpoint(_without("model.safetensors")), "has no model.safetensors"),
    Case(
        "checkpoint", "pickled weights only", checkpoint(_pickled_weights_only),
        "offers its weights only as pickled pytorch_model.bin",
    ),
    Case("checkpoint", "truncated safetensors", checkpoint(_truncated_weights), "model.safetensors is damaged"),
    Case("checkpoint", "config.json not JSON", checkpoint(_config_text("{oops")), "is not a valid JSON file"),
    Case("checkpoint", "config.json a list", checkpoint(_config_text("[1]")), "expected a JSON object, got list"),
    Case(
        "checkpoint", "config.json nested too deep", checkpoint(_config_text("[" * 200_000)),
        "is not a valid JSON file",
    ),
    Case(
        "checkpoint", "unknown model_type, no code", checkpoint(_another_model_type_without_code),
        "its model_type 'bert-erc' is not one of hf_erc's",
    ),
    Case(
        "checkpoint", "unknown model_type, auto_map to code", checkpoint(_renamed_with_code),
        "Nothing was run. If you trust that code, opt in with --trust-remote-code",
    ),
    Case(
        "checkpoint", "config field of the wrong type", checkpoint(_config_fields(num_attention_heads="two")),
        "cannot be loaded as a 'sdt-erc' model",
    ),
    Case(
        "checkpoint", "processor that ships code", checkpoint(_foreign_processor),
        "its processor_class 'EvilProcessor' is not one of hf_erc's",
    ),
    Case(
        "checkpoint", "encoder that ships code", checkpoint(_encoder_with_code),
        "ships Python code (auto_map in its config.json)",
    ),
    Case(
        "checkpoint", "encoder record not JSON", checkpoint(_encoder_record("{oops")),
        "is not a readable encoder record",
    ),
    Case(
        "checkpoint", "encoder record of an unknown modality",
        checkpoint(_encoder_record(json.dumps({"smell": MINILM_SPEC.to_dict()}))), "unknown modalities ['smell']",
    ),
    # Checkpoint folders given to scripts/push_to_hub.py
    Case("push_to_hub", "missing folder", missing("nowhere"), "Checkpoint folder"),
    Case("push_to_hub", "no config.json", checkpoint(_without("config.json")), "has no config.json"),
    Case("push_to_hub", "config.json not JSON", checkpoint(_config_text("{oops")), "is not a valid JSON file"),
    Case(
        "push_to_hub", "unknown model_type", checkpoint(_another_model_type_without_code),
        "no model-card information for model_type 'bert-erc'",
    ),
    # The processor saved with a checkpoint (hf-erc show-inputs --model)
    Case(
        "show-inputs processor", "no processor_config.json", checkpoint(lambda path, marker: None),
        "has no processor_config.json",
    ),
    Case(
        "show-inputs processor", "processor that ships code", checkpoint(_foreign_processor),
        "its processor_class 'EvilProcessor' is not one of hf_erc's",
    ),
    # YAML configs of scripts/train.py
    Case(
        "train config", "!!python/object/apply",
        text("evil.yaml", 'model_type: sdt\nlearning_rate: !!python/object/apply:os.system ["touch {marker}"]\n'),
        "python/object/apply:os.system",
    ),
    Case("train config", "unknown key", text("config.yaml", "model_type: sdt\nbogus_key: 1\n"), "['bogus_key']"),
    Case(
        "train config", "a string for a number", text("config.yaml", "model_type: sdt\nnum_train_epochs: abc\n"),
        "invalid float value: 'abc'",
    ),
    Case(
        "train config", "a list for a number", text("config.yaml", "model_type: sdt\nlearning_rate: [1, 2]\n"),
        "learning_rate takes a single value, got a list",
    ),
    Case(
        "train config", "a mapping for a number", text("config.yaml", "model_type: sdt\nlearning_rate: {a: 1}\n"),
        "learning_rate takes a single value, got a dict",
    ),
    Case(
        "train config", "a boolean for a number", text("config.yaml", "model_type: sdt\nnum_train_epochs: true\n"),
        "invalid float value: 'True'",
    ),
    Case(
        "train config", "a list of lists", text("config.yaml", "model_type: sdt\nmodalities: [[text]]\n"),
        "modalities takes a list of single values",
    ),
    Case("train config", "not a mapping", text("config.yaml", "- a\n- b\n"), "expected a mapping"),
    Case(
        "train config", "not YAML", text("broken.yaml", "model_type: [sdt\n"),
        "broken.yaml is not a valid YAML config",
    ),
    Case("train config", "not UTF-8", raw("config.yaml", b"model_type: \xff\xfe\n"), "(not UTF-8 text"),
]


def _params(cases, channel: str):
    """The cases whose reader has ``channel`` (``read``, ``command``), a known gap marked as an expected failure."""
    return [
        pytest.param(case, id=f"{case.reader}: {case.name}", marks=_gap_marks(case))
        for case in cases
        if getattr(READERS[case.reader], channel) is not None
    ]


def _gap_marks(case: Case) -> list:
    return [pytest.mark.xfail(reason=case.gap, strict=False)] if case.gap else []


@pytest.fixture(scope="module")
def ready(text_only_checkpoint, talk):
    """What the command-line cases run against: a working checkpoint and a working video."""
    return {"checkpoint": text_only_checkpoint, "video": talk / "talk.mp4"}


@pytest.mark.parametrize("case", _params(CASES, "read"))
def test_the_api_refuses_a_hostile_input_in_one_line(case, tmp_path):
    marker = tmp_path / "marker"
    path = case.build(tmp_path, marker)
    with pytest.raises((ValueError, FileNotFoundError)) as caught:
        READERS[case.reader].read(path)
    message = str(caught.value)
    assert case.error in message
    assert "\n" not in message and len(message) < 1000, message
    assert not marker.exists(), "the hostile input ran code"


@pytest.mark.parametrize("case", _params(CASES, "command"))
def test_the_command_line_refuses_a_hostile_input_in_one_line(case, tmp_path, ready, capsys):
    marker = tmp_path / "marker"
    path = case.build(tmp_path, marker)
    main, argv = READERS[case.reader].command(path, ready)
    try:
        status = main(argv)
    except SystemExit as exit:  # argparse's own errors
        status = exit.code
    stderr = capsys.readouterr().err
    errors = [line for line in stderr.splitlines() if "error:" in line]
    assert status not in (0, None) and "Traceback" not in stderr
    assert len(errors) == 1 and case.error in errors[0], stderr[-2000:]
    assert not marker.exists(), "the hostile input ran code"


# ---- What hostile checkpoints may not do even when they load --------------------------------------------------------


def test_a_checkpoint_of_another_model_type_runs_its_code_only_with_the_opt_in(tmp_path, capsys):
    marker = tmp_path / "marker"
    path = checkpoint(_renamed_with_code)(tmp_path, marker)
    with pytest.raises(ValueError, match="trust_remote_code=True"):
        hf_erc.pipeline(str(path), device="cpu")
    assert hf_erc_main(["predict", str(SAMPLE_CONVERSATION), "--model", str(path)]) == 2
    assert not marker.exists()

    labeller = hf_erc.pipeline(str(path), device="cpu", trust_remote_code=True)
    assert marker.exists() and type(labeller.model).__module__.startswith("transformers_modules")
    capsys.readouterr()
    arguments = ["predict", str(SAMPLE_CONVERSATION), "--model", str(path), "--trust-remote-code", "--json"]
    assert hf_erc_main([*arguments, "--device", "cpu"]) == 0
    assert len(json.loads(capsys.readouterr().out)) == 8


def test_our_model_types_load_with_hf_erc_classes_whatever_code_and_pickles_they_carry(tmp_path):
    marker = tmp_path / "marker"

    def carry_code_and_pickles(path: Path, marker: Path) -> None:
        for module in ("configuration_sdt.py", "modeling_sdt.py"):
            _prepend(path / module, _marker_line(marker))
        (path / "pytorch_model.bin").write_bytes(pickle.dumps(_touch(marker)))
        shutil.copy(path / "modeling_sdt.py", path / "modeling_extra.py")

    path = checkpoint(carry_code_and_pickles)(tmp_path, marker)
    reference = SDTForEmotionRecognition.from_pretrained(path)
    labeller = hf_erc.pipeline(str(path), device="cpu")
    assert type(labeller.model) is SDTForEmotionRecognition and not marker.exists()
    for name, weight in reference.state_dict().items():
        torch.testing.assert_close(labeller.model.state_dict()[name], weight)


def test_only_hf_erc_own_code_counts_as_ours_for_the_quickstart_reload(tmp_path):
    """The quickstart reloads its checkpoint with trust_remote_code=True (to prove it loads without hf_erc) only when
    every Python file it ships is hf_erc's own, byte for byte."""
    from hf_erc.inference.checkpoints import foreign_code_files

    marker = tmp_path / "marker"
    clean = checkpoint(lambda path, marker: None)(tmp_path / "clean", marker)
    assert foreign_code_files(clean) == []

    def edit_and_add_code(path: Path, marker: Path) -> None:
        _prepend(path / "modeling_sdt.py", _marker_line(marker))
        (path / "helpers.py").write_text("x = 1\n")

    edited = checkpoint(edit_and_add_code)(tmp_path / "edited", marker)
    assert foreign_code_files(edited) == ["helpers.py", "modeling_sdt.py"] and not marker.exists()
