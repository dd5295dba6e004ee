"""TelMEProcessor: its preprocessing modes and presets, agreement with what training batches, loading without
hf_erc."""

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
from datasets import Dataset
from safetensors.torch import load_file
from transformers import AutoProcessor

import hf_erc.models  # noqa: F401  (registers the Auto classes)
from hf_erc.data.collators import TELME_SPEAKER_TOKENS, PromptCollator
from hf_erc.data.dialogues import add_dialogue_context
from hf_erc.models import TelMEConfig, TelMEForEmotionRecognition, TelMEProcessor
from hf_erc.data.collators import MediaCollator
from hf_erc.models.telme.processing_telme import recording_frame_indices, sample_frame_indices
from tests.utils.media_fixtures import frame_index, write_avi, write_mp4
from tests.utils.tiny_telme import FRAME_SIZE, NUM_FRAMES, WORDS, tiny_config, tiny_processor, tiny_tokenizer


SPEAKERS = ["Joey", "Ross", "Joey", "Rachel", "Ross"]
TEXTS = ["hi there", "hello", "how are you", "pizza again", "no yes smelly cat"]


def conversation_media(seed=0):
    """Waveforms (one missing) and RGB frames (one missing) for the five utterances of the conversation."""
    rng = np.random.default_rng(seed)
    audio = [rng.normal(size=800) * 3 + 1, rng.normal(size=500), None, rng.normal(size=640), rng.normal(size=700)]
    videos = [rng.integers(0, 256, (frames, 40, 48, 3), dtype=np.uint8) for frames in (5, 2, 9, 4, 3)]
    videos[1] = None
    return audio, videos


def test_training_prompts_are_the_processors():
    """Training batches rows with PromptCollator, which asks the processor: the same inputs as serving a whole
    conversation."""
    processor = tiny_processor()
    utterances = Dataset.from_dict(
        {"dialogue_id": ["d0"] * 5, "turn": list(range(5)), "speaker": SPEAKERS, "text": TEXTS}
    )
    rows = list(add_dialogue_context(utterances))
    expected = PromptCollator(processor, label_column=None)(rows)
    batch = processor(speakers=SPEAKERS, texts=TEXTS)
    for name in ("input_ids", "attention_mask", "prompt_positions"):
        assert torch.equal(batch[name], expected[name]), name
    expected_prompt = "<s1> hi there <s2> hello <s1> how are you <s3> pizza again </s> Now <s3> feels"
    assert processor.build_prompts(SPEAKERS, TEXTS)[3] == expected_prompt
    # Left truncation keeps the prompt: the same in training at a small budget.
    short = tiny_processor(max_length=8)
    truncated = PromptCollator(short, label_column=None)(rows)
    assert torch.equal(short(speakers=SPEAKERS, texts=TEXTS)["input_ids"], truncated["input_ids"])
    # The speaker tokens were added as special tokens, after the vocabulary, in order.
    ids = processor.tokenizer.convert_tokens_to_ids(list(TELME_SPEAKER_TOKENS))
    assert ids == list(range(5 + len(WORDS), 5 + len(WORDS) + 9))


def test_presets_are_the_authors_settings_or_the_configurations():
    config = TelMEConfig.for_dataset("meld")
    assert TelMEProcessor.preset("meld", "reference", config) == {
        "preprocessing": "reference",
        "audio_sampling_rate": 22050,
        "max_audio_seconds": 400_000 / 22050,  # the authors' last 400,000 samples at librosa's default rate
        "num_frames": 8,
        "video_channel_order": "bgr",
        "num_speaker_tokens": 9,
        "speaker_numbering": "carried",
        "strip_spaces_around_markers": True,
        "audio_window": "last",
        "max_clip_seconds": 30.0,
        "long_clip_inputs": "zeros",
    }
    iemocap = TelMEProcessor.preset("iemocap", "reference", config)
    assert (iemocap["speaker_key"], iemocap["max_clip_seconds"], iemocap["video_margin_seconds"]) == ("turn", None, 1.0)
    assert TelMEProcessor.preset("iemocap", "default", config) == {
        "preprocessing": "default",
        "strip_spaces_around_markers": True,
        "num_speaker_tokens": config.num_speaker_tokens,
        "audio_sampling_rate": config.audio_sampling_rate,
        "max_audio_seconds": config.audio_max_seconds,
        "max_clip_seconds": config.max_clip_seconds,
        "num_frames": config.video_num_frames,
    }
    with pytest.raises(ValueError, match=r"No reference preprocessing is known for TelMEProcessor on 'emorynlp'"):
        TelMEProcessor.preset("emorynlp", "reference", config)
    with pytest.raises(ValueError, match=r"preprocessing must be one of \['default', 'reference'\], got 'authors'"):
        TelMEProcessor.preset("meld", "authors", config)


