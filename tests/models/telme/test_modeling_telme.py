"""TelME: the common battery on the whole model and on the text teacher, plus the TelME-specific checks."""

import json

import pytest
import torch
from transformers import AutoModel, Data2VecAudioModel, RobertaModel, TimesformerModel

import hf_erc.models  # noqa: F401  (registers the Auto classes)
from hf_erc import labels as hf_erc_labels
from hf_erc.models import (
    TelMEAudioStudent,
    TelMEAudioStudentConfig,
    TelMEConfig,
    TelMEForEmotionRecognition,
    TelMETextTeacher,
    TelMETextTeacherConfig,
    TelMEVideoStudent,
)
from hf_erc.models.telme.modeling_telme import TelMEAttentionShiftingFusion
from tests.utils.tiny_telme import (
    FRAME_SIZE,
    HIDDEN,
    NUM_FRAMES,
    TEXT_VOCAB,
    audio_inputs,
    text_inputs,
    tiny_config,
)

from ..test_modeling_common import ModelTesterMixin


def utterance_batch(config, text_lengths, audio_lengths, seed=0, missing=(), labels=None):
    """Full TelME inputs; `missing` lists (row, "audio"|"video") to mark absent (their inputs hold NaN)."""
    generator = torch.Generator().manual_seed(seed + 1)
    batch_size = len(text_lengths)
    inputs = text_inputs(text_lengths, seed)
    inputs.update(audio_inputs(audio_lengths, seed))
    inputs["pixel_values"] = torch.randn(batch_size, NUM_FRAMES, 3, FRAME_SIZE, FRAME_SIZE, generator=generator)
    modality_mask = torch.ones(batch_size, 3, dtype=torch.bool)
    for row, modality in missing:
        modality_mask[row, ("text", "audio", "video").index(modality)] = False
        key = "input_values" if modality == "audio" else "pixel_values"
        inputs[key][row] = float("nan")  # never read: a missing modality's inputs may hold anything
    inputs["modality_mask"] = modality_mask
    if labels is None:
        labels = torch.randint(0, config.num_labels, (batch_size,), generator=generator)
    inputs["labels"] = torch.as_tensor(labels)
    return inputs


def trim_example(inputs, index):
    """Example `index` alone: its text without left padding, its audio without right padding."""
    single = {name: value[index : index + 1] for name, value in inputs.items()}
    if "attention_mask" in single:
        length = int(single["attention_mask"].sum())
        single["input_ids"] = single["input_ids"][:, -length:]
        single["attention_mask"] = single["attention_mask"][:, -length:]
    if "audio_attention_mask" in single:
        length = max(int(single["audio_attention_mask"].sum()), 1)
        single["input_values"] = single["input_values"][:, :length]
        single["audio_attention_mask"] = single["audio_attention_mask"][:, :length]
    return single


class TestTelMEModel(ModelTesterMixin):
    model_class = TelMEForEmotionRecognition
    # The fusion stage's loss is the fused CE: the unimodal classifiers (trained in stages 1-2) get no gradient,
    # nor do the fusion attention's query/key projections in the default "utterance" scope (see modeling_telme).
    unused_parameters = (
        "text_teacher.classifier.weight",
        "text_teacher.classifier.bias",
        "audio_student.classifier.weight",
        "audio_student.classifier.bias",
        "video_student.classifier.weight",
        "video_student.classifier.bias",
        "fusion.attention.q_proj.weight",
        "fusion.attention.q_proj.bias",
        "fusion.attention.k_proj.weight",
        "fusion.attention.k_proj.bias",
    )

    def get_config(self, **overrides):
        return tiny_config(**overrides)

    def prepare_inputs(self, config, batch_size=3, seed=0):
        text_lengths = [9, 6, 4, 7, 5][:batch_size]
        # One audio length: data2vec-audio's stacked positional convolutions see padded frames (non-zero after
        # the first layer), so its outputs move slightly (~1e-4) with the padding; the edge cases mix lengths.
        audio_lengths = [640] * batch_size
        missing = [(1, "audio"), (min(2, batch_size - 1), "video")]
        return utterance_batch(config, text_lengths, audio_lengths, seed, missing)

    def prepare_edge_case_inputs(self, config):
        # Row 0 has neither audio nor video, row 1 no audio, row 2 a one-token text; row 3 is unlabelled.
        return utterance_batch(
            config, [8, 5, 1, 3], [600, 400, 300, 200], missing=[(0, "audio"), (0, "video"), (1, "audio")],
            labels=[0, 3, 6, -100],
        )  # fmt: skip

    def single_example_inputs(self, inputs, index):
        return trim_example(inputs, index)

    def example_logits(self, logits, inputs, index):
        return logits[index]

    def test_text_only_config(self):
        """Without audio or video inputs, TelME is its teacher plus the fusion's text path."""
        config = self.get_config()
        model = self.build_model(config).train()
        text_keys = ("input_ids", "attention_mask", "labels")
        inputs = {k: v for k, v in self.prepare_inputs(config).items() if k in text_keys}
        outputs = model(**inputs)
        assert set(outputs.modality_logits) == {"text"} and set(outputs.utterance_embeddings) == {"text"}
        assert (outputs.shift_scale == 0).all()
        outputs.loss.backward()


