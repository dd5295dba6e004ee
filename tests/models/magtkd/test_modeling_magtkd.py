"""MAGTKD: the common battery on the fusion model, plus the MAGTKD-specific checks (loss, speakers, gates,
presets, unimodal stage models). The copies of TelME's and SDT's code are checked by tests/test_check_copies.py."""

import csv
import importlib

import pytest
import torch
import torch.nn.functional as F
from transformers import (
    AutoModel,
    Data2VecAudioConfig,
    Data2VecAudioModel,
    RobertaConfig,
    RobertaModel,
    TimesformerConfig,
    TimesformerModel,
)

import hf_erc.models
from hf_erc import labels as hf_erc_labels
from hf_erc.data.collators import DialogueCollator
from hf_erc.data.errors import DataFormatError
from hf_erc.models import (
    MAGTKDAudioModel,
    MAGTKDConfig,
    MAGTKDForEmotionRecognition,
    MAGTKDTextModel,
    MAGTKDVideoModel,
)
from hf_erc.models.magtkd.configuration_magtkd import MAGTKD_MODALITIES, MELD_SPEAKERS
from tests.utils.tiny_encoders import tiny_audio_config, tiny_text_config, tiny_video_config

from ..test_modeling_common import ModelTesterMixin, dialogue_batch

HIDDEN = 16
NUM_LABELS = 4
NUM_SPEAKERS = 3


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    # The CPU is shared: tiny models run fastest on one thread.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def tiny_config(**overrides):
    settings = {
        "hidden_size": HIDDEN,
        "num_attention_heads": 2,
        "dropout": 0.1,
        "num_speakers": NUM_SPEAKERS,
        "max_position_embeddings": 32,
        "id2label": {index: f"emotion_{index}" for index in range(NUM_LABELS)},
        "label2id": {f"emotion_{index}": index for index in range(NUM_LABELS)},
    }
    settings.update(overrides)
    return MAGTKDConfig(**settings)


