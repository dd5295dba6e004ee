"""scripts/convert_magtkd_original_checkpoint.py on state dicts with the authors' key names and shapes.

`ReferenceFusion` below is a small stand-in for the reference's `Transformer_Based_Model` (MELD/model.py): the
same attribute names (hence state-dict keys) and the same computation, written independently here, including the
reference's quirks (padding speaker id 2, the text anchor reusing `t_t`/`t_t_gate`, alphabetical classes). The
converted model must give the same predictions. The unimodal models (`Text_model`, `Audio_model`, `Video_model`)
have TelME's layouts: their stand-ins are in tests/utils/reference_modules.py.
"""

import json
import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from transformers import AutoModel, AutoProcessor

from hf_erc.models import (
    MAGTKDAudioModel,
    MAGTKDConfig,
    MAGTKDForEmotionRecognition,
    MAGTKDTextModel,
    MAGTKDVideoModel,
)
from tests.utils.reference_modules import (
    reference_unimodal_model,
    save_released,
    unimodal_inputs,
    write_reference_tokenizer,
)
from tests.utils.scripts import load_script
from tests.utils.tiny_encoders import tiny_audio_config, tiny_text_config, tiny_video_config
from tests.utils.tiny_telme import FRAME_SIZE, NUM_FRAMES, TEXT_VOCAB
from tests.utils.training import assert_loads_without_hf_erc_and_peft

SCRIPT = Path(__file__).resolve().parents[3] / "scripts" / "convert_magtkd_original_checkpoint.py"
HIDDEN = 16
HEADS = 2


@pytest.fixture(scope="module")
def convert():
    return load_script(SCRIPT)


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


# The unimodal stages: the authors' files (text, audio, video; plain and distilled) on tiny encoders.
UNIMODAL_HIDDEN = 32
TINY_ENCODERS = {
    "text_config": tiny_text_config(UNIMODAL_HIDDEN, vocab_size=TEXT_VOCAB),
    "audio_config": tiny_audio_config(UNIMODAL_HIDDEN),
    "video_config": tiny_video_config(UNIMODAL_HIDDEN, image_size=FRAME_SIZE, num_frames=NUM_FRAMES),
    "projection_size": UNIMODAL_HIDDEN,
    "text_max_length": 24,
}
RELEASED_FILES = {
    "text.bin": "text",
    "audio.bin": "audio",
    "text_KD_audio.bin": "audio",
    "video.bin": "video",
    "text_KD_video.bin": "video",
}
STAGE_CLASSES = {"text": MAGTKDTextModel, "audio": MAGTKDAudioModel, "video": MAGTKDVideoModel}


@pytest.fixture(scope="module")
def unimodal_release(tmp_path_factory):
    """Per dataset, a save_model folder with one stand-in per released unimodal file (each its own weights)."""
    root = tmp_path_factory.mktemp("magtkd")
    (root / "tiny.json").write_text(json.dumps(TINY_ENCODERS))
    releases = {}
    for dataset in ("meld", "iemocap"):
        config = MAGTKDConfig.for_dataset(dataset, **TINY_ENCODERS)
        models = {}
        for seed, (name, modality) in enumerate(RELEASED_FILES.items()):
            torch.manual_seed(seed)
            models[name] = reference_unimodal_model(modality, config)
            save_released(models[name], root / dataset / "save_model" / name)
        releases[dataset] = (root / dataset / "save_model", models)
    return root / "tiny.json", releases


@pytest.fixture(scope="module")
def tokenizer_dir(tmp_path_factory):
    return write_reference_tokenizer(tmp_path_factory.mktemp("roberta-tokenizer"))


