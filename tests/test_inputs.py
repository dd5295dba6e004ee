"""What TelME and MAGTKD see: reference and default preprocessing, checked on the real MELD transcripts, and
`hf-erc show-inputs`.

Reference strings below are derived by hand from the authors' rules (yuntaeyang/TelME and JieLi-dd/MAGTKD,
`preprocessing.py` and `utils.py`): each turn written `<sK> text`, then ` </s> Now <sK> feels` (MAGTKD:
` </s> Now<sK> feels`); TelME numbers a dialogue's first utterance against the speaker list the previous dialogue
left, then empties the list; MAGTKD numbers MELD speakers by the global speaker2id table.
"""

import csv
import json

import numpy as np
import pytest
import torch

from hf_erc.cli import main as cli_main
from hf_erc.data import load_erc_dataset
from hf_erc.data.collators import MediaCollator
from hf_erc.data.media import decode_audio
from hf_erc.data.views import with_prompt_context
from hf_erc.commands.show_inputs import placeholder_tokenizer, preset_processor
from hf_erc.models import MAGTKDProcessor
from hf_erc.models.magtkd.configuration_magtkd import MELD_SPEAKERS
from hf_erc.models.magtkd.processing_magtkd import reference_audio_feature_extractor, reference_image_processor
from tests.utils.media_fixtures import write_wav

SPLIT_FILES = {"train": "train_sent_emo.csv", "validation": "dev_sent_emo.csv", "test": "test_sent_emo.csv"}


@pytest.fixture(scope="module")
def meld(meld_csv_dir):
    return load_erc_dataset("meld", meld_csv_dir)


def prompts(processor, dataset):
    view = with_prompt_context(dataset, processor, None)
    return {(row["dialogue_id"], row["turn"]): processor.render_row(row) for row in view}


def test_telme_reference_prompts_on_real_meld(meld):
    found = prompts(preset_processor("telme", "meld", "reference"), meld["train"].select(range(40)))
    # dia0 is the file's first dialogue: Chandler <s1>, The Interviewer <s2>.
    assert found[("dia0", 1)] == (
        "<s1> also I was the point person on my company’s transition from the KL-5 to GR-6 system. "
        "<s2> You must’ve had your hands full. </s> Now <s2> feels"
    )
    # dia1's first utterance is numbered against dia0's list [Chandler, The Interviewer]: Joey is appended, <s3>;
    # the list is then emptied, so Rachel is <s1> and Joey, seen again, <s2>.
    assert found[("dia1", 0)] == "<s3> But then who? The waitress I went out with last month? </s> Now <s3> feels"
    assert found[("dia1", 2)] == (
        "<s3> But then who? The waitress I went out with last month? <s1> You know? Forget it! "
        "<s2> No-no-no-no, no! Who, who were you talking about? </s> Now <s2> feels"
    )
    # dia1 left [Rachel, Joey] (its first utterance is not in it): Chandler opens dia2 as <s3>, then <s2>.
    assert found[("dia2", 0)] == "<s3> Hey, Mon. </s> Now <s3> feels"
    assert found[("dia2", 2)] == (
        "<s3> Hey, Mon. <s1> Hey-hey-hey. You wanna hear something that sucks. <s2> Do I ever. </s> Now <s2> feels"
    )


def test_default_prompts_number_speakers_within_the_dialogue(meld):
    found = prompts(preset_processor("telme", "meld", "default"), meld["train"].select(range(40)))
    assert found[("dia1", 0)] == "<s1> But then who? The waitress I went out with last month? </s> Now <s1> feels"
    assert found[("dia2", 2)] == (
        "<s1> Hey, Mon. <s2> Hey-hey-hey. You wanna hear something that sucks. <s1> Do I ever. </s> Now <s1> feels"
    )