class TestTelMETextTeacher(ModelTesterMixin):
    """The stage-1 checkpoint on its own, with two virtual tokens (a folded prompt)."""

    model_class = TelMETextTeacher

    def get_config(self, **overrides):
        return tiny_config(text_num_virtual_tokens=2, **overrides).stage_config(TelMETextTeacherConfig)

    def get_text_only_config(self):
        return self.get_config()

    def prepare_inputs(self, config, batch_size=3, seed=0):
        inputs = text_inputs([9, 6, 4, 7, 5][:batch_size], seed)
        inputs["labels"] = torch.arange(batch_size) % config.num_labels
        return inputs

    def prepare_edge_case_inputs(self, config):
        inputs = text_inputs([1, 12, 2], seed=3)
        inputs["labels"] = torch.tensor([-100, 4, 1])
        return inputs

    def single_example_inputs(self, inputs, index):
        return trim_example(inputs, index)

    def example_logits(self, logits, inputs, index):
        return logits[index]


def test_labels_and_dataset_presets():
    for dataset in ("meld", "iemocap"):
        config = TelMEConfig.for_dataset(dataset)
        names = hf_erc_labels.emotion_names(dataset)
        assert [config.id2label[index] for index in range(config.num_labels)] == list(names)
        assert config.label2id == hf_erc_labels.label2id(dataset)
        assert config.audio_config.mask_time_length == 3
        assert config.text_config.vocab_size == 50265 + 9 and config.text_config.hidden_size == 1024
        assert (config.video_num_frames, config.video_frame_size) == (8, 224)
    meld, iemocap = TelMEConfig.for_dataset("meld"), TelMEConfig.for_dataset("iemocap")
    assert (meld.fusion_num_heads, meld.fusion_beta_shift, meld.max_clip_seconds) == (3, 0.1, 30.0)
    assert (iemocap.fusion_num_heads, iemocap.fusion_beta_shift, iemocap.max_clip_seconds) == (4, 0.2, None)
    assert TelMEConfig().id2label == meld.id2label
    with pytest.raises(ValueError, match="one of"):
        TelMEConfig.for_dataset("friends")
    with pytest.raises(ValueError, match="must equal projection_size"):
        TelMEConfig(fusion_hidden_size=512)
    with pytest.raises(ValueError, match="must divide"):
        TelMEConfig(fusion_num_heads=5)
    assert TelMEConfig(text_num_virtual_tokens=4).text_max_length == 512  # the processor keeps 508 tokens
    with pytest.raises(ValueError, match="positions of the text encoder"):
        TelMEConfig(text_max_length=513)


def test_fusion_parameter_count_matches_the_reference():
    """Spec fact: on MELD the ASF has 12,403,975 parameters (hidden 768, 3 heads over 1536-d, 7 classes)."""
    meld = TelMEAttentionShiftingFusion(TelMEConfig.for_dataset("meld"))
    count = sum(parameter.numel() for parameter in meld.parameters())
    assert count == 12_403_975
    # IEMOCAP: 4 heads (same weights), 6 classes: one row of 768 + 1 fewer.
    iemocap = TelMEAttentionShiftingFusion(TelMEConfig.for_dataset("iemocap"))
    assert sum(parameter.numel() for parameter in iemocap.parameters()) == 12_403_975 - 769