@pytest.mark.parametrize(
    "file, dataset",
    [("text.bin", "meld"), ("text.bin", "iemocap"), ("audio.bin", "meld"), ("text_KD_audio.bin", "iemocap"),
     ("video.bin", "iemocap"), ("text_KD_video.bin", "meld")],
)  # fmt: skip
def test_unimodal_conversion_reproduces_the_released_model(
    convert, unimodal_release, tokenizer_dir, tmp_path, file, dataset
):
    config_file, releases = unimodal_release
    folder, reference = releases[dataset]
    stage = RELEASED_FILES[file]
    output = tmp_path / "converted"
    converted = convert.main(
        ["--stage", stage, "--checkpoint", str(folder / file), "--dataset", dataset, "--output_dir", str(output),
         "--config_file", str(config_file), "--tokenizer", str(tokenizer_dir)]
    )  # fmt: skip
    assert type(converted) is STAGE_CLASSES[stage]
    model = AutoModel.from_pretrained(output).eval()
    assert type(model) is STAGE_CLASSES[stage] and model.config.dataset_name == dataset
    permutation = convert.label_permutation(dataset)
    assert [model.config.id2label[i] for i in range(len(permutation))] == [
        convert.REFERENCE_LABELS[dataset][int(index)] for index in permutation
    ]

    inputs, reference_args = unimodal_inputs(stage)
    with torch.no_grad():
        hidden, logits = reference[file](*reference_args)
        outputs = model(**inputs)
    torch.testing.assert_close(outputs.logits, logits[:, permutation])
    torch.testing.assert_close(outputs.utterance_embeddings, hidden)
    # The checkpoint alone (its shipped code) gives the same logits where hf_erc and peft cannot be imported.
    assert_loads_without_hf_erc_and_peft(output, inputs, tmp_path)

    # The authors' preprocessing: speaker markers are plain text (no marker token), "Now<sK>" without a space.
    processor = AutoProcessor.from_pretrained(output, trust_remote_code=True)
    assert processor.preprocessing == "reference" and processor.num_speaker_tokens == 0
    assert "<s1>" not in processor.tokenizer.get_vocab()
    assert (processor.prompt_template, processor.audio_window, processor.audio_sampling_rate) == (
        "{sep} Now{speaker} feels", "first", 22050)  # fmt: skip
    assert processor.speaker_numbering == {"meld": "vocabulary", "iemocap": "carried"}[dataset]
    if stage == "text":
        # The embedding keeps the released rows (the 9 marker rows at real size) though the data never uses them.
        assert model.get_input_embeddings().weight.shape[0] == TEXT_VOCAB == model.config.text_config.vocab_size
        conversation = processor(speakers=["Ross", "Rachel", "Ross"], texts=["hi there", "how are you", "fine"])
        text = {"input_ids": conversation["input_ids"], "attention_mask": conversation["attention_mask"]}
        with torch.no_grad():
            expected_hidden, expected_logits = reference[file](text["input_ids"], text["attention_mask"])
            served = model(**text)
        torch.testing.assert_close(served.logits, expected_logits[:, permutation])
        torch.testing.assert_close(served.utterance_embeddings, expected_hidden)