def test_magtkd_reference_prompts_on_real_meld(meld):
    dataset = meld["train"]
    dia9 = [index for index, dialogue in enumerate(dataset["dialogue_id"]) if dialogue == "dia9"]
    found = prompts(preset_processor("magtkd", "meld", "reference"), dataset.select(dia9))
    # speaker2id: Chandler 0 -> <s1>, Jade 9 -> <s10>; no space between "Now" and the marker.
    assert MELD_SPEAKERS.index("Jade") == 9
    assert found[("dia9", 1)] == (
        "<s1> What've you been up to? <s10> Oh, you know, the usual, teaching aerobics, partying way too much. "
        "</s> Now<s10> feels"
    )


def authors_markers(csv_path, numbering):
    """The marker number of every utterance of a MELD CSV as the authors' loop computes it (own transcription of
    the rules): TelME's list numbering carried across a dialogue boundary, or MAGTKD's global table."""
    numbers, table, previous = {}, [], None
    with open(csv_path, encoding="utf-8") as file:
        for row in csv.DictReader(file):
            key = (f"dia{row['Dialogue_ID']}", row["Utterance_ID"])
            speaker = row["Speaker"]
            if numbering == "global":
                numbers[key] = MELD_SPEAKERS.index(speaker) + 1
                continue
            if speaker not in table:
                table.append(speaker)
            numbers[key] = table.index(speaker) + 1
            if previous is not None and row["Dialogue_ID"] != previous:
                table = []
            previous = row["Dialogue_ID"]
    return numbers


@pytest.mark.parametrize("model_type", ["telme", "magtkd"])
def test_reference_markers_follow_the_authors_loop_on_every_meld_utterance(meld, meld_csv_dir, model_type):
    processor = preset_processor(model_type, "meld", "reference")
    ending = " feels"
    for split, file_name in SPLIT_FILES.items():
        expected = authors_markers(meld_csv_dir / file_name, "global" if model_type == "magtkd" else "list")
        dataset = meld[split]
        found = prompts(processor, dataset)
        assert len(found) == len(expected) == len(dataset)
        for (dialogue, turn), utterance_id in zip(zip(dataset["dialogue_id"], dataset["turn"]), dataset["utterance_id"]):
            prompt = found[(dialogue, turn)]
            marker = prompt[prompt.rindex("<s") + 2 : -len(ending) - 1]
            assert int(marker) == expected[(dialogue, str(utterance_id))], (split, dialogue, turn, prompt)


@pytest.mark.parametrize("model_type", ["telme", "magtkd"])
def test_reference_frame_indices(model_type):
    processor = preset_processor(model_type, "meld", "reference")
    assert processor.frame_indices(5) == [0, 1, 2, 3, 4, 4, 4, 4]
    assert processor.frame_indices(8) == list(range(8))
    assert processor.frame_indices(48) == [5, 11, 17, 23, 29, 35, 41, 47]
    assert processor.frame_indices(49) == [5, 11, 17, 23, 29, 35, 41, 47]  # step 49 // 8 = 6, the first 8 kept
    assert processor.video_channel_order == "bgr"
    assert list(processor.image_processor.image_mean) == [0.485, 0.456, 0.406]  # VideoMAE-base's (ImageNet)


def test_reference_audio_windows_at_22050_hz(tmp_path):
    path = str(tmp_path / "long.wav")
    write_wav(path, seconds=20.0, sampling_rate=44100)
    waveform = decode_audio(path, 22050)
    assert len(waveform) == 441_000
    row = {"media_path": path, "media_start": None, "media_end": None, "row": 0, "emotion": 0}
    normalised = (waveform - waveform.mean()) / np.sqrt(waveform.var() + 1e-7)
    for model_type, window in (("telme", (41_000, 441_000)), ("magtkd", (0, 400_000))):
        processor = preset_processor(model_type, "meld", "reference")
        assert processor.audio_sampling_rate == 22050 and processor.audio_span(len(waveform)) == window
        batch = MediaCollator("audio", processor)([row])
        assert batch["input_values"].shape == (1, 400_000)
        np.testing.assert_allclose(batch["input_values"][0].numpy(), normalised[window[0] : window[1]], atol=1e-4)
    # Default: data2vec's own 16 kHz, the last 25 s; 20 s are read whole.
    default = preset_processor("telme", "meld", "default")
    assert default.audio_sampling_rate == 16000 and default.max_audio_samples == 400_000
    assert default.audio_span(20 * 16000) == (0, 320_000)
    # TelME's MELD rule: a clip over 30 s has no usable audio; MAGTKD keeps it.
    assert preset_processor("telme", "meld", "reference").max_clip_seconds == 30.0
    assert preset_processor("magtkd", "meld", "reference").max_clip_seconds is None