def test_a_preset_processor_saves_its_preset_and_serves_the_same_inputs(tmp_path):
    config = tiny_config()
    processor = TelMEProcessor.from_preset("meld", "reference", tiny_tokenizer(), config, max_length=24)
    assert processor.marker_tokens == [f"<s{index}>" for index in range(1, 10)]
    assert processor.image_processor.crop_size == {"height": config.video_frame_size, "width": config.video_frame_size}
    processor.save_pretrained(tmp_path)
    served = AutoProcessor.from_pretrained(tmp_path)
    assert type(served) is TelMEProcessor
    for name, value in TelMEProcessor.preset("meld", "reference", config).items():
        assert getattr(served, name) == value, name
    audio, videos = conversation_media()
    expected = processor(speakers=SPEAKERS, texts=TEXTS, audio=audio, videos=videos, sampling_rate=22050)
    batch = served(speakers=SPEAKERS, texts=TEXTS, audio=audio, videos=videos, sampling_rate=22050)
    assert batch.keys() == expected.keys()
    for name in expected:
        assert torch.equal(batch[name], expected[name]), name
    # The reference normalises as the authors did: its encoders' own preprocessors apply to default preprocessing.
    with pytest.raises(ValueError, match="pass no feature_extractor or image_processor"):
        TelMEProcessor.from_preset(
            "meld", "reference", tiny_tokenizer(), config, 24, feature_extractor=processor.feature_extractor
        )
    images = tiny_processor().image_processor
    default = TelMEProcessor.from_preset("meld", "default", tiny_tokenizer(), config, 24, image_processor=images)
    assert default.preprocessing == "default" and default.image_processor is images


def test_recording_frames_follow_the_authors_opencv_loop():
    """IEMOCAP reference: frames by their position in the dialogue's avi, as the authors' loop keeps them (OpenCV's
    position after a read, the step from fps x window), not among the frames whose time lies in the window."""
    # The first row of the authors' IEMOCAP train CSV (Ses01F_impro01_F000, 6.2901-8.2357 s) at 29.97 fps: the window
    # [5.2901, 9.2357] s holds positions 159..276 (frames 158..275), step floor(118.25 / 8) = 14.
    assert recording_frame_indices(6.2901, 8.2357, 30000 / 1001, 8, 1.0) == [171, 185, 199, 213, 227, 241, 255, 269]
    # A turn in the recording's first second: the window [0, 2.5] s at 10 fps is frames 0..24, step 3.
    assert recording_frame_indices(0.5, 1.5, 10, 8, 1.0) == [2, 5, 8, 11, 14, 17, 20, 23]
    with pytest.raises(ValueError, match="fewer than 8 frames"):
        recording_frame_indices(1.0, 1.1, 10, 8, 0.0)
    config = tiny_config("iemocap")
    assert TelMEProcessor.preset("iemocap", "reference", config)["video_frame_rule"] == "recording"
    assert "video_frame_rule" not in TelMEProcessor.preset("meld", "reference", config)
    assert "video_frame_rule" not in TelMEProcessor.preset("iemocap", "default", config)


