"""MAGTKD's stages through scripts/train.py on a tiny MELD-like dataset with real media files.

The stages chain as a user runs them: the text model (two gloo processes under `accelerate launch`), the audio
and video models (cross-entropy), the audio model distilled from the frozen text model (`kd`, starting from the
audio stage), then the dialogue-level fusion on cached utterance embeddings; its checkpoint loads without hf_erc
and peft. The stages build their inputs with MAGTKD's own processor, the one they save for serving.
"""


from pathlib import Path

import pytest
import torch
from transformers import AutoModel

import hf_erc
import hf_erc.models  # noqa: F401  (registers the Auto classes)
from hf_erc.data.collators import DialogueCollator
from hf_erc.data.errors import DataFormatError
from hf_erc.data.media import decode_audio
from hf_erc.inference.checkpoints import load_checkpoint_processor
from hf_erc.models import MAGTKDAudioModel, MAGTKDProcessor, MAGTKDTextModel, MAGTKDVideoModel
from hf_erc.training import RunArguments
from hf_erc.training import run as train_run
from hf_erc.training.arguments import parse_run_arguments
from hf_erc.training.recipes import get_recipe
from tests.utils.stage_data import HIDDEN, media_workspace, write_magtkd_config
from tests.utils.training import (
    accelerate_launcher,
    assert_loads_without_hf_erc_and_peft,
    count_checkpoint_loads,
    count_encoder_calls,
    read_json,
    run_script,
    train_in_process,
)

TINY_FUSION_CONFIG = {"hidden_size": HIDDEN, "num_attention_heads": 2}
# MAGTKD's MELD distillation (KD.py): CE + 0.1 * DIST(T=2) + 1.0 * feature KD; the toy's similarity softmax is
# sharper than the reference's T = 1, so that the feature term has room to fall.
KD_FIELDS = {
    "stage": "kd",
    "response_kd_type": "dist",
    "temperature": 2.0,
    "response_kd_weight": 0.1,
    "feature_kd_weight": 1.0,
    "feature_kd_temperature": 0.1,
    "hidden_state_key": "utterance_embeddings",
}


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    root = tmp_path_factory.mktemp("magtkd")
    media_workspace(root, train_dialogues=6, eval_dialogues=2)
    return root


def train(workspace, name, **fields):
    """One stage from its YAML file through `hf_erc.training.train` in this process (so a test can also watch what
    it calls); scripts/train.py under `accelerate launch` runs the text stage below."""
    output_dir = workspace / name
    train_in_process(write_magtkd_config(workspace / f"{name}.yaml", workspace, output_dir, **fields))
    return output_dir


@pytest.fixture(scope="module")
def text_dir(workspace):
    """The text stage under `accelerate launch` with two gloo processes."""
    output_dir = workspace / "text"
    config = write_magtkd_config(
        workspace / "text.yaml", workspace, output_dir, stage="text", modalities=["text"], num_train_epochs=2
    )
    run_script(accelerate_launcher(2) + ["scripts/train.py", "--config", str(config)])
    return output_dir


@pytest.fixture(scope="module")
def audio_dir(workspace):
    return train(workspace, "audio", stage="audio", modalities=["audio"])


@pytest.fixture(scope="module")
def video_dir(workspace):
    return train(workspace, "video", stage="video", modalities=["video"])


@pytest.fixture(scope="module")
def kd_audio_dir(workspace, text_dir, audio_dir):
    """The distilled audio model, starting from the audio stage, learning from the text model's cached outputs."""
    return train(
        workspace, "kd-audio", modalities=["audio"], model_name_or_path=str(audio_dir),
        teacher_model_name_or_path=str(text_dir), num_train_epochs=5, **KD_FIELDS,
    )  # fmt: skip


def stage_setup_and_served_processor(workspace, tmp_path, **fields):
    """A stage's setup in this process (nothing trained), and the processor it saves, loaded back as served."""
    config = write_magtkd_config(tmp_path / "stage.yaml", workspace, tmp_path / "stage", **fields)
    arguments = RunArguments.from_config(config)
    recipe = get_recipe("magtkd")
    _, stage = recipe.stage(arguments.model.stage)
    setup = stage.setup(recipe, arguments)
    (processor,) = setup.save_with_model
    processor.save_pretrained(tmp_path / "saved")
    served = load_checkpoint_processor(tmp_path / "saved")
    assert type(processor) is MAGTKDProcessor and type(served) is MAGTKDProcessor
    return setup, served