@torch.no_grad()
def test_missing_modalities_fall_back_without_nan():
    config = tiny_config()
    torch.manual_seed(0)
    model = TelMEForEmotionRecognition(config).eval()
    inputs = utterance_batch(config, [7, 5, 6], [800, 600, 500], missing=[(0, "audio"), (0, "video"), (1, "video")])
    outputs = model(**inputs)
    assert torch.isfinite(outputs.logits).all() and torch.isfinite(outputs.loss)
    text = model.text_teacher.embed(inputs["input_ids"], inputs["attention_mask"])
    # Both missing: no shift, the fusion's text path.
    torch.testing.assert_close(outputs.logits[0], model.fusion.classifier(model.fusion.layer_norm(text[0])))
    assert outputs.shift_scale[0] == 0 and (outputs.shift_scale[1:] > 0).all()
    # Video missing: the shift comes from the audio embedding with a zero video half.
    audio = model.audio_student.embed(inputs["input_values"][1:2], inputs["audio_attention_mask"][1:2])
    expected, _, _ = model.fusion(text[1:2], audio, torch.zeros(1, HIDDEN))
    torch.testing.assert_close(outputs.logits[1:2], expected)
    torch.testing.assert_close(outputs.utterance_embeddings["video"][:2], torch.zeros(2, HIDDEN))
    # The same through audio_mask/video_mask instead of modality_mask.
    mask = inputs["modality_mask"]
    separate = dict(inputs, modality_mask=None, audio_mask=mask[:, 1], video_mask=mask[:, 2])
    torch.testing.assert_close(model(**separate).logits, outputs.logits)
    with pytest.raises(ValueError, match="needs every utterance's text"):
        model(**dict(inputs, modality_mask=torch.zeros(3, 3, dtype=torch.bool)))


@torch.no_grad()
def test_cached_embeddings_match_full_forward():
    config = tiny_config()
    torch.manual_seed(0)
    model = TelMEForEmotionRecognition(config).eval()
    inputs = utterance_batch(config, [7, 5, 6], [800, 600, 500], missing=[(2, "audio")])
    full = model(**inputs)
    raw_keys = ("input_ids", "attention_mask", "input_values", "audio_attention_mask", "pixel_values")
    raw = {k: inputs[k] for k in raw_keys}
    cached = model.compute_utterance_embeddings(**raw)
    assert set(cached) == {"text", "audio", "video"}
    from_cache = model(
        text_embeddings=cached["text"],
        audio_embeddings=cached["audio"],
        video_embeddings=cached["video"],
        modality_mask=inputs["modality_mask"],
        labels=inputs["labels"],
    )
    torch.testing.assert_close(from_cache.logits, full.logits)
    torch.testing.assert_close(from_cache.loss, full.loss)
    for modality in ("text", "audio", "video"):
        torch.testing.assert_close(from_cache.modality_logits[modality], full.modality_logits[modality])


@torch.no_grad()
def test_virtual_tokens_match_peft_prompt_tuning_and_move_the_read_position():
    peft = pytest.importorskip("peft")
    num_virtual = 3
    config = tiny_config(text_num_virtual_tokens=num_virtual)
    torch.manual_seed(0)
    teacher = TelMETextTeacher(config).eval()
    plain = TelMETextTeacher(tiny_config()).eval()
    plain.load_state_dict({k: v for k, v in teacher.state_dict().items() if k != "virtual_token_embeddings"})
    inputs = text_inputs([6, 4], seed=2)

    # A PEFT prompt-tuned copy of the encoder: its virtual tokens folded into ours must give the same output.
    peft_config = peft.PromptTuningConfig(task_type=peft.TaskType.FEATURE_EXTRACTION, num_virtual_tokens=num_virtual)
    encoder = RobertaModel(config.text_config, add_pooling_layer=False)
    encoder.load_state_dict(teacher.encoder.state_dict())
    prompted = peft.get_peft_model(encoder, peft_config).eval()
    teacher.virtual_token_embeddings.copy_(prompted.get_prompt_embedding_to_save("default"))
    row = trim_example(inputs, 1)  # unpadded: PEFT numbers the positions of padded rows differently
    hidden = prompted(input_ids=row["input_ids"], attention_mask=row["attention_mask"]).last_hidden_state
    assert hidden.shape[1] == num_virtual + row["input_ids"].shape[1]
    torch.testing.assert_close(teacher.embed(**row), teacher.projection(hidden[:, -1]))

    # The prompt changes the output; the read position follows the mask under left or right padding.
    assert not torch.allclose(teacher.embed(**inputs), plain.embed(**inputs))
    left = teacher.embed(**inputs)
    right_ids = torch.full_like(inputs["input_ids"], 1)
    right_mask = torch.zeros_like(inputs["attention_mask"])
    lengths = inputs["attention_mask"].sum(1)
    for index, length in enumerate(lengths.tolist()):
        right_ids[index, :length] = inputs["input_ids"][index, -length:]
        right_mask[index, :length] = 1
    torch.testing.assert_close(teacher.embed(right_ids, right_mask), left, atol=1e-5, rtol=1e-4)
    at_mask = teacher.embed(right_ids, right_mask, prompt_positions=lengths - 1)
    torch.testing.assert_close(at_mask, left, atol=1e-5, rtol=1e-4)
    last = torch.full((2,), inputs["input_ids"].shape[1] - 1)
    torch.testing.assert_close(teacher.embed(**inputs, prompt_positions=last), left)