class TestMAGTKDModel(ModelTesterMixin):
    model_class = MAGTKDForEmotionRecognition

    def get_config(self, **overrides):
        return tiny_config(**overrides)

    def prepare_inputs(self, config, batch_size=3, seed=0):
        lengths = [6, 4, 2, 5, 3][:batch_size]
        missing = [
            (0, 1, "audio"),
            (1, 0, "video"),
            (min(2, batch_size - 1), 1, "audio"),
        ]
        missing = [entry for entry in missing if entry[2] in config.modalities]
        return dialogue_batch(
            config,
            lengths,
            num_turns=6,
            seed=seed,
            missing=missing,
            unlabelled=[(0, 2)],
        )

    def prepare_edge_case_inputs(self, config):
        # Dialogue 0 has no audio at all, dialogue 1 is a single utterance, dialogue 2 lacks video in turn 0.
        missing = [(0, turn, "audio") for turn in range(4)] + [(2, 0, "video")]
        return dialogue_batch(config, [4, 1, 3], num_turns=4, seed=3, missing=missing)

    # --- MAGTKD-specific ---------------------------------------------------------------------------------
    def test_loss_is_the_documented_combination(self):
        config = tiny_config(
            distillation_temperature=3.0,
            feature_distillation_temperature=0.5,
            fused_loss_weight=0.7,
            audio_loss_weight=0.3,
            video_loss_weight=1.5,
            logit_distillation_weight=0.2,
            feature_distillation_weight=2.0,
        )
        model = self.build_model(config).eval()
        # Turn (0, 1) lacks audio; turn (0, 2) is real but unlabelled.
        inputs = dialogue_batch(
            config,
            [4, 2],
            num_turns=4,
            seed=5,
            missing=[(0, 1, "audio")],
            unlabelled=[(0, 2)],
        )
        with torch.no_grad():
            outputs = model(**inputs)

        real = inputs["attention_mask"].bool()
        labels = inputs["labels"]
        audio_rows = real.clone()
        audio_rows[0, 1] = False

        def cross_entropy(logits, rows):
            keep = rows & (labels != -100)
            return F.cross_entropy(logits[keep], labels[keep])

        def dist(student, teacher, temperature):
            student = (student / temperature).softmax(-1)
            teacher = (teacher / temperature).softmax(-1)

            def one_minus_pearson(a, b):
                a, b = a - a.mean(1, keepdim=True), b - b.mean(1, keepdim=True)
                return 1 - ((a * b).sum(1) / (a.norm(dim=1) * b.norm(dim=1) + 1e-8)).mean()

            return temperature**2 * (one_minus_pearson(student, teacher) + one_minus_pearson(student.t(), teacher.t()))

        def feature_kd(student, teacher, temperature):
            student, teacher = (
                F.normalize(student, dim=-1),
                F.normalize(teacher, dim=-1),
            )
            target = (teacher @ teacher.t() / temperature).softmax(-1)
            predicted = (teacher @ student.t() / temperature).log_softmax(-1)
            return (target * (target.log() - predicted)).sum(-1).mean()

        expected = {"fused_ce": cross_entropy(outputs.logits, real)}
        loss = 0.7 * expected["fused_ce"]
        for modality, rows, weight in (
            ("audio", audio_rows, 0.3),
            ("video", real, 1.5),
        ):
            logits = outputs.modality_logits[modality]
            hidden = outputs.modality_hidden_states[modality]
            expected[f"{modality}_ce"] = cross_entropy(logits, rows)
            expected[f"{modality}_logit_kd"] = dist(logits[rows], outputs.logits[rows], 3.0)
            expected[f"{modality}_feature_kd"] = feature_kd(hidden[rows], outputs.fused_hidden_states[rows], 0.5)
            loss = loss + weight * (
                expected[f"{modality}_ce"]
                + 0.2 * expected[f"{modality}_logit_kd"]
                + 2.0 * expected[f"{modality}_feature_kd"]
            )
        assert set(outputs.loss_components) == set(expected)
        for name, value in expected.items():
            torch.testing.assert_close(outputs.loss_components[name], value, msg=name)
        torch.testing.assert_close(outputs.loss, loss)

    def test_distillation_teacher_is_not_detached(self):
        # As in the reference, the distillation terms train the fused (text-anchor) branch too.
        config = tiny_config(fused_loss_weight=0.0, feature_distillation_weight=0.0)
        model = self.build_model(config).eval()
        model(**self.prepare_inputs(config)).loss.backward()
        assert model.classifier.weight.grad.abs().sum() > 0

    def test_gates_are_in_range(self):
        config = self.get_config()
        model = self.build_model(config).eval()
        with torch.no_grad():
            gate_values = model(**self.prepare_inputs(config)).gate_values
        expected = {f"{s}_to_{t}" for t in MAGTKD_MODALITIES for s in MAGTKD_MODALITIES}
        assert set(gate_values) == expected
        for name, gate in gate_values.items():
            assert gate.shape == (3, 6, HIDDEN), name
            # sigmoid(ReLU(.)): exactly 0.5 where the pre-activation is negative, above 0.5 elsewhere.
            assert gate.min() == 0.5 and gate.max() <= 1.0 and (gate > 0.5).any(), name

    def test_anchor_encoder_sharing(self):
        shared = self.build_model(self.get_config())
        assert set(shared.encoders) == {
            "audio_to_audio", "text_to_audio", "video_to_audio",
            "video_to_video", "text_to_video", "audio_to_video",
            "text_to_text",
        }  # fmt: skip
        separate = self.build_model(self.get_config(share_anchor_encoder=False)).train()
        assert {"audio_to_text", "video_to_text"} <= set(separate.encoders) and len(separate.gates) == 9
        separate(**self.prepare_inputs(separate.config)).loss.backward()
        for name in ("audio_to_text", "video_to_text"):
            assert separate.encoders[name].layers[0].attention.q_proj.weight.grad.abs().sum() > 0
            assert separate.gates[name].linear.weight.grad.abs().sum() > 0

    def test_missing_feature_values_are_ignored(self):
        config = self.get_config()
        model = self.build_model(config).eval()
        inputs = self.prepare_edge_case_inputs(config)
        corrupted = dict(inputs)
        for modality in ("audio", "video"):
            absent = ~inputs["modality_mask"][..., MAGTKD_MODALITIES.index(modality)]
            corrupted[f"{modality}_features"] = inputs[f"{modality}_features"].masked_fill(
                absent.unsqueeze(-1), float("nan")
            )
        with torch.no_grad():
            self.assert_outputs_close(model(**inputs), model(**corrupted))

    def test_eager_attention_matches_sdpa(self):
        config = self.get_config(num_hidden_layers=2)
        inputs = self.prepare_edge_case_inputs(config)
        sdpa = self.build_model(config).eval()
        assert sdpa.config._attn_implementation == "sdpa"
        eager_config = self.get_config(num_hidden_layers=2)
        eager_config._attn_implementation = "eager"
        eager = self.build_model(eager_config).eval()
        with torch.no_grad():
            self.assert_outputs_close(sdpa(**inputs), eager(**inputs), atol=1e-5, rtol=1e-4)

    def test_speaker_padding_row_is_zero_and_padding_ids_are_ignored(self):
        model = self.build_model(self.get_config()).eval()
        assert torch.all(model.speaker_embeddings.weight[NUM_SPEAKERS] == 0)
        inputs = self.prepare_inputs(model.config)
        other = dict(
            inputs,
            speaker_ids=inputs["speaker_ids"].masked_fill(~inputs["attention_mask"].bool(), 99),
        )
        with torch.no_grad():
            self.assert_outputs_close(model(**inputs), model(**other))

    def test_bad_inputs_raise_clear_errors(self):
        config = self.get_config()
        model = self.build_model(config).eval()
        inputs = self.prepare_inputs(config)
        with pytest.raises(ValueError, match="audio_features"):
            model(**{**inputs, "audio_features": None})
        with pytest.raises(ValueError, match="hidden_size"):
            model(**{**inputs, "video_features": inputs["video_features"][..., :8]})
        with pytest.raises(ValueError, match="speaker_ids"):
            model(**{**inputs, "speaker_ids": inputs["speaker_ids"] + NUM_SPEAKERS})
        with pytest.raises(ValueError, match="modality_mask"):
            model(**{**inputs, "modality_mask": inputs["modality_mask"][..., :2]})
        with pytest.raises(ValueError, match="max_position_embeddings"):
            model(**dialogue_batch(config, [40], num_turns=40))
        with pytest.raises(ValueError, match="anchor"):
            tiny_config(modalities=["audio", "video"])


