"""CMATH: the common model battery plus checks of the CMATH-specific parts (losses, central modality, presets)."""

import pytest
import torch
import torch.nn.functional as F
from transformers import AutoConfig, AutoModel

from hf_erc import labels as hf_erc_labels
from hf_erc.models.cmath import CMATHConfig, CMATHForEmotionRecognition
from hf_erc.models.cmath.configuration_cmath import CMATH_MODALITIES

from ..test_modeling_common import ModelTesterMixin, dialogue_batch


# Until hf_erc.models registers CMATH itself: exist_ok makes this harmless once it does.
AutoConfig.register(CMATHConfig.model_type, CMATHConfig, exist_ok=True)
AutoModel.register(CMATHConfig, CMATHForEmotionRecognition, exist_ok=True)
CMATHConfig.register_for_auto_class()
CMATHForEmotionRecognition.register_for_auto_class("AutoModel")

FEATURE_DIMS = {"text": 12, "audio": 10, "video": 8}
NUM_LABELS = 4
NUM_SPEAKERS = 3
COMPONENTS = (
    "classification",
    "modality_classification",
    "reconstruction",
    "kl",
    "logit_distillation",
    "feature_distillation",
)


@pytest.fixture(autouse=True, scope="module")
def _single_thread():
    """Tiny models run fastest on one thread; on the shared CPUs two threads make each step ~50x slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def tiny_config(**overrides):
    settings = {
        "text_dim": FEATURE_DIMS["text"],
        "audio_dim": FEATURE_DIMS["audio"],
        "video_dim": FEATURE_DIMS["video"],
        "hidden_size": 8,
        "num_attention_heads": 2,
        "num_hidden_layers": 2,
        # Three U-Net levels, so the skip merges between intermediate levels are exercised too.
        "reconstruction_num_layers": 3,
        "dropout": 0.1,
        "num_speakers": NUM_SPEAKERS,
        "max_position_embeddings": 32,
        "distillation_temperature": 2.0,
        "kl_loss_weight": 0.01,
        "id2label": {index: f"emotion_{index}" for index in range(NUM_LABELS)},
        "label2id": {f"emotion_{index}": index for index in range(NUM_LABELS)},
    }
    if "modalities" in overrides and "central_modality" not in overrides:
        modalities = overrides["modalities"]
        settings["central_modality"] = "text" if "text" in modalities else modalities[0]
    settings.update(overrides)
    return CMATHConfig(**settings)


def gradient_norms(model, loss):
    """`{parameter name: |grad|.sum()}` after back-propagating `loss` alone."""
    model.zero_grad()
    loss.backward(retain_graph=True)
    return {
        name: 0.0 if parameter.grad is None else float(parameter.grad.abs().sum())
        for name, parameter in model.named_parameters()
    }


class TestCMATHModel(ModelTesterMixin):
    model_class = CMATHForEmotionRecognition

    def get_config(self, **overrides):
        return tiny_config(**overrides)

    def prepare_inputs(self, config, batch_size=3, seed=0):
        lengths = [6, 4, 2, 5, 3][:batch_size]
        missing = [(0, 1, "audio"), (1, 0, "video"), (min(2, batch_size - 1), 1, "audio")]
        if len(config.modalities) > 1:
            missing.append((1, 2, "text"))  # the central modality missing where the others exist
        missing = [entry for entry in missing if entry[2] in config.modalities]
        return dialogue_batch(config, lengths, num_turns=6, seed=seed, missing=missing, unlabelled=[(0, 2)])

    def prepare_edge_case_inputs(self, config):
        # Dialogue 0 has no audio at all, dialogue 1 is a single utterance, dialogue 2 lacks video in turn 0 and
        # every modality in turn 1; dialogues 1 and 2 end in padding.
        missing = [(0, turn, "audio") for turn in range(4)] + [(2, 0, "video")]
        missing += [(2, 1, modality) for modality in CMATH_MODALITIES]
        missing = [entry for entry in missing if entry[2] in config.modalities]
        return dialogue_batch(config, [4, 1, 3], num_turns=4, seed=3, missing=missing)

    # --- the objective -----------------------------------------------------------------------------------
    def test_loss_is_the_documented_weighted_sum(self):
        weights = {
            "classification_loss_weight": 0.7,
            "modality_classification_loss_weight": 1.3,
            "reconstruction_loss_weight": 0.4,
            "kl_loss_weight": 0.05,
            "logit_distillation_loss_weight": 2.0,
            "feature_distillation_loss_weight": 0.3,
        }
        config = tiny_config(class_weights=[1.0, 2.0, 0.5, 4.0], distillation_temperature=3.0, **weights)
        model = self.build_model(config).eval()
        # Turn (0, 1) lacks audio; turn (0, 2) is real but unlabelled.
        inputs = dialogue_batch(config, [4, 2], num_turns=4, seed=5, missing=[(0, 1, "audio")], unlabelled=[(0, 2)])
        with torch.no_grad():
            outputs = model(**inputs)

        real = inputs["attention_mask"].bool()
        present = {m: inputs["modality_mask"][..., CMATH_MODALITIES.index(m)] & real for m in config.modalities}
        labels = inputs["labels"]
        class_weights = torch.tensor(config.class_weights)
        temperature = config.distillation_temperature

        def cross_entropy(logits, positions):
            targets = labels.masked_fill(~positions, -100)
            return F.cross_entropy(logits.flatten(0, 1), targets.flatten(), weight=class_weights)

        def distillation(student_logits, positions):
            teacher = F.log_softmax(outputs.logits[positions] / temperature, -1)
            student = F.log_softmax(student_logits[positions] / temperature, -1)
            return F.kl_div(student, teacher, log_target=True, reduction="sum") / positions.sum()

        def reconstruction(modality):
            target = inputs[f"{modality}_features"][present[modality]]
            rebuilt = outputs.reconstructed_features[modality][present[modality]]
            return F.mse_loss(rebuilt, target)

        mean, log_variance = outputs.fused_mean[real], outputs.fused_log_variance[real]
        posterior = torch.distributions.Normal(mean, torch.exp(0.5 * log_variance))
        prior = torch.distributions.Normal(torch.zeros_like(mean), torch.ones_like(mean))
        expected = {
            "classification": cross_entropy(outputs.logits, real),
            "modality_classification": sum(
                cross_entropy(outputs.modality_logits[m], present[m]) for m in config.modalities
            ),
            "reconstruction": sum(reconstruction(m) for m in config.modalities),
            "kl": torch.distributions.kl_divergence(posterior, prior).sum(-1).mean(),
            "logit_distillation": sum(
                distillation(outputs.modality_logits[m], present[m]) for m in config.modalities
            ),
            "feature_distillation": sum(
                (1 - F.cosine_similarity(fine[present[m]], outputs.fused_mean[present[m]], dim=-1)).mean()
                for m, fine in outputs.modality_hidden_states.items()
            ),
        }
        assert set(outputs.loss_components) == set(COMPONENTS)
        for name, value in expected.items():
            torch.testing.assert_close(outputs.loss_components[name], value, msg=lambda text: f"{name}: {text}")
        documented = sum(config.loss_weights()[name] * outputs.loss_components[name] for name in COMPONENTS)
        torch.testing.assert_close(outputs.loss, documented)
        torch.testing.assert_close(
            outputs.loss, sum(weights[f"{name}_loss_weight"] * expected[name] for name in COMPONENTS)
        )

    @pytest.mark.parametrize(
        "component, reaches, does_not_reach",
        [
            ("classification", ["classifier.", "fusion.mean.", "layers.0."], ["modality_classifiers.", "up_convs"]),
            ("modality_classification", ["modality_classifiers.", "layers.0."], ["classifier", "fusion.", "up_convs"]),
            ("reconstruction", ["up_convs", "down_convs", "skip_merges"], ["layers.", "classifier", "fusion."]),
            ("kl", ["fusion.mean.", "fusion.log_variance.", "layers.0."], ["classifier", "up_convs"]),
            ("logit_distillation", ["classifier.", "modality_classifiers.", "fusion.mean."], ["up_convs"]),
            ("feature_distillation", ["fusion.mean.", "final_norms.", "layers.0."], ["classifier", "up_convs"]),
        ],
    )
    def test_each_loss_term_is_nontrivial_and_trains_its_parameters(self, component, reaches, does_not_reach):
        config = self.get_config()
        model = self.build_model(config).train()
        outputs = model(**self.prepare_inputs(config))
        value = outputs.loss_components[component]
        assert value.requires_grad and value.item() > 1e-6, (component, value)
        norms = gradient_norms(model, value)
        for prefix in reaches:
            reached = [name for name in norms if prefix in name]
            assert reached and all(norms[name] > 0 for name in reached), (component, prefix, norms)
        for prefix in does_not_reach:
            unreached = [name for name in norms if name.startswith(prefix) or f".{prefix}" in name]
            assert unreached and all(norms[name] == 0 for name in unreached), (component, prefix)

    # --- architecture ------------------------------------------------------------------------------------
    def test_central_modality_switch(self):
        text_central = tiny_config()
        audio_central = tiny_config(central_modality="audio")
        assert (audio_central.central_modality, audio_central.auxiliary_modalities) == ("audio", ["text", "video"])
        text_model = self.build_model(text_central).eval()
        audio_model = self.build_model(audio_central).eval()
        text_pairs = {"audio_to_text", "video_to_text", "text_to_audio", "text_to_video"}
        audio_pairs = {"text_to_audio", "video_to_audio", "audio_to_text", "audio_to_video"}
        assert set(text_model.layers[0].cross_attentions) == text_pairs
        assert set(audio_model.layers[0].cross_attentions) == audio_pairs
        assert set(audio_model.layers[0].augmentation_gates) == {"text_to_audio", "video_to_audio"}
        inputs = self.prepare_inputs(audio_central)
        with torch.no_grad():
            outputs = audio_model(**inputs)
            reference = text_model(**inputs)
        assert torch.isfinite(outputs.loss) and outputs.logits.shape == reference.logits.shape
        assert not torch.allclose(outputs.logits, reference.logits)
        with pytest.raises(ValueError, match="central_modality"):
            tiny_config(modalities=["audio", "video"], central_modality="text")

    def test_text_only_degenerates_to_self_attention(self):
        config = self.get_config(modalities=["text"])
        model = self.build_model(config).train()
        for layer in model.layers:
            assert not layer.cross_attentions and not layer.augmentation_gates and not layer.cross_attention_norms
        inputs = self.prepare_inputs(config)
        outputs = model(**inputs)
        real = inputs["attention_mask"].bool()
        assert torch.all(outputs.fusion_weights[real] == 1) and torch.all(outputs.fusion_weights[~real] == 0)
        assert set(outputs.modality_logits) == {"text"}
        for name in COMPONENTS:
            assert torch.isfinite(outputs.loss_components[name]) and outputs.loss_components[name] > 0, name
        outputs.loss.backward()

    def test_any_modality_subset_works(self):
        for modalities in (["audio"], ["video", "audio"], ["text", "video"]):
            config = self.get_config(modalities=modalities)
            model = self.build_model(config).train()
            outputs = model(**self.prepare_edge_case_inputs(config))
            assert set(outputs.modality_logits) == set(modalities)
            assert torch.isfinite(outputs.loss)
            outputs.loss.backward()

    def test_eval_is_deterministic_and_training_samples(self):
        config = self.get_config(dropout=0.0)
        model = self.build_model(config)
        inputs = self.prepare_inputs(config)
        real = inputs["attention_mask"].bool()
        with torch.no_grad():
            model.eval()
            first, second = model(**inputs), model(**inputs)
            model.train()
            sampled = model(**inputs)
        torch.testing.assert_close(first.logits, second.logits, rtol=0, atol=0)
        torch.testing.assert_close(first.loss, second.loss, rtol=0, atol=0)
        torch.testing.assert_close(first.fused_hidden_states, first.fused_mean, rtol=0, atol=0)
        # In training the coarse representation is a reparameterised sample around the same mean.
        torch.testing.assert_close(sampled.fused_mean, first.fused_mean)
        assert not torch.allclose(sampled.fused_hidden_states[real], sampled.fused_mean[real])

    def test_reconstruction_is_per_utterance_shaped_and_ignores_missing_rows(self):
        config = self.get_config()
        model = self.build_model(config).eval()
        inputs = self.prepare_edge_case_inputs(config)
        corrupted = dict(inputs)
        absent_audio = ~inputs["modality_mask"][..., CMATH_MODALITIES.index("audio")]
        corrupted["audio_features"] = inputs["audio_features"].masked_fill(absent_audio.unsqueeze(-1), float("nan"))
        with torch.no_grad():
            outputs = model(**inputs)
            self.assert_outputs_close(outputs, model(**corrupted))
        for modality in config.modalities:
            assert outputs.compressed_hidden_states[modality].shape == (3, 4, config.hidden_size)
            assert outputs.reconstructed_features[modality].shape == (3, 4, config.feature_dim(modality))
        padding = ~inputs["attention_mask"].bool()
        assert torch.all(outputs.reconstructed_features["text"][padding] == 0)

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

    # --- configuration -----------------------------------------------------------------------------------
    def test_dataset_presets(self):
        meld = CMATHConfig.for_dataset("meld")
        iemocap = CMATHConfig.for_dataset("iemocap")
        for config in (meld, iemocap):
            assert config.modalities == ["text", "audio", "video"]
            assert config.central_modality == "text" and config.auxiliary_modalities == ["audio", "video"]
            assert config.max_position_embeddings >= 110
            assert set(config.loss_weights()) == set(COMPONENTS)
        assert (meld.text_dim, meld.audio_dim, meld.video_dim, meld.num_speakers) == (1024, 300, 342, 9)
        assert (iemocap.text_dim, iemocap.audio_dim, iemocap.video_dim, iemocap.num_speakers) == (1024, 1582, 342, 2)
        # The bottleneck compresses every modality of both datasets.
        for config in (meld, iemocap):
            assert all(config.hidden_size < config.feature_dim(m) for m in config.modalities)

        assert tuple(meld.id2label.values()) == hf_erc_labels.MELD_EMOTIONS
        assert meld.label2id == hf_erc_labels.label2id("meld")
        assert tuple(iemocap.id2label.values()) == hf_erc_labels.IEMOCAP_EMOTIONS
        assert iemocap.label2id == hf_erc_labels.label2id("iemocap")

        text_only = CMATHConfig.for_dataset("meld", modalities=["text"], dropout=0.3)
        assert (text_only.modalities, text_only.dropout, text_only.num_labels) == (["text"], 0.3, 7)
        nonverbal = CMATHConfig.for_dataset("iemocap", modalities=["video", "audio"])
        assert (nonverbal.modalities, nonverbal.central_modality) == (["audio", "video"], "audio")
        chosen = CMATHConfig.for_dataset("iemocap", modalities=["audio", "video"], central_modality="video")
        assert chosen.central_modality == "video"
        with pytest.raises(ValueError, match="for_dataset"):
            CMATHConfig.for_dataset("cmu-mosei")

    def test_dataset_configuration_builds_and_runs(self):
        config = CMATHConfig.for_dataset("meld")
        model = CMATHForEmotionRecognition(config).eval()
        inputs = {f"{m}_features": torch.randn(1, 5, config.feature_dim(m)) for m in config.modalities}
        with torch.no_grad():
            outputs = model(
                **inputs, speaker_ids=torch.tensor([[0, 1, 0, 8, 1]]), labels=torch.tensor([[0, 6, 1, 2, 3]])
            )
        assert outputs.logits.shape == (1, 5, 7)
        assert torch.isfinite(outputs.loss)

    def test_config_is_validated(self):
        assert tiny_config(modalities=["video", "text"]).modalities == ["text", "video"]
        with pytest.raises(ValueError, match="modalities"):
            tiny_config(modalities=["text", "smell"])
        with pytest.raises(ValueError, match="reconstruction_kernel_size"):
            tiny_config(reconstruction_kernel_size=2)
        with pytest.raises(ValueError, match="class_weights"):
            tiny_config(class_weights=[1.0, 2.0])
        with pytest.raises(ValueError, match="num_attention_heads"):
            tiny_config(hidden_size=9)

    def test_registered_with_auto_classes(self):
        config = AutoConfig.for_model(
            "cmath-erc", text_dim=4, audio_dim=4, video_dim=4, hidden_size=4, num_attention_heads=2
        )
        assert type(AutoModel.from_config(config)).__name__ == "CMATHForEmotionRecognition"
        assert CMATHConfig._auto_class == "AutoConfig" and CMATHForEmotionRecognition._auto_class == "AutoModel"

    def test_bad_inputs_raise_clear_errors(self):
        config = self.get_config()
        model = self.build_model(config).eval()
        inputs = self.prepare_inputs(config)
        with pytest.raises(ValueError, match="audio_features"):
            model(**{**inputs, "audio_features": None})
        with pytest.raises(ValueError, match="speaker_ids"):
            model(**{**inputs, "speaker_ids": inputs["speaker_ids"] + NUM_SPEAKERS})
        with pytest.raises(ValueError, match="max_position_embeddings"):
            model(**dialogue_batch(config, [40], num_turns=40))
        with pytest.raises(ValueError, match="modality_mask"):
            model(**{**inputs, "modality_mask": inputs["modality_mask"][..., :2]})
