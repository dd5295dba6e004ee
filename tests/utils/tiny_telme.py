"""A tiny TelME for tests: its sizes, its config and random text/audio inputs that fit it.

Shared by the TelME modeling, conversion and processing tests.
"""

from __future__ import annotations

import torch
from transformers import PreTrainedTokenizerFast, Wav2Vec2FeatureExtractor
from transformers.models.videomae.image_processing_pil_videomae import VideoMAEImageProcessorPil

from hf_erc.models import TelMEConfig, TelMEProcessor

from .tiny_encoders import tiny_audio_config, tiny_text_config, tiny_video_config

__all__ = [
    "FRAME_SIZE",
    "HIDDEN",
    "NUM_FRAMES",
    "TEXT_VOCAB",
    "WORDS",
    "audio_inputs",
    "text_inputs",
    "tiny_config",
    "tiny_processor",
    "tiny_tokenizer",
]

TEXT_VOCAB = 40
NUM_FRAMES = 2
FRAME_SIZE = 32
HIDDEN = 32
WORDS = "Now feels hi there hello how are you pizza again no yes smelly cat".split()


def tiny_config(dataset="meld", **overrides):
    """A few-thousand-parameter TelME: RoBERTa, data2vec-audio and TimeSformer of 2 layers and width 32."""
    settings = {
        "text_config": tiny_text_config(HIDDEN, vocab_size=TEXT_VOCAB),
        "audio_config": tiny_audio_config(HIDDEN),
        "video_config": tiny_video_config(HIDDEN, image_size=FRAME_SIZE, num_frames=NUM_FRAMES),
        "projection_size": HIDDEN,
        "fusion_hidden_size": HIDDEN,
        "fusion_num_heads": 2,
        "text_max_length": 24,
    }
    settings.update(overrides)
    return TelMEConfig.for_dataset(dataset, **settings)


def text_inputs(lengths, seed=0, width=None):
    """Left-padded token ids (ids 3.. are words, 1 is the pad id) ending in a fixed "mask" id 2."""
    generator = torch.Generator().manual_seed(seed)
    width = width or max(lengths)
    input_ids = torch.full((len(lengths), width), 1, dtype=torch.long)
    attention_mask = torch.zeros(len(lengths), width, dtype=torch.long)
    for row, length in enumerate(lengths):
        input_ids[row, width - length :] = torch.randint(3, TEXT_VOCAB, (length,), generator=generator)
        input_ids[row, -1] = 2
        attention_mask[row, width - length :] = 1
    return {"input_ids": input_ids, "attention_mask": attention_mask}


def audio_inputs(lengths, seed=0):
    """Right-padded waveforms and their attention mask (0-length = no audio)."""
    generator = torch.Generator().manual_seed(seed)
    width = max(max(lengths), 1)
    input_values = torch.zeros(len(lengths), width)
    attention_mask = torch.zeros(len(lengths), width, dtype=torch.long)
    for row, length in enumerate(lengths):
        input_values[row, :length] = torch.randn(length, generator=generator)
        attention_mask[row, :length] = 1
    return {"input_values": input_values, "audio_attention_mask": attention_mask}


def tiny_tokenizer():
    """A word-level stand-in for the RoBERTa tokenizer, without the speaker tokens (the processor adds them)."""
    from tokenizers import Tokenizer, models, pre_tokenizers

    vocab = {word: index for index, word in enumerate(["<s>", "<pad>", "</s>", "<unk>", "<mask>", *WORDS])}
    backend = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    return PreTrainedTokenizerFast(
        tokenizer_object=backend,
        bos_token="<s>",
        eos_token="</s>",
        sep_token="</s>",
        pad_token="<pad>",
        unk_token="<unk>",
        mask_token="<mask>",
    )


def tiny_processor(**kwargs):
    feature_extractor = Wav2Vec2FeatureExtractor(sampling_rate=16000, do_normalize=True, return_attention_mask=True)
    # VideoMAE's settings (the reference's image processor), at the tiny model's frame size.
    image_processor = VideoMAEImageProcessorPil(
        size={"shortest_edge": FRAME_SIZE},
        crop_size={"height": FRAME_SIZE, "width": FRAME_SIZE},
        image_mean=[0.485, 0.456, 0.406],
        image_std=[0.229, 0.224, 0.225],
    )
    settings = {"max_length": 24, "num_frames": NUM_FRAMES}
    settings.update(kwargs)
    return TelMEProcessor(tiny_tokenizer(), feature_extractor, image_processor, **settings)