def byte_level_tokenizer():
    """A tiny byte-level BPE tokenizer with RoBERTa's special tokens, trained here."""
    from tokenizers import ByteLevelBPETokenizer
    from transformers import PreTrainedTokenizerFast

    trainer = ByteLevelBPETokenizer()
    corpus = ["Now he feels fine. Hi there, how are you? I am fine." * 3, "hello world, now feels"] * 20
    trainer.train_from_iterator(corpus, vocab_size=300, min_frequency=1, special_tokens=["<s>", "<pad>", "</s>", "<unk>", "<mask>"])
    return PreTrainedTokenizerFast(
        tokenizer_object=trainer._tokenizer, bos_token="<s>", eos_token="</s>", sep_token="</s>", pad_token="<pad>",
        unk_token="<unk>", mask_token="<mask>",
    )  # fmt: skip


def test_reference_tokenization_drops_the_spaces_around_marker_tokens():
    def processor(**fields):
        extractor, images = reference_audio_feature_extractor(16000), reference_image_processor(32)
        return MAGTKDProcessor(byte_level_tokenizer(), extractor, images, **fields)

    prompt = "<s1> Hi there <s2> how are you <s10> fine </s> Now <s2> feels"
    reference = processor(strip_spaces_around_markers=True)
    tokens = reference.tokenizer.convert_ids_to_tokens(reference.tokenize_prompt(prompt))
    marker = tokens.index("<s2>")
    # As the authors' slow tokenizer: no lone "Ġ" before a marker, and the next word without its "Ġ".
    assert tokens[marker - 1] != "Ġ" and tokens[marker + 1].startswith("h") and "Ġ" not in tokens[: marker + 1][-2:]
    assert tokens[0] == "<s1>" and tokens[1].startswith("H")
    # <s10> was never a token: it is split into pieces, keeping its space, as there.
    pieces = tokens[tokens.index("Ġyou") + 1 : tokens.index("Ġfine")]
    assert "<s10>" not in tokens and len(pieces) > 1 and "".join(pieces) == "Ġ<s10>"
    # The fast tokenizer on its own keeps a stray "Ġ" before each marker: the default mode's behaviour.
    default = processor()
    default_tokens = default.tokenizer.convert_ids_to_tokens(default.tokenize_prompt(prompt))
    assert default_tokens[default_tokens.index("<s2>") - 1] == "Ġ"


def test_markers_as_plain_text_need_a_tokenizer_without_marker_tokens():
    tokenizer = placeholder_tokenizer()
    tokenizer.add_special_tokens({"extra_special_tokens": ["<s1>"]})
    with pytest.raises(ValueError, match="writes speaker markers as plain text"):
        MAGTKDProcessor(
            tokenizer, reference_audio_feature_extractor(16000), reference_image_processor(32), num_speaker_tokens=0
        )


@pytest.mark.parametrize("model_type", ["telme", "magtkd"])
def test_show_inputs_on_the_meld_csvs(meld_csv_dir, tmp_path, model_type):
    output = tmp_path / "inputs.jsonl"
    arguments = ["show-inputs", "--model-type", model_type, "--dataset", "meld", "--data-dir", str(meld_csv_dir)]
    arguments += ["--split", "validation", "--preprocessing", "reference", "--output", str(output)]
    assert cli_main(arguments) == 0
    lines = [json.loads(line) for line in output.read_text(encoding="utf-8").splitlines()]
    assert len(lines) == 1109
    first = lines[0]
    assert {"dialogue_id", "turn", "speaker", "text", "prompt", "preprocessing"} <= set(first)
    assert first["prompt"].endswith("feels") and first["preprocessing"] == "reference"
    assert "audio_samples" not in first  # the CSVs alone: no media


