"""scripts/convert_magtkd_original_checkpoint.py on a state dict with the authors' key names and shapes.

`ReferenceFusion` below is a small stand-in for the reference's `Transformer_Based_Model` (MELD/model.py): the
same attribute names (hence state-dict keys) and the same computation, written independently here, including the
reference's quirks (padding speaker id 2, the text anchor reusing `t_t`/`t_t_gate`, alphabetical classes). The
converted model must give the same predictions.
"""

import importlib.util
import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from transformers import AutoModel

from hf_erc.models import MAGTKDForEmotionRecognition

SCRIPT = Path(__file__).resolve().parents[3] / "scripts" / "convert_magtkd_original_checkpoint.py"
HIDDEN = 16
HEADS = 2


@pytest.fixture(scope="module")
def convert():
    spec = importlib.util.spec_from_file_location("convert_magtkd_original_checkpoint", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class ReferenceAttention(nn.Module):
    def __init__(self):
        super().__init__()
        self.proj_q, self.proj_k, self.proj_v, self.fc = (nn.Linear(HIDDEN, HIDDEN) for _ in range(4))

    def forward(self, query, key, value, padding):
        batch, head_dim = query.shape[0], HIDDEN // HEADS

        def heads(states):
            return states.view(batch, -1, HEADS, head_dim).transpose(1, 2)

        scores = heads(self.proj_q(query)) / math.sqrt(head_dim) @ heads(self.proj_k(key)).transpose(2, 3)
        scores = scores.masked_fill(padding[:, None, None, :], -1e9)
        context = scores.softmax(-1) @ heads(self.proj_v(value))
        return self.fc(context.transpose(1, 2).reshape(batch, -1, HIDDEN))


class ReferenceFeedForward(nn.Module):
    def __init__(self):
        super().__init__()
        self.w_1, self.w_2 = nn.Linear(HIDDEN, HIDDEN), nn.Linear(HIDDEN, HIDDEN)
        self.layer_norm = nn.LayerNorm(HIDDEN, eps=1e-6)

    def forward(self, x):
        return self.w_2(F.gelu(self.w_1(self.layer_norm(x)))) + x


class ReferenceLayer(nn.Module):
    def __init__(self):
        super().__init__()
        self.self_attn = ReferenceAttention()
        self.feed_forward = ReferenceFeedForward()
        self.layer_norm = nn.LayerNorm(HIDDEN, eps=1e-6)  # unused by a first layer


class ReferenceEncoder(nn.Module):
    def __init__(self):
        super().__init__()
        self.pos_emb = nn.Module()
        position = torch.arange(64).unsqueeze(1)
        angles = position * torch.exp(torch.arange(0, HIDDEN, 2) * (-math.log(10000.0) / HIDDEN))
        table = torch.zeros(64, HIDDEN)
        table[:, 0::2], table[:, 1::2] = torch.sin(angles), torch.cos(angles)
        self.pos_emb.register_buffer("pe", table.unsqueeze(0))
        self.transformer_inter = nn.ModuleList([ReferenceLayer()])

    def forward(self, source, target, padding, speaker, intra):
        context = self.pos_emb.pe[:, : target.shape[1]] + speaker
        target = target + context
        source = target if intra else source + context
        layer = self.transformer_inter[0]
        attended = layer.self_attn(target, source, source, padding) + target
        return layer.feed_forward(attended)


class ReferenceGate(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(HIDDEN, HIDDEN)

    def forward(self, x):
        return torch.sigmoid(F.relu(self.fc(x))) * x


class ReferenceFusion(nn.Module):
    """`Transformer_Based_Model` at width 16 (eval mode: dropout is the identity)."""

    def __init__(self, num_speakers, num_labels):
        super().__init__()
        self.speaker_embeddings = nn.Embedding(num_speakers + 1, HIDDEN, padding_idx=2)
        nn.init.normal_(self.speaker_embeddings.weight, std=0.1)
        for name in ("t_t", "a_t", "v_t", "a_a", "t_a", "v_a", "v_v", "t_v", "a_v"):
            setattr(self, name, ReferenceEncoder())
            setattr(self, f"{name}_gate", ReferenceGate())
        for modality in "tav":
            setattr(self, f"features_reduce_{modality}", nn.Linear(3 * HIDDEN, HIDDEN))
            setattr(self, f"w_{modality}", nn.Linear(HIDDEN, num_labels))
        self.fc = nn.Linear(3 * HIDDEN, HIDDEN)

    def forward(self, text, audio, video, umask, speakers):
        padding = umask == 0
        speaker = self.speaker_embeddings(speakers.masked_fill(padding, 2))
        x = {"t": text, "a": audio, "v": video}

        def branch(target, sources, encoder_of, gate_of):
            outputs = []
            for name, source in sources:
                encoded = encoder_of(name)(source, x[target], padding, speaker, intra=name[0] == target)
                outputs.append(gate_of(name)(encoded))
            return getattr(self, f"features_reduce_{target}")(torch.cat(outputs, -1))

        own = (
            lambda name: getattr(self, name),
            lambda name: getattr(self, f"{name}_gate"),
        )
        enhanced_audio = branch("a", [("a_a", audio), ("t_a", text), ("v_a", video)], *own)
        enhanced_video = branch("v", [("v_v", video), ("t_v", text), ("a_v", audio)], *own)
        fused = branch("t", [("t_t", text), ("a_t", enhanced_audio), ("v_t", enhanced_video)],
                       lambda name: self.t_t, lambda name: self.t_t_gate)  # fmt: skip
        return self.w_t(fused), self.w_a(enhanced_audio), self.w_v(enhanced_video)


@pytest.mark.parametrize("dataset, num_speakers, num_labels", [("meld", 304, 7), ("iemocap", 2, 6)])
def test_converted_reference_gives_the_same_predictions(convert, tmp_path, dataset, num_speakers, num_labels):
    torch.manual_seed(0)
    reference = ReferenceFusion(num_speakers, num_labels).eval()
    checkpoint = tmp_path / "multimodal_fusion_best.bin"
    torch.save(reference.state_dict(), checkpoint)

    model = convert.convert_checkpoint(checkpoint, dataset, tmp_path / "converted", num_attention_heads=HEADS)
    assert (
        model.config.hidden_size,
        model.config.num_speakers,
        model.config.num_labels,
    ) == (HIDDEN, num_speakers, num_labels)
    assert model.config.dataset_name == dataset
    converted = AutoModel.from_pretrained(tmp_path / "converted").eval()
    assert type(converted) is MAGTKDForEmotionRecognition

    lengths = [5, 3]
    umask = torch.tensor([[1] * length + [0] * (5 - length) for length in lengths])
    features = {m: torch.randn(2, 5, HIDDEN) for m in ("text", "audio", "video")}
    # Speaker 2 (Joey on MELD) shares the reference's padding row: its predictions must survive the conversion.
    speakers = torch.tensor([[0, 1, 2, 1, 0], [2, 3, 0, 0, 0]]) % num_speakers
    with torch.no_grad():
        expected = reference(features["text"], features["audio"], features["video"], umask, speakers)
        outputs = converted(
            **{f"{m}_features": value for m, value in features.items()},
            attention_mask=umask,
            speaker_ids=speakers,
        )
    permutation = convert.label_permutation(dataset)
    real = umask.bool()
    actual = (
        outputs.logits,
        outputs.modality_logits["audio"],
        outputs.modality_logits["video"],
    )
    for mine, theirs in zip(actual, expected):
        torch.testing.assert_close(mine[real], theirs[..., permutation][real], atol=1e-5, rtol=1e-4)
    assert [converted.config.id2label[i] for i in range(num_labels)] == [
        convert.REFERENCE_LABELS[dataset][int(index)] for index in permutation
    ]


def test_unexpected_keys_and_missing_files_are_reported(convert, tmp_path):
    state_dict = ReferenceFusion(2, 6).state_dict()
    state_dict["something_else.weight"] = torch.zeros(1)
    with pytest.raises(ValueError, match="something_else"):
        convert.convert_state_dict(state_dict, "iemocap")
    with pytest.raises(FileNotFoundError, match="multimodal_fusion_best"):
        convert.convert_checkpoint(tmp_path / "missing.bin", "meld")