@torch.no_grad()
def test_batch_attention_scope_is_the_utterance_scope_for_one_utterance():
    torch.manual_seed(0)
    model = TelMEForEmotionRecognition(tiny_config()).eval()
    batch_scope = TelMEForEmotionRecognition(tiny_config(fusion_attention_scope="batch")).eval()
    batch_scope.load_state_dict(model.state_dict())
    inputs = utterance_batch(tiny_config(), [5, 7, 4], [500, 600, 700])
    one = trim_example(inputs, 0)
    torch.testing.assert_close(batch_scope(**one).logits, model(**one).logits)
    # Across a batch the reference's attention mixes utterances: the first one's logits change.
    assert not torch.allclose(batch_scope(**inputs).logits[0], model(**inputs).logits[0])


def test_stage_checkpoints_load_as_their_class_and_assemble(tmp_path):
    config = tiny_config()
    torch.manual_seed(0)
    stages = {
        "teacher": TelMETextTeacher(config),
        "audio": TelMEAudioStudent(config),
        "video": TelMEVideoStudent(config),
    }
    for name, stage in stages.items():
        stage.eval().save_pretrained(tmp_path / name)
        reloaded = AutoModel.from_pretrained(tmp_path / name)
        assert type(reloaded) is type(stage), name
    inputs = utterance_batch(config, [7, 5], [800, 600])
    model = TelMEForEmotionRecognition.from_stage_checkpoints(
        tmp_path / "teacher", tmp_path / "audio", tmp_path / "video", fusion_beta_shift=0.3
    ).eval()
    assert model.config.fusion_beta_shift == 0.3 and type(model.config) is TelMEConfig
    with torch.no_grad():
        outputs = model(**inputs)
        torch.testing.assert_close(
            outputs.modality_logits["text"], stages["teacher"](inputs["input_ids"], inputs["attention_mask"]).logits
        )
        audio = stages["audio"](inputs["input_values"], inputs["audio_attention_mask"])
        torch.testing.assert_close(outputs.modality_logits["audio"], audio.logits)
        torch.testing.assert_close(outputs.utterance_embeddings["audio"], audio.utterance_embeddings)
        torch.testing.assert_close(outputs.modality_logits["video"], stages["video"](inputs["pixel_values"]).logits)

        model.save_pretrained(tmp_path / "fused")
        again = TelMEForEmotionRecognition.from_stage_checkpoints(
            tmp_path / "teacher", tmp_path / "audio", tmp_path / "video", fusion=tmp_path / "fused"
        ).eval()
        assert again.config.fusion_beta_shift == 0.3  # the fusion checkpoint's setting
        torch.testing.assert_close(again(**inputs).logits, outputs.logits)

    TelMEAudioStudent(tiny_config("iemocap")).save_pretrained(tmp_path / "iemocap_audio")
    with pytest.raises(ValueError, match="same label set"):
        TelMEForEmotionRecognition.from_stage_checkpoints(
            tmp_path / "teacher", tmp_path / "iemocap_audio", tmp_path / "video"
        )


