"""TelME's three stages through scripts/train.py on a tiny MELD-like dataset with real media files.

The stages chain as a user runs them: the text teacher (two gloo processes under `accelerate launch`, a
BERT-family encoder), the audio student (cached teacher outputs) and the video student (live teacher), then
the fusion on cached embeddings; the final checkpoint loads without hf_erc and peft.
"""

import json
from pathlib import Path

import pytest
import torch

import hf_erc.models  # noqa: F401  (registers the Auto classes)
from hf_erc.models import TelMEAudioStudent, TelMEConfig, TelMETextTeacher, TelMEVideoStudent
from hf_erc.training import DistillationArguments, ERCTrainer, ERCTrainingArguments
from hf_erc.training import run as train_run
from tests.utils.stage_data import HIDDEN, TINY_CONFIG, VOCABULARY, media_workspace, write_stage_config
from tests.utils.training import (
    accelerate_launcher,
    assert_loads_without_hf_erc_and_peft,
    count_checkpoint_loads,
    count_encoder_calls,
    read_json,
    run_script,
    train_in_process,
)


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    root = tmp_path_factory.mktemp("telme")
    media_workspace(root, train_dialogues=8, eval_dialogues=3)
    return root


def write_config(path, workspace, output_dir, **fields):
    telme = {"model_type": "telme", "config_overrides": TINY_CONFIG, "num_train_epochs": 2}
    return write_stage_config(path, workspace, output_dir, **{**telme, **fields})


STUDENT_FIELDS = {
    "stage": "student",
    "response_kd_type": "dist",
    "temperature": 4.0,
    "response_kd_weight": 1.0,
    "feature_kd_weight": 1.0,
    "feature_kd_temperature": 1.0,
    "hidden_state_key": "utterance_embeddings",
    "logging_strategy": "epoch",
}


@pytest.fixture(scope="module")
def teacher_dir(workspace):
    """Stage 1 under `accelerate launch` with two gloo processes: the teacher checkpoint and its tokenizer."""
    output_dir = workspace / "teacher"
    config = write_config(
        workspace / "teacher.yaml", workspace, output_dir, stage="teacher", modalities=["text"],
        tokenizer_name_or_path=str(workspace / "tokenizer"), num_train_epochs=3,
    )  # fmt: skip
    run_script(accelerate_launcher(2) + ["scripts/train.py", "--config", str(config)])
    return output_dir


@pytest.fixture(scope="module")
def audio_student_dir(workspace, teacher_dir):
    """Stage 2, audio, distilled from the teacher's cached outputs (in this process: `hf_erc.training.train`)."""
    output_dir = workspace / "audio"
    config = write_config(
        workspace / "audio.yaml", workspace, output_dir, modalities=["audio"],
        teacher_model_name_or_path=str(teacher_dir), num_train_epochs=6,
        # A sharper similarity softmax than TelME's tau = 1, so that the toy's feature term has room to fall.
        **{**STUDENT_FIELDS, "feature_kd_temperature": 0.1},
    )  # fmt: skip
    _, warnings = train_in_process(config)
    return output_dir, warnings


@pytest.fixture(scope="module")
def video_student_dir(workspace, teacher_dir):
    """Stage 2, video, with the teacher run live on the text inputs the collator adds."""
    output_dir = workspace / "video"
    config = write_config(
        workspace / "video.yaml", workspace, output_dir, modalities=["video"],
        teacher_model_name_or_path=str(teacher_dir), cache_teacher_outputs=False, **STUDENT_FIELDS,
    )  # fmt: skip
    train_in_process(config)
    return output_dir


def tiny_teacher_config():
    return TelMEConfig.for_dataset(
        "meld", **{**TINY_CONFIG, "text_config": {**TINY_CONFIG["text_config"], "vocab_size": 30}}
    )