def test_show_inputs_reports_audio_windows_and_frames(tmp_path):
    from datasets import DatasetDict

    from hf_erc.data.export import save_parquet_repo
    from tests.utils.stage_data import media_split

    media = tmp_path / "media"
    media.mkdir()
    splits = {split: media_split(media, 1, seed, split) for seed, split in enumerate(("train", "validation", "test"))}
    save_parquet_repo(DatasetDict(splits), tmp_path / "data", "# tiny\n")
    output = tmp_path / "inputs.jsonl"
    arguments = ["show-inputs", "--model-type", "telme", "--dataset", "meld", "--data-dir", str(tmp_path / "data")]
    assert cli_main(arguments + ["--split", "test", "--preprocessing", "reference", "--output", str(output)]) == 0
    lines = [json.loads(line) for line in output.read_text(encoding="utf-8").splitlines()]
    with_media = [line for line in lines if "frame_indices" in line]
    assert with_media, lines
    line = with_media[0]
    # 0.6 s clips at 10 frames/s: 6 frames, fewer than 8, the last repeated; 0.6 s at 22,050 Hz read whole.
    assert line["frame_indices"] == [0, 1, 2, 3, 4, 5, 5, 5]
    assert line["audio_sampling_rate"] == 22050
    assert line["audio_samples"][0] == 0 and abs(line["audio_samples"][1] - 0.6 * 22050) < 0.05 * 22050


def test_a_checkpoints_processor_is_read_back_with_its_preprocessing(tmp_path):
    processor = preset_processor("magtkd", "meld", "reference")
    processor.save_pretrained(tmp_path)
    saved = json.loads((tmp_path / "processor_config.json").read_text(encoding="utf-8"))
    assert saved["preprocessing"] == "reference" and saved["prompt_template"] == "{sep} Now{speaker} feels"
    assert saved["speaker_numbering"] == "vocabulary" and len(saved["speaker_vocab"]) == 304
    reloaded = MAGTKDProcessor.from_pretrained(tmp_path)
    assert reloaded.render_prompt([], [], "Jade", "Hi.") == "<s10> Hi. </s> Now<s10> feels"
    assert torch.equal(
        reloaded(speakers=["Jade"], texts=["Hi."])["input_ids"], processor(speakers=["Jade"], texts=["Hi."])["input_ids"]
    )


def test_telme_reference_gives_a_long_meld_clip_zeros_as_the_authors(tmp_path):
    """TelME's MELD code replaces a clip over 30 s by 1,412 zero samples and all-zero frames, which the students
    read as present; MAGTKD's keeps the clip; our default leaves it out (masked)."""
    from tests.utils.media_fixtures import write_mp4

    path = write_mp4(tmp_path / "long.mp4", seconds=31.0, fps=2, size=(32, 32))
    row = {"media_path": path, "media_start": None, "media_end": None, "row": 0, "emotion": 0}
    reference = preset_processor("telme", "meld", "reference")
    audio = MediaCollator("audio", reference)([row])
    assert audio["input_values"].shape == (1, 1412) and not audio["input_values"].any()
    video = MediaCollator("video", reference)([row])
    assert video["pixel_values"].shape == (1, 8, 3, 224, 224) and not video["pixel_values"].any()
    waveform = decode_audio(path, reference.audio_sampling_rate)
    frames = MediaCollator("video", reference).decode(row)
    served = reference(speakers=["Joey"], texts=["Hi."], audio=[waveform], videos=[frames], sampling_rate=22050)
    assert served["modality_mask"].tolist() == [[True, True, True]]
    assert not served["input_values"].any() and not served["pixel_values"].any()
    # MAGTKD's reference reads the clip (its first 400,000 samples); the default leaves it out.
    magtkd = MediaCollator("audio", preset_processor("magtkd", "meld", "reference"))([row])
    assert magtkd["input_values"].shape == (1, 400_000) and magtkd["input_values"].any()
    default = preset_processor("telme", "meld", "default")
    masked = default(speakers=["Joey"], texts=["Hi."], audio=[decode_audio(path, 16000)], sampling_rate=16000)
    assert masked["modality_mask"].tolist() == [[True, False, False]]