def test_training_and_serving_read_a_turn_s_frames_by_the_processor_s_rule(tmp_path):
    """MediaCollator (training and the pipeline) decodes the frames the processor's rule names: with
    ``video_frame_rule="recording"`` one frame earlier than the clip rule on the same window."""
    path = write_avi(tmp_path / "dialogue.avi", seconds=4.0, fps=10)
    row = {"media_path": path, "media_start": 1.2, "media_end": 2.0}
    recording = tiny_processor(video_margin_seconds=1.0, video_frame_rule="recording")
    # Window [0.2, 3.0] s at 10 fps: positions 2..30, frames 1..29, step floor(28 / 2) = 14 -> frames 14, 28.
    assert [frame_index(frame) for frame in MediaCollator("video", recording).decode(row)] == [14, 28]
    clip = tiny_processor(video_margin_seconds=1.0)
    # The frames whose time is in [0.2, 3.0) s are 2..29 (28 of them), step 14 -> the 14th and 28th: frames 15, 29.
    decoded = MediaCollator("video", clip).decode(row)
    assert [frame_index(decoded[index]) for index in clip.frame_indices(len(decoded))] == [15, 29]
    # A clip of its own (no start/end) is never read by recording positions.
    assert not recording.reads_recording_frames(None, None)


def test_a_long_clip_is_judged_by_its_audio_in_both_stages(tmp_path):
    """TelME's MELD reference zeroes a clip's audio and frames when its *audio* is over the limit (the authors' one
    test): the video stage asks the audio too, not the container's duration."""
    long_video_short_audio = write_mp4(tmp_path / "a.mp4", seconds=2.0, audio_seconds=0.5)
    short_video_long_audio = write_mp4(tmp_path / "b.mp4", seconds=0.5, audio_seconds=2.0)
    processor = tiny_processor(max_clip_seconds=1.0, long_clip_inputs="zeros")
    for modality in ("audio", "video"):
        collator = MediaCollator(modality, processor)
        for path, expected in ((long_video_short_audio, False), (short_video_long_audio, True)):
            row = {"media_path": path, "media_start": None, "media_end": None}
            assert collator._too_long(row, collator.decode(row)) is expected, (modality, path)


def test_sample_frame_indices_follow_the_reference():
    assert sample_frame_indices(20, 8) == [1, 3, 5, 7, 9, 11, 13, 15]
    assert sample_frame_indices(8, 8) == list(range(8))
    assert sample_frame_indices(17, 8) == [1, 3, 5, 7, 9, 11, 13, 15]
    assert sample_frame_indices(5, 8) == [0, 1, 2, 3, 4, 4, 4, 4]


def test_audio_and_video_inputs():
    processor = tiny_processor(max_audio_seconds=600 / 16000)
    audio, videos = conversation_media()
    batch = processor(speakers=SPEAKERS, texts=TEXTS, audio=audio, videos=videos, sampling_rate=16000)
    assert batch["modality_mask"].tolist() == [
        [True, True, True], [True, True, False], [True, False, True], [True, True, True], [True, True, True]
    ]  # fmt: skip
    # Normalised over the whole clip, then the last 600 samples kept, right-padded.
    assert batch["input_values"].shape == (5, 600)
    assert batch["audio_attention_mask"].sum(1).tolist() == [600, 500, 0, 600, 600]
    normalised = (audio[0] - audio[0].mean()) / np.sqrt(audio[0].var() + 1e-7)
    np.testing.assert_allclose(batch["input_values"][0].numpy(), normalised[-600:], atol=1e-4)
    assert (batch["input_values"][1, 500:] == 0).all() and (batch["input_values"][2] == 0).all()

    assert batch["pixel_values"].shape == (5, NUM_FRAMES, 3, FRAME_SIZE, FRAME_SIZE)
    assert (batch["pixel_values"][1] == 0).all()
    frames = [videos[2][index] for index in sample_frame_indices(9, NUM_FRAMES)]
    alone = processor.image_processor([frames], return_tensors="pt")["pixel_values"][0]
    torch.testing.assert_close(batch["pixel_values"][2], alone)
    # The released checkpoints were trained on OpenCV's BGR frames.
    bgr = tiny_processor(video_channel_order="bgr")(speakers=SPEAKERS, texts=TEXTS, videos=videos)
    flipped = processor.image_processor([[frame[..., ::-1].copy() for frame in frames]], return_tensors="pt")
    torch.testing.assert_close(bgr["pixel_values"][2], flipped["pixel_values"][0])
    assert "input_values" not in bgr and bgr["modality_mask"][:, 1].sum() == 0