def test_dataset_presets_match_the_reference():
    meld = MAGTKDConfig.for_dataset("meld")
    iemocap = MAGTKDConfig.for_dataset("iemocap")
    for config in (meld, iemocap):
        assert config.modalities == ["text", "audio", "video"]
        assert (
            config.hidden_size,
            config.num_attention_heads,
            config.num_hidden_layers,
        ) == (768, 8, 1)
        assert (config.intermediate_size, config.dropout, config.layer_norm_eps) == (
            768,
            0.5,
            1e-6,
        )
        assert (
            config.distillation_temperature,
            config.feature_distillation_temperature,
        ) == (2.0, 1.0)
        assert (config.fused_loss_weight, config.logit_distillation_weight) == (
            1.0,
            1.0,
        )
        assert config.share_anchor_encoder is True
        assert config.projection_size == 768 and config.audio_config.mask_time_length == 3
        assert (config.text_config.hidden_size, config.text_config.vocab_size) == (
            1024,
            50265 + 9,
        )
    assert (meld.num_speakers, len(meld.speaker_vocab)) == (304, 304)
    assert (
        meld.audio_loss_weight,
        meld.video_loss_weight,
        meld.feature_distillation_weight,
    ) == (0.01, 0.08, 0.0)
    assert (iemocap.num_speakers, iemocap.speaker_vocab) == (2, None)
    assert (
        iemocap.audio_loss_weight,
        iemocap.video_loss_weight,
        iemocap.feature_distillation_weight,
    ) == (0.7, 0.8, 1.0)

    assert tuple(meld.id2label.values()) == hf_erc_labels.MELD_EMOTIONS
    assert meld.label2id == hf_erc_labels.label2id("meld")
    assert tuple(iemocap.id2label.values()) == hf_erc_labels.IEMOCAP_EMOTIONS
    assert iemocap.label2id == hf_erc_labels.label2id("iemocap")
    assert MAGTKDConfig.for_dataset("meld", dropout=0.3).dropout == 0.3
    with pytest.raises(ValueError, match="for_dataset"):
        MAGTKDConfig.for_dataset("cmu-mosei")
    # Every model's for_dataset takes `modalities`; MAGTKD's anchor (text) is required, the order is canonical.
    restricted = MAGTKDConfig.for_dataset("iemocap", modalities=["video", "text"])
    assert restricted.modalities == ["text", "video"] and restricted.dataset_name == "iemocap"
    with pytest.raises(ValueError, match="must contain 'text'"):
        MAGTKDConfig.for_dataset("meld", modalities=["audio"])