def test_unimodal_conversion_errors(convert, unimodal_release, tmp_path, capsys):
    config_file, releases = unimodal_release
    folder, reference = releases["meld"]
    tiny = json.loads(config_file.read_text())
    meld, iemocap = convert.reference_config("meld", tiny), convert.reference_config("iemocap", tiny)

    with pytest.raises(FileNotFoundError, match=r"not found: pass the authors' audio\.bin or text_KD_audio\.bin"):
        convert.convert_stage_checkpoint(tmp_path / "missing.bin", "audio", "meld", meld)
    with pytest.raises(FileNotFoundError, match="is a folder, not a checkpoint file"):
        convert.convert_stage_checkpoint(folder, "text", "meld", meld)
    # A file of another stage.
    with pytest.raises(convert.CheckpointFormatError, match=r"text\.bin: unexpected key 'text_model\."):
        convert.convert_stage_checkpoint(folder / "text.bin", "audio", "meld", meld)
    torch.save(ReferenceFusion(2, 6).state_dict(), tmp_path / "multimodal_fusion_best.bin")
    with pytest.raises(convert.CheckpointFormatError, match="unexpected key 'speaker_embeddings.weight'"):
        convert.convert_stage_checkpoint(tmp_path / "multimodal_fusion_best.bin", "text", "iemocap", iemocap)
    with pytest.raises(convert.CheckpointFormatError, match=r"text\.bin has no \['w_t\.weight'.*use --stage"):
        convert.convert_checkpoint(folder / "text.bin", "meld")
    # A whole pickled model (not a state dict) is refused without running its code.
    torch.save(reference["audio.bin"], tmp_path / "pickled_model.bin")
    with pytest.raises(convert.CheckpointFormatError, match=r"pickled_model\.bin cannot be read as a state dict"):
        convert.convert_stage_checkpoint(tmp_path / "pickled_model.bin", "audio", "meld", meld)
    # A MELD model (7 classes) converted for IEMOCAP (6).
    with pytest.raises(convert.CheckpointFormatError, match=r"video\.bin: the classifier classifier\.weight has 7"):
        convert.convert_stage_checkpoint(folder / "video.bin", "video", "iemocap", iemocap)
    # A key missing from the file, named in hf_erc's and in the authors' terms.
    state_dict = reference["text_KD_video.bin"].state_dict()
    del state_dict["model.layernorm.bias"]
    torch.save(state_dict, tmp_path / "text_KD_video.bin")
    with pytest.raises(
        convert.CheckpointFormatError,
        match=r"text_KD_video\.bin does not match .*missing "
        r"\['encoder\.layernorm\.bias \(from model\.layernorm\.bias\)'\]",
    ):
        convert.convert_stage_checkpoint(tmp_path / "text_KD_video.bin", "video", "meld", meld)
    # Encoder sizes that differ from the file's.
    wider_audio = {**tiny["audio_config"], "intermediate_size": 40}
    wider = convert.reference_config("meld", dict(tiny, audio_config=wider_audio))
    with pytest.raises(convert.CheckpointFormatError, match=r"audio\.bin: .*intermediate_dense\.weight has shape"):
        convert.convert_stage_checkpoint(folder / "audio.bin", "audio", "meld", wider)

    # The command line: a processor goes with the unimodal models; the heads are the fusion's.
    common = ["--checkpoint", str(folder / "text.bin"), "--dataset", "meld", "--output_dir", str(tmp_path / "out")]
    for arguments, message in (
        (["--tokenizer", "roberta-large"], "the fusion reads the text, audio and video models' features"),
        (["--stage", "text", "--num_attention_heads", "4"], "--num_attention_heads sets the fusion's heads"),
    ):
        with pytest.raises(SystemExit):
            convert.parse_args(arguments + common)
        assert message in capsys.readouterr().err


def test_fusion_stage_is_the_default_and_checks_its_classes(convert, tmp_path):
    torch.manual_seed(0)
    reference = ReferenceFusion(2, 6).eval()
    torch.save(reference.state_dict(), tmp_path / "multimodal_fusion_best.bin")
    model = convert.main(
        ["--checkpoint", str(tmp_path / "multimodal_fusion_best.bin"), "--dataset", "iemocap",
         "--output_dir", str(tmp_path / "fusion"), "--num_attention_heads", str(HEADS)]
    )  # fmt: skip
    assert type(model) is MAGTKDForEmotionRecognition and model.config.num_attention_heads == HEADS
    assert type(AutoModel.from_pretrained(tmp_path / "fusion")) is MAGTKDForEmotionRecognition
    # A fusion of 7 classes (MELD's) converted for IEMOCAP's 6.
    torch.save(ReferenceFusion(2, 7).state_dict(), tmp_path / "meld_fusion.bin")
    with pytest.raises(convert.CheckpointFormatError, match=r"meld_fusion\.bin: the classifier classifier\.weight"):
        convert.convert_checkpoint(tmp_path / "meld_fusion.bin", "iemocap", num_attention_heads=HEADS)