def test_long_clips_and_bad_inputs():
    processor = tiny_processor(max_clip_seconds=700 / 16000)
    audio, videos = conversation_media()
    batch = processor(speakers=SPEAKERS, texts=TEXTS, audio=audio, videos=videos, sampling_rate=16000)
    # Utterance 0 (800 samples) is longer than the limit: neither its audio nor its video is used.
    assert batch["modality_mask"][0].tolist() == [True, False, False]
    assert batch["modality_mask"][4].tolist() == [True, True, True]
    with pytest.raises(ValueError, match="expects 16000 Hz"):
        processor(speakers=SPEAKERS, texts=TEXTS, audio=audio, sampling_rate=8000)
    with pytest.raises(ValueError, match="Pass sampling_rate"):
        processor(speakers=SPEAKERS, texts=TEXTS, audio=audio)
    with pytest.raises(ValueError, match="one \\(or None\\) each"):
        processor(speakers=SPEAKERS, texts=TEXTS, videos=videos[:2])
    with pytest.raises(ValueError, match="5 speakers for 4 texts"):
        processor(speakers=SPEAKERS, texts=TEXTS[:4])


# Runs where `hf_erc` cannot be imported: the checkpoint's own processor and model, and the stage checkpoints.
_WITHOUT_HF_ERC = textwrap.dedent(
    """
    import json, sys
    sys.modules["hf_erc"] = None
    import numpy as np, torch
    from safetensors.torch import save_file
    from transformers import AutoModel, AutoProcessor

    folder, media_path, output_path = sys.argv[1:4]
    media = np.load(media_path, allow_pickle=False)
    audio = [media[f"audio_{index}"] if f"audio_{index}" in media else None for index in range(5)]
    videos = [media[f"video_{index}"] if f"video_{index}" in media else None for index in range(5)]
    conversation = json.loads(str(media["conversation"]))
    processor = AutoProcessor.from_pretrained(f"{folder}/telme", trust_remote_code=True)
    model = AutoModel.from_pretrained(f"{folder}/telme", trust_remote_code=True).eval()
    inputs = processor(**conversation, audio=audio, videos=videos, sampling_rate=16000)
    outputs = {"input_ids": inputs["input_ids"], "pixel_values": inputs["pixel_values"]}
    stage_inputs = {
        "teacher": {"input_ids": inputs["input_ids"], "attention_mask": inputs["attention_mask"]},
        "audio": {"input_values": inputs["input_values"], "attention_mask": inputs["audio_attention_mask"]},
        "video": {"pixel_values": inputs["pixel_values"]},
    }
    with torch.no_grad():
        outputs["logits"] = model(**inputs).logits
        for name in ("teacher", "audio", "video"):
            stage = AutoModel.from_pretrained(f"{folder}/{name}", trust_remote_code=True).eval()
            print(name, type(stage).__name__, type(stage).__module__)
            outputs[f"{name}_logits"] = stage(**stage_inputs[name]).logits
    print(type(processor).__module__, type(model).__module__)
    save_file({k: v.contiguous() for k, v in outputs.items()}, output_path)
    """
)


