"""scripts/convert_telme_original_checkpoint.py on state dicts with the authors' key names and layout.

The stand-ins below have the attribute names of the reference's ``Teacher_model``, ``Student_Audio``,
``Student_Video`` and ``ASF`` (``MELD/model.py``) and compute what their ``forward`` computes, on tiny encoders.
"""

import importlib.util
import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from transformers import AutoModel, Data2VecAudioModel, RobertaModel, TimesformerModel

from tests.utils.tiny_telme import FRAME_SIZE, HIDDEN, NUM_FRAMES, audio_inputs, text_inputs, tiny_config


SCRIPT = Path(__file__).resolve().parents[3] / "scripts" / "convert_telme_original_checkpoint.py"


def load_script():
    spec = importlib.util.spec_from_file_location("convert_telme_original_checkpoint", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class ReferenceTeacher(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.text_model = RobertaModel(config.text_config)  # with its (unused) pooler, as released
        self.W = nn.Linear(config.text_config.hidden_size, config.projection_size)
        self.classifier = nn.Linear(config.projection_size, config.num_labels)

    def forward(self, input_ids, attention_mask):
        hidden = self.W(self.text_model(input_ids, attention_mask).last_hidden_state[:, -1, :])
        return hidden, self.classifier(hidden)


class ReferenceStudent(nn.Module):
    def __init__(self, encoder, num_labels):
        super().__init__()
        self.model = encoder
        self.W = nn.Linear(encoder.config.hidden_size, num_labels)

    def forward(self, inputs):
        hidden = self.model(inputs).last_hidden_state[:, 0, :]
        return hidden, self.W(hidden)


class ReferenceASF(nn.Module):
    """The reference fusion; its attention gets a `[batch, 2 * dim]` matrix, i.e. one unbatched sequence."""

    def __init__(self, num_labels, dim, beta_shift, dropout, num_heads):
        super().__init__()
        self.multihead_attn = nn.MultiheadAttention(2 * dim, num_heads)
        self.W_hav = nn.Linear(3 * dim, dim)
        self.W_av = nn.Linear(2 * dim, dim)
        self.beta_shift = beta_shift
        self.LayerNorm = nn.LayerNorm(dim)
        self.AV_LayerNorm = nn.LayerNorm(2 * dim)
        self.dropout = nn.Dropout(dropout)
        self.W = nn.Linear(dim, num_labels)

    def forward(self, text_embedding, visual, acoustic):
        joint = torch.cat((visual, acoustic), dim=-1)
        joint = self.dropout(self.AV_LayerNorm(self.multihead_attn(joint, joint, joint)[0] + joint))
        shift = F.relu(self.W_hav(torch.cat((joint, text_embedding), dim=-1))) * self.W_av(joint)
        shift_norm = shift.norm(2, dim=-1)
        shift_norm = torch.where(shift_norm == 0, torch.ones_like(shift_norm), shift_norm)
        threshold = text_embedding.norm(2, dim=-1) / (shift_norm + 1e-6) * self.beta_shift
        alpha = torch.min(threshold, torch.ones_like(shift_norm))
        return self.W(self.dropout(self.LayerNorm(alpha.unsqueeze(-1) * shift + text_embedding)))


@pytest.fixture(scope="module")
def released(tmp_path_factory):
    """Reference models on tiny encoders, saved in the authors' save_model layout."""
    config = tiny_config()
    torch.manual_seed(0)
    models = {
        "teacher": ReferenceTeacher(config),
        "audio": ReferenceStudent(Data2VecAudioModel(config.audio_config), config.num_labels),
        "video": ReferenceStudent(TimesformerModel(config.video_config), config.num_labels),
        "fusion": ReferenceASF(config.num_labels, HIDDEN, config.fusion_beta_shift, config.fusion_dropout, 2),
    }
    for model in models.values():
        model.eval()
    folder = tmp_path_factory.mktemp("save_model")
    script = load_script()
    for name, model in models.items():
        state_dict = model.state_dict()
        if name == "teacher":  # older transformers saved this buffer
            state_dict["text_model.embeddings.position_ids"] = torch.arange(40).unsqueeze(0)
        path = folder / script.REFERENCE_FILES[name]
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save(state_dict, path)
    sizes = ("projection", "fusion", "text_max")
    fields = {k: v for k, v in config.to_dict().items() if k.endswith("_config") or k.startswith(sizes)}
    (folder / "tiny.json").write_text(json.dumps(fields))
    return folder, models, config


def test_converted_model_reproduces_the_released_one(released, tmp_path):
    folder, reference, config = released
    script = load_script()
    script.main(
        ["--checkpoint_dir", str(folder), "--dataset", "meld", "--output_dir", str(tmp_path / "out"),
         "--config_file", str(folder / "tiny.json")]
    )  # fmt: skip
    model = AutoModel.from_pretrained(tmp_path / "out").eval()
    assert model.config.fusion_attention_scope == "batch" and model.config.audio_sampling_rate == 22050
    # Reference class order (alphabetical) -> canonical order: neutral, surprise, fear, sadness, joy, disgust, anger.
    order = [4, 6, 2, 5, 3, 1, 0]
    assert script.label_permutation("meld", model.config).tolist() == order

    text = text_inputs([9, 6, 4, 7], seed=1)
    audio = audio_inputs([640] * 4, seed=1)["input_values"]
    pixel_values = torch.randn(4, NUM_FRAMES, 3, FRAME_SIZE, FRAME_SIZE)
    with torch.no_grad():
        text_hidden, text_logits = reference["teacher"](text["input_ids"], text["attention_mask"])
        audio_hidden, audio_logits = reference["audio"](audio)
        video_hidden, video_logits = reference["video"](pixel_values)
        fused_logits = reference["fusion"](text_hidden, audio_hidden, video_hidden)  # as fusion.py calls it

        outputs = model(**text, input_values=audio, pixel_values=pixel_values)
        torch.testing.assert_close(outputs.modality_logits["text"], text_logits[:, order])
        torch.testing.assert_close(outputs.utterance_embeddings["text"], text_hidden)
        torch.testing.assert_close(outputs.modality_logits["audio"], audio_logits[:, order])
        torch.testing.assert_close(outputs.modality_logits["video"], video_logits[:, order])
        torch.testing.assert_close(outputs.logits, fused_logits[:, order])

        # Per-utterance attention agrees with the reference on a batch of one.
        per_utterance = AutoModel.from_pretrained(tmp_path / "out", fusion_attention_scope="utterance").eval()
        single = per_utterance(
            text_embeddings=text_hidden[:1], audio_embeddings=audio_hidden[:1], video_embeddings=video_hidden[:1]
        )
        expected = reference["fusion"](text_hidden[:1], audio_hidden[:1], video_hidden[:1])
        torch.testing.assert_close(single.logits, expected[:, order])


def test_conversion_errors(released, tmp_path):
    folder, _, config = released
    script = load_script()
    tiny = json.loads((folder / "tiny.json").read_text())
    with pytest.raises(FileNotFoundError, match="save_model folder"):
        script.convert_checkpoint(tmp_path, "meld", script.reference_config("meld", fields=tiny))
    with pytest.raises(ValueError, match="not the reference's iemocap labels"):
        script.label_permutation("iemocap", config)
    wider = dict(tiny, text_config={**tiny["text_config"], "intermediate_size": 40})
    with pytest.raises(script.CheckpointFormatError, match="intermediate.dense.weight has shape"):
        script.convert_checkpoint(folder, "meld", script.reference_config("meld", fields=wider))
    deeper = dict(tiny, video_config={**tiny["video_config"], "num_hidden_layers": 3})
    with pytest.raises(script.CheckpointFormatError, match="missing .'video_student.encoder.encoder.layer.2"):
        script.convert_checkpoint(folder, "meld", script.reference_config("meld", fields=deeper))