@pytest.mark.parametrize("dataset", ["meld", "iemocap"])
def test_paper_size_is_the_reference_minus_its_unused_modules(dataset):
    config = MAGTKDConfig.for_dataset(dataset)
    hidden, labels = 768, config.num_labels
    linear = hidden * hidden + hidden
    encoder = 6 * linear + 2 * (2 * hidden)  # q, k, v, out, two feed-forward layers; two layer norms
    reference = (
        (config.num_speakers + 1) * hidden  # speaker embedding
        + 9 * encoder
        + 9 * linear  # gates
        + 4 * (3 * hidden * hidden + hidden)  # three reductions and the unused `fc`
        + 3 * (hidden * labels + labels)
    )
    # Unused in the reference: the a_t and v_t encoders and gates, `fc`, and every one-layer encoder's layer norm.
    unused = 2 * encoder + 2 * linear + (3 * hidden * hidden + hidden) + 7 * 2 * hidden
    model = MAGTKDForEmotionRecognition(config)
    assert model.num_parameters() == reference - unused


def test_meld_speaker_vocabulary_is_first_appearance_over_the_official_splits(meld_csv_dir, tmp_path):
    order = []
    for split in ("train", "dev", "test"):
        with open(meld_csv_dir / f"{split}_sent_emo.csv", newline="", encoding="utf-8") as handle:
            for row in csv.DictReader(handle):
                if row["Speaker"] not in order:
                    order.append(row["Speaker"])
    assert tuple(order) == MELD_SPEAKERS
    config = MAGTKDConfig.for_dataset("meld")
    assert config.speaker_vocab == {name: index for index, name in enumerate(order)}
    assert (
        config.speaker_vocab["Chandler"],
        config.speaker_vocab["Joey"],
        config.speaker_vocab["Ross"],
    ) == (0, 2, 6)
    config.save_pretrained(tmp_path)
    assert MAGTKDConfig.from_pretrained(tmp_path).speaker_vocab == config.speaker_vocab
    with pytest.raises(ValueError, match="speaker_vocab"):
        tiny_config(speaker_vocab={"a": 0, "b": NUM_SPEAKERS})