@torch.no_grad()
def test_bert_teacher_reads_the_same_with_or_without_left_padding():
    torch.manual_seed(0)
    teacher = TelMETextTeacher(tiny_teacher_config()).eval()
    assert type(teacher.encoder).__name__ == "BertModel" and teacher.config.text_first_position == 0
    tokens = torch.tensor([[5, 7, 9, 12, 3]])
    alone = teacher(input_ids=tokens, attention_mask=torch.ones_like(tokens))
    padded_ids = torch.tensor([[0, 0, 0, 5, 7, 9, 12, 3], [4, 6, 8, 10, 11, 5, 6, 3]])
    padded_mask = (torch.arange(8) >= torch.tensor([[3], [0]])).long()
    batch = teacher(input_ids=padded_ids, attention_mask=padded_mask)
    torch.testing.assert_close(batch.logits[:1], alone.logits, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(batch.utterance_embeddings[:1], alone.utterance_embeddings, atol=1e-5, rtol=1e-4)
    # Positions start at 0 (BERT), not at pad_token_id + 1 (RoBERTa): shifting them changes the output.
    shifted = teacher.encoder(input_ids=tokens, position_ids=torch.arange(1, 6)[None]).last_hidden_state[:, -1]
    assert not torch.allclose(teacher.projection(shifted), alone.utterance_embeddings, atol=1e-4)
    # The configuration round-trips as BERT.
    assert TelMEConfig.from_dict(teacher.config.to_dict()).text_config.model_type == "bert"


def test_trainer_distils_the_same_from_live_teacher_inputs_and_from_cached_outputs(tmp_path):
    torch.manual_seed(0)
    teacher = TelMETextTeacher(tiny_teacher_config()).eval()
    student = TelMEAudioStudent(tiny_teacher_config())
    arguments = ERCTrainingArguments(
        output_dir=str(tmp_path), use_cpu=True, eval_strategy="no", save_strategy="no", load_best_model_at_end=False
    )
    distillation = DistillationArguments(
        response_kd_type="dist", feature_kd_weight=1.0, hidden_state_key="utterance_embeddings"
    )
    live = ERCTrainer(model=student, args=arguments, teacher_model=teacher, distillation_args=distillation)
    cached = ERCTrainer(model=student, args=arguments, distillation_args=distillation)
    text = {
        "input_ids": torch.tensor([[0, 5, 7, 3], [4, 6, 8, 3]]),
        "attention_mask": torch.tensor([[0, 1, 1, 1], [1] * 4]),
    }
    batch = {
        "input_values": torch.randn(2, 3200),
        "attention_mask": torch.ones(2, 3200, dtype=torch.long),  # the student's (audio) mask
        "labels": torch.tensor([0, 2]),
    }
    teacher_outputs = teacher(**text)
    student.eval()
    live_batch = {**batch, **{f"teacher_{name}": value for name, value in text.items()}}
    cached_batch = {
        **batch,
        "cached_teacher_logits": teacher_outputs.logits,
        "cached_teacher_utterance_embeddings": teacher_outputs.utterance_embeddings,
    }
    live_loss = live.compute_loss(student, live_batch)
    cached_loss = cached.compute_loss(student, cached_batch)
    plain_loss = cached.compute_loss(student, batch)
    torch.testing.assert_close(live_loss, cached_loss)
    assert not torch.allclose(live_loss, plain_loss)  # the distillation terms were added


def test_student_stages_skip_missing_media_and_distil(audio_student_dir, video_student_dir):
    output_dir, warnings = audio_student_dir
    metrics = read_json(output_dir / "train_results.json")
    assert metrics["train_skipped_no_audio"] == 1 and metrics["train_utterances_skipped"] == 1
    assert "left out of its batch" in warnings  # the corrupt file, dropped when decoded
    assert (output_dir / "processor_config.json").is_file() and (output_dir / "model.safetensors").is_file()
    history = read_json(output_dir / "trainer_state.json")["log_history"]
    epochs = [entry for entry in history if "loss_response_kd" in entry]
    assert len(epochs) == 6
    for term in ("loss_response_kd", "loss_feature_kd", "loss_student"):
        values = [entry[term] for entry in epochs]
        assert (values[-1] + values[-2]) / 2 < values[0], (term, values)
    video_history = read_json(video_student_dir / "trainer_state.json")["log_history"]
    assert any("loss_feature_kd" in entry for entry in video_history)  # the live teacher ran
    assert read_json(video_student_dir / "config.json")["model_type"] == "telme-erc-video-student"


def test_fusion_trains_on_cached_embeddings_and_the_checkpoint_loads_alone(
    workspace, teacher_dir, audio_student_dir, video_student_dir, monkeypatch
):
    calls = count_encoder_calls(monkeypatch, (TelMETextTeacher, TelMEAudioStudent, TelMEVideoStudent))
    loads = count_checkpoint_loads(monkeypatch)
    paths = {
        "teacher_model_name_or_path": str(teacher_dir),
        "audio_student_name_or_path": str(audio_student_dir[0]),
        "video_student_name_or_path": str(video_student_dir),
    }
    output_dir = workspace / "fusion"
    fusion = {"stage": "fusion", "config_overrides": {}, **paths}
    config = write_config(workspace / "fusion.yaml", workspace, output_dir, num_train_epochs=3, **fusion)
    assert train_run.main(["--config", str(config)]) == 0
    assert calls["setup"] > 0 and calls["training"] == 0  # encoders ran once, before training, never in epochs
    # Each stage checkpoint was read from disk once.
    assert loads == {str(Path(path).resolve()): 1 for path in paths.values()}
    cache_files = sorted(path.name for path in (workspace / "cache").iterdir())
    assert sum(name.startswith(("text-", "audio-", "video-")) for name in cache_files) == 9  # 3 splits x 3
    metrics = read_json(output_dir / "train_results.json")
    assert metrics["train_utterances_with_audio"] == metrics["train_utterances"] - 2  # no media, corrupt file

    # A second fusion run on the same checkpoints and data reads every embedding from the cache.
    calls.update(setup=0, training=0)
    again = write_config(workspace / "again.yaml", workspace, workspace / "again", num_train_epochs=1, **fusion)
    assert train_run.main(["--config", str(again)]) == 0
    assert calls == {"setup": 0, "training": 0}

    # The final checkpoint: the whole model and its processor, loadable without hf_erc and peft.
    for name in ("model.safetensors", "modeling_telme.py", "configuration_telme.py", "processor_config.json"):
        assert (output_dir / name).is_file(), name
    generator = torch.Generator().manual_seed(0)
    inputs = {
        "text_embeddings": torch.randn(3, HIDDEN, generator=generator),
        "audio_embeddings": torch.randn(3, HIDDEN, generator=generator),
        "video_embeddings": torch.randn(3, HIDDEN, generator=generator),
        "modality_mask": torch.tensor([[True, True, True], [True, False, True], [True, False, False]]),
    }
    assert_loads_without_hf_erc_and_peft(output_dir, inputs, workspace)


@pytest.mark.slow
def test_fusion_stage_with_two_processes(workspace, teacher_dir, audio_student_dir, video_student_dir):
    """Stage 3 under `accelerate launch` with two gloo ranks: one model, identical weights on both ranks."""
    output_dir = workspace / "fusion-ddp"
    config = write_config(
        workspace / "fusion-ddp.yaml", workspace, output_dir, num_train_epochs=2, stage="fusion", config_overrides={},
        teacher_model_name_or_path=str(teacher_dir), audio_student_name_or_path=str(audio_student_dir[0]),
        video_student_name_or_path=str(video_student_dir),
    )  # fmt: skip
    run_script(accelerate_launcher(2) + ["scripts/train.py", "--config", str(config)])
    metrics = read_json(output_dir / "train_results.json")
    assert metrics["world_size"] == 2
    fingerprints = metrics["weights_sha256_per_rank"].split(",")
    assert len(fingerprints) == 2 and fingerprints[0] == fingerprints[1]
    assert (output_dir / "model.safetensors").is_file()


def test_teacher_stage_output(teacher_dir):
    results = read_json(teacher_dir / "all_results.json")
    assert results["world_size"] == 2
    fingerprints = results["weights_sha256_per_rank"].split(",")
    assert len(fingerprints) == 2 and fingerprints[0] == fingerprints[1]
    config = read_json(teacher_dir / "config.json")
    assert config["model_type"] == "telme-erc-text-teacher" and config["text_config"]["model_type"] == "bert"
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(teacher_dir)
    assert tokenizer.convert_tokens_to_ids("<s9>") == len(VOCABULARY) + 8
    assert config["text_config"]["vocab_size"] == len(tokenizer)
    assert json.loads((teacher_dir / "training_summary.json").read_text())["stage"] == "teacher"
    # A stage checkpoint carries a model card too, with its results in the model-index.
    card = (teacher_dir / "README.md").read_text(encoding="utf-8")
    assert "TelME: Teacher-leading Multimodal Fusion Network" in card and "model-index" in card
    assert "prompt_positions" in card  # the card describes this checkpoint's inputs, not a dialogue model's


@torch.no_grad()
def test_prompt_tuned_bert_teacher_folds_into_the_same_outputs():
    from hf_erc.training.teachers import TeacherPeftArguments, apply_peft, fold_peft

    torch.manual_seed(0)
    teacher = TelMETextTeacher(tiny_teacher_config())
    apply_peft(teacher, TeacherPeftArguments(method="prompt_tuning", num_virtual_tokens=3))
    torch.nn.init.normal_(teacher.encoder.peft_model.prompt_encoder["default"].embedding.weight)
    teacher.eval()
    inputs = {
        "input_ids": torch.tensor([[0, 0, 5, 7, 3], [4, 6, 8, 9, 3]]),
        "attention_mask": torch.tensor([[0, 0, 1, 1, 1], [1] * 5]),
    }
    trained = teacher(**inputs).logits
    alone = teacher(input_ids=inputs["input_ids"][:1, 2:]).logits
    torch.testing.assert_close(trained[:1], alone, atol=1e-5, rtol=1e-4)  # left padding does not move positions
    fold_peft(teacher)
    assert teacher.config.text_num_virtual_tokens == 3
    torch.testing.assert_close(teacher(**inputs).logits, trained, atol=1e-5, rtol=1e-4)


def test_lora_teacher_stage_saves_a_folded_checkpoint(workspace, tmp_path):
    from safetensors.torch import load_file

    output_dir = tmp_path / "lora"
    config = write_config(
        tmp_path / "lora.yaml", workspace, output_dir, stage="teacher", modalities=["text"], num_train_epochs=1,
        tokenizer_name_or_path=str(workspace / "tokenizer"), method="lora", lora_r=2,
    )  # fmt: skip
    assert train_run.main(["--config", str(config)]) == 0
    weights = load_file(output_dir / "model.safetensors")
    assert not [name for name in weights if "lora" in name or "base_model" in name]
    results = read_json(output_dir / "all_results.json")
    reloaded = TelMETextTeacher.from_pretrained(output_dir)
    assert reloaded.encoder.encoder.layer[0].attention.self.query.weight.shape == (HIDDEN, HIDDEN)
    assert 0.0 <= results["test_weighted_f1"] <= 1.0