def test_from_encoders_pretrained(tmp_path):
    config = tiny_config()
    torch.manual_seed(1)
    encoders = {
        "text": RobertaModel(config.text_config),
        "audio": Data2VecAudioModel(config.audio_config),
        "video": TimesformerModel(config.video_config),
    }
    for name, encoder in encoders.items():
        encoder.save_pretrained(tmp_path / name)
    model = TelMEForEmotionRecognition.from_encoders_pretrained(
        tmp_path / "text", tmp_path / "audio", tmp_path / "video", dataset="iemocap", projection_size=HIDDEN,
        fusion_hidden_size=HIDDEN, fusion_num_heads=2, text_max_length=24,
    )  # fmt: skip
    assert model.config.num_labels == 6 and model.config.audio_config.mask_time_length == 3
    embeddings = model.text_teacher.encoder.get_input_embeddings().weight
    assert embeddings.shape[0] == TEXT_VOCAB + 9
    torch.testing.assert_close(embeddings[:TEXT_VOCAB], encoders["text"].get_input_embeddings().weight)
    for name in ("audio", "video"):
        reference = encoders[name].state_dict()
        loaded = model.unimodal_models()[name].encoder.state_dict()
        assert set(loaded) == set(reference)
        for key, value in reference.items():
            torch.testing.assert_close(loaded[key], value, msg=f"{name}.{key}")

    # One stage at a time (the teacher stage starts from RoBERTa alone).
    teacher = TelMETextTeacher.from_encoder_pretrained(
        tmp_path / "text", dataset="meld", projection_size=HIDDEN, fusion_hidden_size=HIDDEN, fusion_num_heads=2,
        text_max_length=24,
    )  # fmt: skip
    assert type(teacher.config) is TelMETextTeacherConfig and teacher.config.num_labels == 7
    torch.testing.assert_close(teacher.encoder.get_input_embeddings().weight[:TEXT_VOCAB], embeddings[:TEXT_VOCAB])
    video = TelMEVideoStudent.from_encoder_pretrained(tmp_path / "video", dataset="iemocap")
    expected = encoders["video"].state_dict()["layernorm.weight"]
    torch.testing.assert_close(video.encoder.state_dict()["layernorm.weight"], expected)
    with pytest.raises(TypeError, match="from_encoders_pretrained"):
        TelMEForEmotionRecognition.from_encoder_pretrained(tmp_path / "text")


# --- modalities and assembly from stage models ------------------------------------------------------------
def test_modalities_setting_validates_and_round_trips(tmp_path):
    config = tiny_config(modalities=["audio", "text"])
    assert config.modalities == ["text", "audio"]  # canonical order
    assert TelMEConfig.for_dataset("iemocap", modalities=["text", "video"]).modalities == ["text", "video"]
    assert TelMEConfig().modalities == ["text", "audio", "video"] and TelMEConfig().dataset_name is None
    assert TelMEConfig.for_dataset("meld").dataset_name == "meld"
    with pytest.raises(ValueError, match="must contain 'text'"):
        TelMEConfig(modalities=["audio", "video"])
    with pytest.raises(ValueError, match="must contain 'text'"):
        TelMEConfig(modalities=["text", "depth"])

    # Stage configs derive from TelMEConfig: they keep the setting and round-trip through JSON.
    stage = config.stage_config(TelMEAudioStudentConfig)
    assert type(stage) is TelMEAudioStudentConfig and stage.modalities == ["text", "audio"]
    for saved in (config, stage):
        saved.save_pretrained(tmp_path / saved.model_type)
        reloaded = type(saved).from_pretrained(tmp_path / saved.model_type)
        assert reloaded.modalities == ["text", "audio"] and reloaded.to_dict() == saved.to_dict()

    # A checkpoint written before the setting existed loads with all three modalities.
    model = TelMEForEmotionRecognition(tiny_config())
    model.save_pretrained(tmp_path / "old")
    config_file = tmp_path / "old" / "config.json"
    fields = json.loads(config_file.read_text())
    del fields["modalities"], fields["dataset_name"]
    config_file.write_text(json.dumps(fields))
    assert TelMEForEmotionRecognition.from_pretrained(tmp_path / "old").config.modalities == ["text", "audio", "video"]


