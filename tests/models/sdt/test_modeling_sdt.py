"""SDT: the common model battery plus checks of the SDT-specific parts against the reference setting."""

import importlib

import pytest
import torch
import torch.nn.functional as F
from transformers import AutoConfig, AutoModel

import hf_erc.models
from hf_erc import labels as hf_erc_labels
from hf_erc.models import SDTConfig, SDTForEmotionRecognition
from hf_erc.models.sdt.configuration_sdt import SDT_MODALITIES

from ..test_modeling_common import ModelTesterMixin, dialogue_batch


FEATURE_DIMS = {"text": 12, "audio": 10, "video": 8}
NUM_LABELS = 4
NUM_SPEAKERS = 3


def tiny_config(**overrides):
    settings = {
        "text_dim": FEATURE_DIMS["text"],
        "audio_dim": FEATURE_DIMS["audio"],
        "video_dim": FEATURE_DIMS["video"],
        "hidden_size": 16,
        "num_attention_heads": 2,
        # Two layers, so the layer norm that only layers after the first have is exercised too.
        "num_hidden_layers": 2,
        "dropout": 0.1,
        "num_speakers": NUM_SPEAKERS,
        "max_position_embeddings": 32,
        "distillation_temperature": 2.0,
        "id2label": {index: f"emotion_{index}" for index in range(NUM_LABELS)},
        "label2id": {f"emotion_{index}": index for index in range(NUM_LABELS)},
    }
    settings.update(overrides)
    return SDTConfig(**settings)


