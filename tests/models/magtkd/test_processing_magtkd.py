"""MAGTKDProcessor's presets: the authors' settings per dataset (MELD's global speaker table, markers as plain text,
the first 400,000 samples) and ours, saved with the processor."""

import torch
from transformers import AutoProcessor

import hf_erc.models  # noqa: F401  (registers the Auto classes)
from hf_erc.commands.show_inputs import placeholder_tokenizer
from hf_erc.models import MAGTKDConfig, MAGTKDProcessor

SPEAKERS = ["Joey", "Ross", "Joey", "Someone new"]
TEXTS = ["hi there", "hello", "how are you", "pizza"]


def test_reference_presets_are_the_authors_settings():
    config = MAGTKDConfig.for_dataset("meld")
    meld = MAGTKDProcessor.preset("meld", "reference", config)
    # speaker2id.json: the same table as the fusion's speaker embeddings.
    assert meld["speaker_numbering"] == "vocabulary" and meld["speaker_vocab"] == config.speaker_vocab
    assert len(meld["speaker_vocab"]) == 304
    assert (meld["num_speaker_tokens"], meld["prompt_template"]) == (0, "{sep} Now{speaker} feels")
    assert (meld["audio_window"], meld["max_clip_seconds"], meld["audio_sampling_rate"]) == ("first", None, 22050)
    iemocap = MAGTKDProcessor.preset("iemocap", "reference", MAGTKDConfig.for_dataset("iemocap"))
    assert (iemocap["speaker_numbering"], iemocap["video_margin_seconds"]) == ("carried", 1.0)
    assert "speaker_vocab" not in iemocap
    default = MAGTKDProcessor.preset("meld", "default", config)
    assert default["num_speaker_tokens"] == config.num_speaker_tokens and "speaker_numbering" not in default


def test_a_reference_processor_keeps_the_speaker_table_when_saved(tmp_path):
    config = MAGTKDConfig.for_dataset("meld")
    tokenizer = placeholder_tokenizer()
    size = len(tokenizer)
    processor = MAGTKDProcessor.from_preset("meld", "reference", tokenizer, config, max_length=64)
    assert processor.marker_tokens == [] and len(processor.tokenizer) == size  # markers stay plain text
    joey, ross = config.speaker_vocab["Joey"] + 1, config.speaker_vocab["Ross"] + 1
    assert processor.build_prompts(SPEAKERS, TEXTS)[1] == f"<s{joey}> hi there <s{ross}> hello </s> Now<s{ross}> feels"
    processor.save_pretrained(tmp_path)
    served = AutoProcessor.from_pretrained(tmp_path)
    assert type(served) is MAGTKDProcessor and served.speaker_vocab == processor.speaker_vocab
    assert served.build_prompts(SPEAKERS, TEXTS) == processor.build_prompts(SPEAKERS, TEXTS)
    expected, batch = processor(speakers=SPEAKERS, texts=TEXTS), served(speakers=SPEAKERS, texts=TEXTS)
    for name in ("input_ids", "attention_mask", "prompt_positions", "modality_mask"):
        assert torch.equal(batch[name], expected[name]), name