@torch.no_grad()
def test_unconfigured_modality_is_never_read():
    """A text+audio TelME treats video as missing everywhere: its inputs may hold anything."""
    torch.manual_seed(0)
    full = TelMEForEmotionRecognition(tiny_config()).eval()
    text_audio = TelMEForEmotionRecognition(tiny_config(modalities=["text", "audio"])).eval()
    text_audio.load_state_dict(full.state_dict())
    inputs = utterance_batch(text_audio.config, [7, 5, 6], [800, 600, 500], missing=[(1, "audio")])
    outputs = text_audio(**inputs)
    assert torch.isfinite(outputs.logits).all() and torch.isfinite(outputs.loss)
    assert set(outputs.modality_logits) == {"text", "audio"} and set(outputs.utterance_embeddings) == {"text", "audio"}
    for pixel_values in (torch.full_like(inputs["pixel_values"], float("nan")), -inputs["pixel_values"]):
        changed = text_audio(**dict(inputs, pixel_values=pixel_values, video_embeddings=torch.randn(3, HIDDEN)))
        torch.testing.assert_close(changed.logits, outputs.logits, rtol=0, atol=0)
        torch.testing.assert_close(changed.loss, outputs.loss, rtol=0, atol=0)
    # The same as the full model with the video column of modality_mask False.
    mask = inputs["modality_mask"].clone()
    mask[:, 2] = False
    torch.testing.assert_close(full(**dict(inputs, modality_mask=mask)).logits, outputs.logits)
    assert set(text_audio.compute_utterance_embeddings(pixel_values=inputs["pixel_values"])) == set()


def _save_stages(tmp_path, config):
    torch.manual_seed(0)
    stages = {
        "teacher": TelMETextTeacher(config),
        "audio": TelMEAudioStudent(config),
        "video": TelMEVideoStudent(config),
    }
    for name, stage in stages.items():
        stage.save_pretrained(tmp_path / name)
    fusion = TelMEForEmotionRecognition(tiny_config(fusion_beta_shift=0.3))
    fusion.save_pretrained(tmp_path / "fusion")
    return {name: tmp_path / name for name in (*stages, "fusion")}


def test_from_stage_models_equals_from_stage_checkpoints(tmp_path):
    paths = _save_stages(tmp_path, tiny_config())
    from_paths = TelMEForEmotionRecognition.from_stage_checkpoints(
        paths["teacher"], paths["audio"], paths["video"], fusion=paths["fusion"], fusion_dropout=0.1
    )
    loaded = {
        "text_teacher": TelMETextTeacher.from_pretrained(paths["teacher"]),
        "audio_student": TelMEAudioStudent.from_pretrained(paths["audio"]),
        "video_student": TelMEVideoStudent.from_pretrained(paths["video"]),
        "fusion": TelMEForEmotionRecognition.from_pretrained(paths["fusion"]),
    }
    teacher_config = loaded["text_teacher"].config.to_dict()
    from_models = TelMEForEmotionRecognition.from_stage_models(**loaded, fusion_dropout=0.1)
    assert from_models.config.to_dict() == from_paths.config.to_dict()
    assert from_models.config.fusion_beta_shift == 0.3 and from_models.config.fusion_dropout == 0.1
    assert from_models.config.modalities == ["text", "audio", "video"]
    expected, actual = from_paths.state_dict(), from_models.state_dict()
    assert expected.keys() == actual.keys()
    for name in expected:
        assert torch.equal(expected[name], actual[name]), name
    assert loaded["text_teacher"].config.to_dict() == teacher_config  # the given models are left as they are

    # A student left out: its modality is dropped and it keeps its fresh weights.
    text_audio = TelMEForEmotionRecognition.from_stage_models(loaded["text_teacher"], loaded["audio_student"])
    assert text_audio.config.modalities == ["text", "audio"]
    torch.testing.assert_close(
        text_audio.audio_student.state_dict()["classifier.weight"], loaded["audio_student"].classifier.weight
    )
    assert not torch.equal(text_audio.video_student.classifier.weight, loaded["video_student"].classifier.weight)


def test_stage_label_mismatch_names_the_sources(tmp_path):
    paths = _save_stages(tmp_path, tiny_config())
    TelMEAudioStudent(tiny_config("iemocap")).save_pretrained(tmp_path / "iemocap_audio")
    with pytest.raises(ValueError, match="same label set") as error:
        TelMEForEmotionRecognition.from_stage_checkpoints(paths["teacher"], tmp_path / "iemocap_audio", paths["video"])
    assert str(tmp_path / "iemocap_audio") in str(error.value) and str(paths["teacher"]) in str(error.value)
    with pytest.raises(ValueError, match="the audio student .* but the teacher .*same label set"):
        TelMEForEmotionRecognition.from_stage_models(
            TelMETextTeacher.from_pretrained(paths["teacher"]), TelMEAudioStudent(tiny_config("iemocap"))
        )