def test_speakers_the_meld_table_lacks_get_the_configured_unknown_speaker_id(tmp_path):
    """The MELD preset knows 304 names. By default a new name is an error naming `unknown_speaker_id`; with
    `num_speakers=305, unknown_speaker_id=304` new names share a row of their own, the known ones keep the reference's
    ids, and the saved configuration serves the same ids."""
    fusion = {"hidden_size": HIDDEN, "num_attention_heads": 2}
    dialogue = {
        "dialogue_id": "d0",
        "speaker": ["Ross", "Ann", "Rachel", "Zed", "Ann"],
        "text_features": [[0.1] * HIDDEN] * 5,
        "emotion": [0, 1, 0, 1, 0],
    }

    def collator(config):  # as the fusion stage builds it
        return DialogueCollator(
            speaker_vocab=config.speaker_vocab,
            unknown_speaker_id=config.unknown_speaker_id,
            num_speakers=config.num_speakers,
        )

    reference = MAGTKDConfig.for_dataset("meld", modalities=["text"], **fusion)
    assert reference.unknown_speaker_id is None
    with pytest.raises(DataFormatError, match=r"'Ann' is not in speaker_vocab.*unknown_speaker_id") as error:
        collator(reference)([dialogue])
    assert "config_overrides: {num_speakers: 305, unknown_speaker_id: 304}" in str(error.value)

    config = MAGTKDConfig.for_dataset("meld", modalities=["text"], num_speakers=305, unknown_speaker_id=304, **fusion)
    config.save_pretrained(tmp_path)
    served = MAGTKDConfig.from_pretrained(tmp_path)
    assert (served.num_speakers, served.unknown_speaker_id, served.speaker_vocab) == (305, 304, reference.speaker_vocab)
    batch = collator(served)([dialogue])
    ross, rachel = reference.speaker_vocab["Ross"], reference.speaker_vocab["Rachel"]
    assert batch["speaker_ids"].tolist() == [[ross, 304, rachel, 304, 304]]
    model = MAGTKDForEmotionRecognition(served).eval()
    assert model.speaker_embeddings.num_embeddings == 306  # 305 speakers and the padding row
    outputs = model(**{name: value for name, value in batch.items() if name != "labels"})
    assert outputs.logits.shape == (1, 5, 7) and torch.isfinite(outputs.logits).all()

    with pytest.raises(ValueError, match="set num_speakers=305 and unknown_speaker_id=304"):
        MAGTKDConfig.for_dataset("meld", unknown_speaker_id=304)


# --- the unimodal stage models -------------------------------------------------------------------------
TINY_TEXT = tiny_text_config(num_hidden_layers=1)
TINY_AUDIO = tiny_audio_config(num_hidden_layers=1)
TINY_VIDEO = tiny_video_config(num_hidden_layers=1)