@pytest.mark.parametrize("preprocessing", ["default", "reference"])
def test_audio_stage_trains_on_what_its_saved_processor_serves(workspace, tmp_path, preprocessing):
    setup, served = stage_setup_and_served_processor(
        workspace, tmp_path, stage="audio", modalities=["audio"], preprocessing=preprocessing
    )
    assert served.preprocessing == preprocessing
    assert served.audio_window == ("first" if preprocessing == "reference" else "last")
    # The collator decodes each clip itself; serving gets the waveforms. Both must give the same tensors.
    rows = [setup.datasets["train"][index] for index in range(3)]
    batch = setup.data_collator(rows)
    rate = served.audio_sampling_rate
    waveforms = [decode_audio(row["media_path"], rate, row["media_start"], row["media_end"]) for row in rows]
    speakers, texts = [row["speaker"] for row in rows], [row["text"] for row in rows]
    inputs = served(speakers=speakers, texts=texts, audio=waveforms, sampling_rate=rate)
    assert torch.equal(batch["input_values"], inputs["input_values"])
    assert torch.equal(batch["attention_mask"], inputs["audio_attention_mask"])


@pytest.mark.parametrize("preprocessing", ["default", "reference"])
def test_text_stage_trains_on_what_its_saved_processor_serves(workspace, tmp_path, preprocessing):
    setup, served = stage_setup_and_served_processor(
        workspace, tmp_path, stage="text", modalities=["text"], preprocessing=preprocessing
    )
    # MAGTKD's reference numbers MELD speakers by the global table and writes the markers as plain text.
    assert served.speaker_numbering == ("vocabulary" if preprocessing == "reference" else "dialogue")
    view = setup.datasets["train"]
    dialogue = [row for row in view if row["dialogue_id"] == view[0]["dialogue_id"]]
    batch = setup.data_collator(dialogue)
    inputs = served(speakers=[row["speaker"] for row in dialogue], texts=[row["text"] for row in dialogue])
    for name in ("input_ids", "attention_mask", "prompt_positions"):
        assert torch.equal(batch[name], inputs[name]), name


def test_text_stage_runs_on_two_processes(text_dir):
    results = read_json(text_dir / "all_results.json")
    assert results["world_size"] == 2
    fingerprints = results["weights_sha256_per_rank"].split(",")
    assert len(fingerprints) == 2 and fingerprints[0] == fingerprints[1]
    config = read_json(text_dir / "config.json")
    assert config["model_type"] == "magtkd-erc-text" and config["text_config"]["model_type"] == "bert"
    assert (text_dir / "tokenizer_config.json").is_file()


def test_unimodal_stages_train_with_cross_entropy_only(audio_dir, video_dir):
    for output_dir, model_type in ((audio_dir, "magtkd-erc-audio"), (video_dir, "magtkd-erc-video")):
        assert read_json(output_dir / "config.json")["model_type"] == model_type
        history = read_json(output_dir / "trainer_state.json")["log_history"]
        logged = {key for entry in history for key in entry}
        assert "loss" in logged and not {"loss_response_kd", "loss_feature_kd"} & logged
        assert (output_dir / "processor_config.json").is_file()
        card = (output_dir / "README.md").read_text(encoding="utf-8")
        assert "MAGTKD: Multi-modal Anchor Gated Transformer" in card and "model-index" in card
        assert "pixel_values" in card  # the card describes a media model's inputs
        results = read_json(output_dir / "all_results.json")
        assert 0.0 <= results["test_weighted_f1"] <= 1.0
        if model_type == "magtkd-erc-audio":
            # The fixture's tone pitch follows the emotion (3 emotions): the audio stage must beat chance on test.
            # Its frames carry no emotion; the video path's learning is checked on planted hues in
            # tests/training/test_planted_signal.py.
            assert results["test_accuracy"] > 1 / 3 + 0.2, results
    # One utterance has no media at all: left out up front.
    assert read_json(audio_dir / "train_results.json")["train_skipped_no_audio"] == 1


def test_kd_stage_moves_the_student_towards_the_text_model(kd_audio_dir):
    history = read_json(kd_audio_dir / "trainer_state.json")["log_history"]
    epochs = [entry for entry in history if "loss_response_kd" in entry]
    assert len(epochs) == 5
    for term in ("loss_response_kd", "loss_feature_kd"):
        values = [entry[term] for entry in epochs]
        assert (values[-1] + values[-2]) / 2 < values[0], (term, values)
    assert read_json(kd_audio_dir / "config.json")["model_type"] == "magtkd-erc-audio"