class TestSDTModel(ModelTesterMixin):
    model_class = SDTForEmotionRecognition

    def get_config(self, **overrides):
        return tiny_config(**overrides)

    def prepare_inputs(self, config, batch_size=3, seed=0):
        lengths = [6, 4, 2, 5, 3][:batch_size]
        missing = [(0, 1, "audio"), (1, 0, "video"), (min(2, batch_size - 1), 1, "audio")]
        missing = [entry for entry in missing if entry[2] in config.modalities]
        return dialogue_batch(config, lengths, num_turns=6, seed=seed, missing=missing, unlabelled=[(0, 2)])

    def prepare_edge_case_inputs(self, config):
        # Dialogue 0 has no audio at all, dialogue 1 is a single utterance, dialogue 2 lacks video in turn 0;
        # dialogues 1 and 2 end in padding.
        missing = [(0, turn, "audio") for turn in range(4)] + [(2, 0, "video")]
        return dialogue_batch(config, [4, 1, 3], num_turns=4, seed=3, missing=missing)

    # --- SDT-specific ------------------------------------------------------------------------------------
    def test_loss_is_the_documented_combination(self):
        config = tiny_config(
            distillation_temperature=3.0,
            fused_loss_weight=0.7,
            modality_loss_weight=1.3,
            self_distillation_loss_weight=2.0,
            class_weights=[1.0, 2.0, 0.5, 4.0],
        )
        model = self.build_model(config).eval()
        # Turn (0, 1) lacks audio; turn (0, 2) is real but unlabelled.
        inputs = dialogue_batch(config, [4, 2], num_turns=4, seed=5, missing=[(0, 1, "audio")], unlabelled=[(0, 2)])
        with torch.no_grad():
            outputs = model(**inputs)

        real = inputs["attention_mask"].bool()
        labels = inputs["labels"]
        weights = torch.tensor(config.class_weights)
        distillation_temperature = config.distillation_temperature

        def nll(logits, exclude=None):
            targets = labels.clone()
            if exclude is not None:
                targets[exclude] = -100
            return F.nll_loss(F.log_softmax(logits, -1).flatten(0, 1), targets.flatten(), weight=weights)

        def kl(student_logits, positions):
            teacher = F.log_softmax(outputs.logits[positions] / distillation_temperature, -1)
            student = F.log_softmax(student_logits[positions] / distillation_temperature, -1)
            return F.kl_div(student, teacher, log_target=True, reduction="sum") / positions.sum()

        audio_positions = real.clone()
        audio_positions[0, 1] = False
        fused_ce = nll(outputs.logits)
        modality_ce = (
            nll(outputs.modality_logits["text"])
            + nll(outputs.modality_logits["audio"], exclude=(0, 1))
            + nll(outputs.modality_logits["video"])
        )
        self_distillation = (
            kl(outputs.modality_logits["text"], real)
            + kl(outputs.modality_logits["audio"], audio_positions)
            + kl(outputs.modality_logits["video"], real)
        )
        components = outputs.loss_components
        torch.testing.assert_close(components["fused_ce"], fused_ce)
        torch.testing.assert_close(components["modality_ce"], modality_ce)
        torch.testing.assert_close(components["self_distillation"], self_distillation)
        torch.testing.assert_close(outputs.loss, 0.7 * fused_ce + 1.3 * modality_ce + 2.0 * self_distillation)

    def test_distillation_teacher_is_not_detached(self):
        # As in the reference, the KL terms train the fused branch too.
        config = tiny_config(fused_loss_weight=0.0, modality_loss_weight=0.0)
        model = self.build_model(config).eval()
        model(**self.prepare_inputs(config)).loss.backward()
        assert model.classifier.weight.grad.abs().sum() > 0

    def test_gate_weights_sum_to_one_over_present_modalities(self):
        config = self.get_config()
        model = self.build_model(config).eval()
        inputs = self.prepare_edge_case_inputs(config)
        with torch.no_grad():
            gate_weights = model(**inputs).gate_weights
        present = inputs["modality_mask"] & inputs["attention_mask"].bool().unsqueeze(-1)
        assert gate_weights.shape == (3, 4, 3, config.hidden_size)
        assert torch.all(gate_weights[~present] == 0)
        any_present = present.any(dim=-1)
        torch.testing.assert_close(gate_weights.sum(dim=2)[any_present], torch.ones(int(any_present.sum()), 16))
        assert torch.all(gate_weights.sum(dim=2)[~any_present] == 0)

        text_only = self.get_config(modalities=["text"])
        with torch.no_grad():
            weights = self.build_model(text_only).eval()(**self.prepare_inputs(text_only)).gate_weights
        real = self.prepare_inputs(text_only)["attention_mask"].bool()
        assert torch.all(weights[real] == 1)

    def test_missing_feature_values_are_ignored(self):
        config = self.get_config()
        model = self.build_model(config).eval()
        inputs = self.prepare_edge_case_inputs(config)
        corrupted = dict(inputs)
        absent_audio = ~inputs["modality_mask"][..., SDT_MODALITIES.index("audio")]
        corrupted["audio_features"] = inputs["audio_features"].masked_fill(absent_audio.unsqueeze(-1), float("nan"))
        with torch.no_grad():
            self.assert_outputs_close(model(**inputs), model(**corrupted))

    def test_eager_attention_matches_sdpa(self):
        config = self.get_config()
        inputs = self.prepare_edge_case_inputs(config)
        sdpa = self.build_model(config).eval()
        assert sdpa.config._attn_implementation == "sdpa"
        eager_config = self.get_config()
        eager_config._attn_implementation = "eager"
        eager = self.build_model(eager_config).eval()
        with torch.no_grad():
            self.assert_outputs_close(sdpa(**inputs), eager(**inputs), atol=1e-5, rtol=1e-4)

    def test_dataset_presets(self):
        meld = SDTConfig.for_dataset("meld")
        iemocap = SDTConfig.for_dataset("iemocap")
        for config in (meld, iemocap):
            assert config.modalities == ["text", "audio", "video"]
            assert (config.hidden_size, config.num_attention_heads, config.num_hidden_layers) == (1024, 8, 1)
            assert (config.intermediate_size, config.dropout) == (1024, 0.5)
            assert config.max_position_embeddings >= 110
            assert config.fused_loss_weight == config.modality_loss_weight == 1
            assert config.self_distillation_loss_weight == 1
        assert (meld.text_dim, meld.audio_dim, meld.video_dim, meld.num_speakers) == (1024, 300, 342, 9)
        assert (iemocap.text_dim, iemocap.audio_dim, iemocap.video_dim, iemocap.num_speakers) == (1024, 1582, 342, 2)
        assert (meld.distillation_temperature, iemocap.distillation_temperature) == (8.0, 1.0)
        assert meld.class_weights is None
        frequencies = (0.086747, 0.144406, 0.227883, 0.160585, 0.127711, 0.252668)
        assert iemocap.class_weights == pytest.approx([1 / f for f in frequencies])
        assert (meld.trainable_unimodal_gates, iemocap.trainable_unimodal_gates) == (False, True)

        assert tuple(meld.id2label.values()) == hf_erc_labels.MELD_EMOTIONS
        assert meld.label2id == hf_erc_labels.label2id("meld")
        assert tuple(iemocap.id2label.values()) == hf_erc_labels.IEMOCAP_EMOTIONS
        assert iemocap.label2id == hf_erc_labels.label2id("iemocap")

        text_only = SDTConfig.for_dataset("meld", modalities=["text"], dropout=0.3)
        assert (text_only.modalities, text_only.dropout, text_only.num_labels) == (["text"], 0.3, 7)
        with pytest.raises(ValueError, match="for_dataset"):
            SDTConfig.for_dataset("cmu-mosei")

    @pytest.mark.parametrize(
        "dataset, reference_trainable_parameters",
        # `sum(p.numel() for p in model.parameters() if p.requires_grad)` of the reference
        # `Transformer_Based_Model` built as train.py builds it (hidden 1024, 8 heads). It counts one layer
        # norm (2 x 1024) per encoder that its one-layer encoders never use; this model does not create them.
        [("meld", 68_949_020), ("iemocap", 79_687_704)],
    )
    def test_paper_configuration_matches_reference_size_and_runs(self, dataset, reference_trainable_parameters):
        config = SDTConfig.for_dataset(dataset)
        model = SDTForEmotionRecognition(config).eval()
        unused_reference_layer_norms = 9 * 2 * config.hidden_size
        assert model.num_parameters() == reference_trainable_parameters - unused_reference_layer_norms
        inputs = {f"{m}_features": torch.randn(1, 5, config.feature_dim(m)) for m in config.modalities}
        with torch.no_grad():
            outputs = model(**inputs, speaker_ids=torch.tensor([[0, 1, 0, 1, 1]]))
        assert outputs.logits.shape == (1, 5, config.num_labels)
        assert torch.isfinite(outputs.logits).all()

    def test_registration_survives_reimport(self):
        importlib.reload(hf_erc.models)
        config = AutoConfig.for_model("sdt-erc", text_dim=4, audio_dim=4, video_dim=4, hidden_size=8, num_attention_heads=2)
        assert type(AutoModel.from_config(config)).__name__ == "SDTForEmotionRecognition"
        assert SDTConfig._auto_class == "AutoConfig" and SDTForEmotionRecognition._auto_class == "AutoModel"

    def test_modalities_are_canonically_ordered_and_checked(self):
        assert tiny_config(modalities=["video", "text"]).modalities == ["text", "video"]
        with pytest.raises(ValueError, match="modalities"):
            tiny_config(modalities=["text", "smell"])
        with pytest.raises(ValueError, match="modalities"):
            tiny_config(modalities=[])
        with pytest.raises(ValueError, match="class_weights"):
            tiny_config(class_weights=[1.0, 2.0])

    def test_bad_inputs_raise_clear_errors(self):
        config = self.get_config()
        model = self.build_model(config).eval()
        inputs = self.prepare_inputs(config)
        with pytest.raises(ValueError, match="audio_features"):
            model(**{**inputs, "audio_features": None})
        with pytest.raises(ValueError, match="speaker_ids"):
            model(**{**inputs, "speaker_ids": inputs["speaker_ids"] + NUM_SPEAKERS})
        with pytest.raises(ValueError, match="max_position_embeddings"):
            long_inputs = dialogue_batch(config, [40], num_turns=40)
            model(**long_inputs)
        with pytest.raises(ValueError, match="modality_mask"):
            model(**{**inputs, "modality_mask": inputs["modality_mask"][..., :2]})