def test_checkpoint_without_hf_erc(tmp_path):
    processor = tiny_processor()
    config = tiny_config()
    torch.manual_seed(0)
    model = TelMEForEmotionRecognition(config).eval()
    model.save_pretrained(tmp_path / "telme")
    processor.save_pretrained(tmp_path / "telme")
    files = sorted(path.name for path in (tmp_path / "telme").iterdir())
    assert {"configuration_telme.py", "modeling_telme.py", "processing_telme.py"} <= set(files), files
    stages = {"teacher": model.text_teacher, "audio": model.audio_student, "video": model.video_student}
    for name, stage in stages.items():
        stage.save_pretrained(tmp_path / name)
        assert json.loads((tmp_path / name / "config.json").read_text())["auto_map"]["AutoModel"].endswith(
            type(stage).__name__
        )

    audio, videos = conversation_media()
    media = {f"audio_{i}": a for i, a in enumerate(audio) if a is not None}
    media.update({f"video_{i}": v for i, v in enumerate(videos) if v is not None})
    np.savez(tmp_path / "media.npz", conversation=json.dumps({"speakers": SPEAKERS, "texts": TEXTS}), **media)
    environment = dict(os.environ, HF_MODULES_CACHE=str(tmp_path / "modules"), HF_HUB_OFFLINE="1")
    result = subprocess.run(
        [sys.executable, "-c", _WITHOUT_HF_ERC, str(tmp_path), str(tmp_path / "media.npz"), str(tmp_path / "out.st")],
        cwd=tmp_path,
        env=environment,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "hf_erc" not in result.stdout and "transformers_modules" in result.stdout, result.stdout
    for name, stage in stages.items():
        assert f"{name} {type(stage).__name__} transformers_modules" in result.stdout, result.stdout

    remote = load_file(tmp_path / "out.st")
    inputs = processor(speakers=SPEAKERS, texts=TEXTS, audio=audio, videos=videos, sampling_rate=16000)
    torch.testing.assert_close(remote["input_ids"], inputs["input_ids"])
    torch.testing.assert_close(remote["pixel_values"], inputs["pixel_values"])
    with torch.no_grad():
        outputs = model(**inputs)
    torch.testing.assert_close(remote["logits"], outputs.logits)
    for name, modality in (("teacher", "text"), ("audio", "audio"), ("video", "video")):
        present = inputs["modality_mask"][:, ("text", "audio", "video").index(modality)]
        torch.testing.assert_close(remote[f"{name}_logits"][present], outputs.modality_logits[modality][present])

    reloaded = AutoProcessor.from_pretrained(tmp_path / "telme", trust_remote_code=True)
    assert (reloaded.max_length, reloaded.num_frames, reloaded.video_channel_order) == (24, NUM_FRAMES, "rgb")


def test_a_training_batch_reads_the_frames_and_audio_the_processor_serves(tmp_path):
    """The student stages' collator decodes a clip through the processor's rules: its tensors equal what the
    processor gives for the same clip's frames and waveform (as the pipeline serves them)."""
    from hf_erc.data.collators import MediaCollator
    from hf_erc.data.media import decode_audio, decode_video_frames, resized_frame_size
    from tests.utils.media_fixtures import frame_index, write_mp4

    path = str(tmp_path / "clip.mp4")
    write_mp4(path, seconds=2.0, fps=24, size=(48, 64))  # 48 frames
    processor = tiny_processor(max_audio_seconds=1.0)
    row = {"media_path": path, "media_start": None, "media_end": None, "row": 0, "emotion": 1}

    size = resized_frame_size(path, FRAME_SIZE)
    every_frame = decode_video_frames(path, size=size, frame_indices=lambda count: list(range(count)))
    assert len(every_frame) == 48
    served = processor(speakers=["Joey"], texts=["hi"], videos=[every_frame])
    trained = MediaCollator("video", processor)([row])
    torch.testing.assert_close(trained["pixel_values"], served["pixel_values"], rtol=0, atol=0)
    # The frames are the reference's (two frames of 48: step 24, the 24th and the 48th), not evenly spaced over the
    # clip (which would start at the first frame).
    assert NUM_FRAMES == 2
    chosen = decode_video_frames(path, size=size, frame_indices=processor.frame_indices)
    assert [frame_index(frame) for frame in chosen] == [23, 47]

    waveform = decode_audio(path, processor.audio_sampling_rate)
    served = processor(speakers=["Joey"], texts=["hi"], audio=[waveform], sampling_rate=processor.audio_sampling_rate)
    trained = MediaCollator("audio", processor)([row])
    torch.testing.assert_close(trained["input_values"], served["input_values"], rtol=0, atol=0)
    assert trained["attention_mask"].tolist() == served["audio_attention_mask"].tolist()
    assert trained["input_values"].shape[1] == processor.audio_sampling_rate  # the last second kept
