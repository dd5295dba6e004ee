"""scripts/convert_telme_original_checkpoint.py on state dicts with the authors' key names and layout.

The stand-ins of the reference's ``Teacher_model``, ``Student_Audio`` and ``Student_Video`` (``MELD/model.py``) are
in ``tests/utils/reference_modules.py`` (MAGTKD's unimodal models share them); ``ReferenceASF`` below is the
reference's ``ASF``. They have the reference's attribute names and compute what its ``forward`` computes, on tiny
encoders.
"""

import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from transformers import AutoModel, AutoProcessor

from hf_erc.models import TelMEAudioStudent, TelMETextTeacher, TelMEVideoStudent
from tests.utils.reference_modules import (
    reference_unimodal_model,
    save_released,
    unimodal_inputs,
    write_reference_tokenizer,
)
from tests.utils.scripts import load_script
from tests.utils.tiny_telme import FRAME_SIZE, HIDDEN, NUM_FRAMES, audio_inputs, text_inputs, tiny_config
from tests.utils.training import assert_loads_without_hf_erc_and_peft


SCRIPT = Path(__file__).resolve().parents[3] / "scripts" / "convert_telme_original_checkpoint.py"
# Reference class order (alphabetical) -> canonical order: neutral, surprise, fear, sadness, joy, disgust, anger.
MELD_ORDER = [4, 6, 2, 5, 3, 1, 0]
STAGE_CLASSES = {"teacher": TelMETextTeacher, "audio": TelMEAudioStudent, "video": TelMEVideoStudent}
STAGE_MODALITIES = {"teacher": "text", "audio": "audio", "video": "video"}


def convert_script():
    return load_script(SCRIPT)


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
        "teacher": reference_unimodal_model("text", config),
        "audio": reference_unimodal_model("audio", config),
        "video": reference_unimodal_model("video", config),
        "fusion": ReferenceASF(config.num_labels, HIDDEN, config.fusion_beta_shift, config.fusion_dropout, 2),
    }
    for model in models.values():
        model.eval()
    folder = tmp_path_factory.mktemp("save_model")
    script = convert_script()
    for name, model in models.items():
        save_released(model, folder / script.REFERENCE_FILES[name])  # the teacher with its position_ids buffer
    sizes = ("projection", "fusion", "text_max")
    fields = {k: v for k, v in config.to_dict().items() if k.endswith("_config") or k.startswith(sizes)}
    (folder / "tiny.json").write_text(json.dumps(fields))
    return folder, models, config


def test_converted_model_reproduces_the_released_one(released, tmp_path):
    folder, reference, config = released
    script = convert_script()
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
    script = convert_script()
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


@pytest.fixture(scope="module")
def tokenizer_dir(tmp_path_factory):
    return write_reference_tokenizer(tmp_path_factory.mktemp("roberta-tokenizer"))


@pytest.mark.parametrize("stage, source", [("teacher", "file"), ("audio", "file"), ("video", "folder")])
def test_stage_conversion_reproduces_the_released_stage_model(released, tokenizer_dir, tmp_path, stage, source):
    folder, reference, _ = released
    script = convert_script()
    output = tmp_path / stage
    where = ["--checkpoint", str(folder / script.REFERENCE_FILES[stage])] if source == "file" else [
        "--checkpoint_dir", str(folder)]  # fmt: skip
    converted = script.main(
        ["--stage", stage, *where, "--dataset", "meld", "--output_dir", str(output),
         "--config_file", str(folder / "tiny.json"), "--tokenizer", str(tokenizer_dir)]
    )  # fmt: skip
    assert type(converted) is STAGE_CLASSES[stage]
    model = AutoModel.from_pretrained(output).eval()
    assert type(model) is STAGE_CLASSES[stage] and model.config.audio_sampling_rate == 22050
    assert [model.config.id2label[index] for index in range(7)][:2] == ["neutral", "surprise"]

    inputs, reference_args = unimodal_inputs(STAGE_MODALITIES[stage])
    with torch.no_grad():
        hidden, logits = reference[stage](*reference_args)
        outputs = model(**inputs)
    torch.testing.assert_close(outputs.logits, logits[:, MELD_ORDER])
    torch.testing.assert_close(outputs.utterance_embeddings, hidden)
    # The checkpoint alone (its shipped code) gives the same logits where hf_erc and peft cannot be imported.
    assert_loads_without_hf_erc_and_peft(output, inputs, tmp_path)

    processor = AutoProcessor.from_pretrained(output, trust_remote_code=True)
    assert processor.preprocessing == "reference"
    assert (processor.speaker_numbering, processor.audio_window, processor.audio_sampling_rate) == (
        "carried", "last", 22050)  # fmt: skip
    assert processor.num_speaker_tokens == 9 and "<s1>" in processor.tokenizer.get_vocab()
    if stage == "teacher":
        # What the processor builds from a conversation is what the released teacher read.
        conversation = processor(speakers=["Ross", "Rachel", "Ross"], texts=["hi there", "how are you", "fine"])
        text = {"input_ids": conversation["input_ids"], "attention_mask": conversation["attention_mask"]}
        assert int(text["input_ids"].max()) < reference["teacher"].text_model.config.vocab_size
        with torch.no_grad():
            expected_hidden, expected_logits = reference["teacher"](text["input_ids"], text["attention_mask"])
            served = model(**text)
        torch.testing.assert_close(served.logits, expected_logits[:, MELD_ORDER])
        torch.testing.assert_close(served.utterance_embeddings, expected_hidden)