def test_kd_stage_needs_the_text_model(workspace, audio_dir, capsys):
    config = write_magtkd_config(
        workspace / "no-teacher.yaml", workspace, workspace / "no-teacher", modalities=["audio"], **KD_FIELDS
    )
    assert train_run.main(["--config", str(config)]) == 2
    error = capsys.readouterr().err
    assert "train.py: error: This stage needs --teacher_model_name_or_path (a trained text model)." in error


def test_fusion_trains_on_cached_embeddings_and_the_checkpoint_loads_alone(
    workspace, text_dir, kd_audio_dir, video_dir, monkeypatch
):
    calls = count_encoder_calls(monkeypatch, (MAGTKDTextModel, MAGTKDAudioModel, MAGTKDVideoModel))
    loads = count_checkpoint_loads(monkeypatch)
    fusion = {
        "stage": "fusion",
        "config_overrides": TINY_FUSION_CONFIG,
        "teacher_model_name_or_path": str(text_dir),
        "audio_student_name_or_path": str(kd_audio_dir),
        "video_student_name_or_path": str(video_dir),
        "per_device_train_batch_size": 2,
        "num_train_epochs": 3,
        "learning_rate": 1e-3,
        "weight_decay": 1e-6,
    }
    output_dir = train(workspace, "fusion", **fusion)
    assert calls["setup"] > 0 and calls["training"] == 0  # the encoders ran once, before training
    stage_dirs = (text_dir, kd_audio_dir, video_dir)
    assert loads == {str(Path(path).resolve()): 1 for path in stage_dirs}  # each stage checkpoint read once
    cache_files = [path.name for path in (workspace / "cache").iterdir()]
    assert sum(name.startswith(("text-", "audio-", "video-")) for name in cache_files) == 9  # 3 splits x 3
    metrics = read_json(output_dir / "train_results.json")
    assert metrics["train_dialogues"] == 6
    assert metrics["train_utterances_with_audio"] == metrics["train_utterances"] - 2  # no media, corrupt file
    config = read_json(output_dir / "config.json")
    assert config["model_type"] == "magtkd-erc" and config["hidden_size"] == HIDDEN

    # A second run on the same checkpoints and data reads every embedding from the cache.
    calls.update(setup=0, training=0)
    train(workspace, "again", **{**fusion, "num_train_epochs": 1})
    assert calls == {"setup": 0, "training": 0}

    for name in ("model.safetensors", "modeling_magtkd.py", "configuration_magtkd.py"):
        assert (output_dir / name).is_file(), name
    generator = torch.Generator().manual_seed(0)
    inputs = {f"{m}_features": torch.randn(2, 3, HIDDEN, generator=generator) for m in ("text", "audio", "video")}
    inputs["attention_mask"] = torch.tensor([[1, 1, 1], [1, 1, 0]])
    inputs["speaker_ids"] = torch.tensor([[2, 3, 2], [6, 3, 0]])
    inputs["modality_mask"] = torch.ones(2, 3, 3, dtype=torch.bool)
    inputs["modality_mask"][0, 1, 1] = False
    assert_loads_without_hf_erc_and_peft(output_dir, inputs, workspace)


@pytest.mark.parametrize("dataset", ["meld", "iemocap"])
@pytest.mark.parametrize("stage", ["text", "audio", "video", "kd", "fusion"])
def test_shipped_configs_parse_to_a_registered_stage(dataset, stage):
    config = Path(__file__).resolve().parents[2] / "configs" / f"magtkd-{dataset}-{stage}.yaml"
    arguments = parse_run_arguments(
        ["--config", str(config), "--bf16", "false"]  # the GPU configs ask for bf16, which a CPU refuses
    )
    model_args, data_args, training_args = arguments.model, arguments.data, arguments.training
    assert (model_args.model_type, model_args.stage, data_args.dataset_name) == ("magtkd", stage, dataset)
    recipe = get_recipe("magtkd")
    _, stage_object = recipe.stage(stage)
    stage_object.model_class(recipe, data_args.modalities)  # the stage and its modalities agree
    assert training_args.max_grad_norm == 10.0 and training_args.metric_for_best_model == "eval_weighted_f1"
    if stage == "fusion":
        assert (training_args.learning_rate, training_args.weight_decay) == (1e-4, 1e-6)
        assert training_args.per_device_train_batch_size == 16 and training_args.num_train_epochs == 30
    else:
        expected_lr = 5e-6 if (dataset, stage) == ("iemocap", "audio") else 1e-5
        assert (training_args.learning_rate, training_args.weight_decay) == (expected_lr, 0.01)
        assert training_args.per_device_train_batch_size == 4 and training_args.num_train_epochs == 10