def test_unimodal_models_from_tiny_pretrained_encoders(tmp_path):
    torch.manual_seed(0)
    RobertaModel(RobertaConfig(**TINY_TEXT)).save_pretrained(tmp_path / "text")
    Data2VecAudioModel(Data2VecAudioConfig(**TINY_AUDIO)).save_pretrained(tmp_path / "audio")
    TimesformerModel(TimesformerConfig(**TINY_VIDEO)).save_pretrained(tmp_path / "video")
    models = MAGTKDForEmotionRecognition.from_encoders_pretrained(
        text=tmp_path / "text", audio=tmp_path / "audio", video=tmp_path / "video", dataset="iemocap",
        projection_size=32, text_max_length=24,
    )  # fmt: skip
    assert {m: type(model) for m, model in models.items()} == {
        "text": MAGTKDTextModel, "audio": MAGTKDAudioModel, "video": MAGTKDVideoModel
    }  # fmt: skip
    assert models["text"].encoder.get_input_embeddings().num_embeddings == 40 + 9
    assert models["audio"].config.audio_config.mask_time_length == 3
    pretrained_text = RobertaModel.from_pretrained(tmp_path / "text", add_pooling_layer=False)
    torch.testing.assert_close(
        models["text"].encoder.embeddings.word_embeddings.weight[:40],
        pretrained_text.embeddings.word_embeddings.weight,
    )

    labels = torch.tensor([0, 5])
    input_ids = torch.tensor([[1, 1, 5, 6, 7, 2], [3, 4, 5, 6, 7, 2]])
    inputs = {
        "text": {"input_ids": input_ids, "attention_mask": (input_ids != 1).long()},
        "audio": {"input_values": torch.randn(2, 400)},
        "video": {"pixel_values": torch.randn(2, 2, 3, 32, 32)},
    }
    for modality, model in models.items():
        outputs = model.eval()(**inputs[modality], labels=labels)
        assert outputs.logits.shape == (2, 6) and set(outputs.modality_logits) == {modality}
        assert outputs.utterance_embeddings.shape == (2, 32)
        assert torch.isfinite(outputs.loss)
        model.save_pretrained(tmp_path / f"{modality}-stage")
        reloaded = AutoModel.from_pretrained(tmp_path / f"{modality}-stage").eval()
        assert type(reloaded) is type(model)
        with torch.no_grad():
            torch.testing.assert_close(reloaded(**inputs[modality]).logits, model(**inputs[modality]).logits)

    # The stage models' 32-d utterance embeddings are the fusion's input features.
    fusion = MAGTKDForEmotionRecognition(MAGTKDConfig.for_dataset("iemocap", hidden_size=32, num_attention_heads=2))
    with torch.no_grad():
        features = {f"{m}_features": models[m](**inputs[m]).utterance_embeddings.unsqueeze(0) for m in models}
        assert fusion.eval()(**features, speaker_ids=torch.tensor([[0, 1]])).logits.shape == (1, 2, 6)


@torch.no_grad()
def test_bert_family_text_model(tmp_path):
    """A BERT-family encoder stands in for RoBERTa: built from its config dict, positions from 0, left padding
    moves nothing, and the stage checkpoint reloads as BERT."""
    torch.manual_seed(0)
    text_config = {
        "model_type": "bert", "vocab_size": 30, "hidden_size": 16, "num_hidden_layers": 1,
        "num_attention_heads": 2, "intermediate_size": 32, "max_position_embeddings": 40,
    }  # fmt: skip
    config = MAGTKDConfig.for_dataset("meld", text_config=text_config, projection_size=16, text_max_length=32)
    model = MAGTKDTextModel(config).eval()
    assert type(model.encoder).__name__ == "BertModel" and model.encoder.pooler is None
    assert config.text_first_position == 0 and config.max_text_positions == 40
    tokens = torch.tensor([[5, 7, 9, 12, 3]])
    alone = model(input_ids=tokens, attention_mask=torch.ones_like(tokens))
    padded_ids = torch.tensor([[0, 0, 0, 5, 7, 9, 12, 3], [4, 6, 8, 10, 11, 5, 6, 3]])
    padded_mask = (torch.arange(8) >= torch.tensor([[3], [0]])).long()
    torch.testing.assert_close(model(input_ids=padded_ids, attention_mask=padded_mask).logits[:1], alone.logits)
    shifted = model.encoder(input_ids=tokens, position_ids=torch.arange(1, 6)[None]).last_hidden_state[:, -1]
    assert not torch.allclose(model.projection(shifted), alone.utterance_embeddings, atol=1e-4)
    model.save_pretrained(tmp_path)
    reloaded = AutoModel.from_pretrained(tmp_path).eval()
    assert reloaded.config.text_config.model_type == "bert"
    torch.testing.assert_close(reloaded(input_ids=tokens).logits, alone.logits)


def test_registration_survives_reimport():
    importlib.reload(hf_erc.models)
    model = AutoModel.from_config(tiny_config())
    assert type(model).__name__ == "MAGTKDForEmotionRecognition"
    assert MAGTKDConfig._auto_class == "AutoConfig" and MAGTKDForEmotionRecognition._auto_class == "AutoModel"