def test_stage_conversion_errors(released, tmp_path, capsys):
    folder, reference, config = released
    script = convert_script()
    tiny = json.loads((folder / "tiny.json").read_text())
    meld = script.reference_config("meld", fields=tiny)
    teacher_file = folder / script.REFERENCE_FILES["teacher"]

    with pytest.raises(FileNotFoundError, match=r"missing\.bin not found: pass the authors' teacher\.bin"):
        script.convert_stage_checkpoint(tmp_path / "missing.bin", "teacher", "meld", meld)
    with pytest.raises(FileNotFoundError, match="is a folder, not a checkpoint file"):
        script.convert_stage_checkpoint(folder, "audio", "meld", meld)
    # The teacher's file given as the audio student's.
    with pytest.raises(script.CheckpointFormatError, match=r"teacher\.bin: unexpected key 'text_model\."):
        script.convert_stage_checkpoint(teacher_file, "audio", "meld", meld)
    # A MELD checkpoint (7 classes) converted for IEMOCAP (6), whole or by stage.
    iemocap = script.reference_config("iemocap", fields=tiny)
    with pytest.raises(script.CheckpointFormatError, match=r"teacher\.bin: the classifier classifier\.weight has 7"):
        script.convert_stage_checkpoint(teacher_file, "teacher", "iemocap", iemocap)
    with pytest.raises(script.CheckpointFormatError, match="has 7 classes, the dataset 6. Check --dataset"):
        script.convert_checkpoint(folder, "iemocap", iemocap)
    # A key missing from the file: named in hf_erc's and in the authors' terms.
    state_dict = reference["audio"].state_dict()
    del state_dict["model.encoder.layer_norm.weight"]
    torch.save(state_dict, tmp_path / "total_student.bin")
    with pytest.raises(
        script.CheckpointFormatError,
        match=r"total_student\.bin does not match .*missing \['encoder\.encoder\.layer_norm\.weight "
        r"\(from model\.encoder\.layer_norm\.weight\)'\]",
    ):
        script.convert_stage_checkpoint(tmp_path / "total_student.bin", "audio", "meld", meld)
    # Encoder sizes that differ from the file's.
    wider_text = {**tiny["text_config"], "intermediate_size": 40}
    wider = script.reference_config("meld", fields=dict(tiny, text_config=wider_text))
    with pytest.raises(script.CheckpointFormatError, match=r"teacher\.bin: .*intermediate\.dense\.weight has shape"):
        script.convert_stage_checkpoint(teacher_file, "teacher", "meld", wider)
    # Files that are not state dicts of tensors.
    torch.save({"model": {"weight": torch.zeros(1)}}, tmp_path / "nested.bin")
    with pytest.raises(script.CheckpointFormatError, match="does not hold a state dict of tensors"):
        script.convert_stage_checkpoint(tmp_path / "nested.bin", "video", "meld", meld)
    (tmp_path / "garbage.bin").write_bytes(b"not a checkpoint")
    with pytest.raises(script.CheckpointFormatError, match=r"garbage\.bin cannot be read as a state dict"):
        script.convert_stage_checkpoint(tmp_path / "garbage.bin", "teacher", "meld", meld)

    # The command line: one stage's file needs --stage; a stage needs one source.
    common = ["--dataset", "meld", "--output_dir", str(tmp_path / "out")]
    for arguments, message in (
        (["--checkpoint", str(teacher_file)], "--checkpoint names one stage's file"),
        (["--stage", "all"], "pass --checkpoint_dir"),
        (["--stage", "audio"], "pass either --checkpoint"),
        (["--stage", "audio", "--checkpoint", str(teacher_file), "--checkpoint_dir", str(folder)], "not both"),
    ):
        with pytest.raises(SystemExit):
            script.parse_args(arguments + common)
        assert message in capsys.readouterr().err