# --- speakers the MELD preset does not know -----------------------------------------------------------------
NEW_SPEAKERS = ("Ross", "Rachel", "Ann", "Zed")  # two of MELD's characters and two names its 304-name table lacks


@pytest.fixture(scope="module")
def new_speakers_workspace(tmp_path_factory):
    """MELD-layout data whose speakers mix MELD's characters with new names."""
    root = tmp_path_factory.mktemp("magtkd_new_speakers")
    media_workspace(root, train_dialogues=4, eval_dialogues=2, speakers=NEW_SPEAKERS)
    return root


@pytest.fixture(scope="module")
def new_speakers_text_dir(new_speakers_workspace):
    """The text stage with the authors' MELD preprocessing: speakers numbered by the 304-name table."""
    return train(
        new_speakers_workspace, "text", stage="text", modalities=["text"], preprocessing="reference", num_train_epochs=1
    )


def test_text_stage_trains_and_serves_speakers_its_preset_lacks(new_speakers_text_dir):
    assert read_json(new_speakers_text_dir / "train_results.json")["train_loss"] > 0
    processor = load_checkpoint_processor(new_speakers_text_dir)
    assert processor.speaker_numbering == "vocabulary" and len(processor.speaker_vocab) == 304
    # Ross keeps the table's marker (id 6); names it lacks are numbered after it, in order of appearance.
    prompt = processor.render_prompt(["Ross", "Ann"], ["so calm", "wow"], "Bea", "i am scared")
    assert prompt.startswith("<s7> so calm <s305> wow <s306> i am scared") and prompt.endswith("Now<s306> feels")

    conversation = [
        {"speaker": "Ann", "text": "i am so calm"},
        {"speaker": "Bea", "text": "wow really"},  # in neither the table nor the training data
        {"speaker": "Ross", "text": "you ok scared"},
    ]
    rows = hf_erc.pipeline(str(new_speakers_text_dir))(conversation)
    assert [row["speaker"] for row in rows] == ["Ann", "Bea", "Ross"]
    assert all(row["emotion"] in ("neutral", "surprise", "fear", "sadness", "joy", "disgust", "anger") for row in rows)


def test_fusion_trains_and_serves_speakers_its_preset_lacks_with_unknown_speaker_id(
    new_speakers_workspace, new_speakers_text_dir
):
    fusion = {
        "stage": "fusion",
        "modalities": ["text"],
        "preprocessing": "reference",  # the text stage's
        "teacher_model_name_or_path": str(new_speakers_text_dir),
        "per_device_train_batch_size": 2,
        "num_train_epochs": 2,
        "learning_rate": 1e-3,
        "weight_decay": 1e-6,
    }
    # The preset's default, as the authors: a name outside the table stops training, naming the setting to use.
    with pytest.raises(DataFormatError, match=r"is not in speaker_vocab.*unknown_speaker_id") as error:
        train(new_speakers_workspace, "fusion-default", config_overrides=TINY_FUSION_CONFIG, **fusion)
    assert "config_overrides: {num_speakers: 305, unknown_speaker_id: 304}" in str(error.value)

    # The setting from the YAML file: unknown names share a speaker row of their own.
    overrides = {**TINY_FUSION_CONFIG, "num_speakers": 305, "unknown_speaker_id": 304}
    output_dir = train(new_speakers_workspace, "fusion", config_overrides=overrides, **fusion)
    assert read_json(output_dir / "train_results.json")["train_dialogues"] == 4
    config = read_json(output_dir / "config.json")
    assert (config["num_speakers"], config["unknown_speaker_id"]) == (305, 304)

    # Served from the checkpoint alone: its configuration gives a new speaker the id training gave Ann and Zed.
    model = AutoModel.from_pretrained(output_dir).eval()
    collator = DialogueCollator(
        speaker_vocab=model.config.speaker_vocab,
        unknown_speaker_id=model.config.unknown_speaker_id,
        num_speakers=model.config.num_speakers,
        label_column=None,
    )
    dialogue = {"speaker": ["Bea", "Ross", "Ann"], "text_features": [[0.5] * HIDDEN] * 3}
    batch = collator([dialogue])
    assert batch["speaker_ids"].tolist() == [[304, model.config.speaker_vocab["Ross"], 304]]
    with torch.no_grad():
        logits = model(**batch).logits
    assert logits.shape == (1, 3, 7) and torch.isfinite(logits).all()
