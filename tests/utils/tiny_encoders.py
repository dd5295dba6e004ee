"""Tiny random encoder configurations (RoBERTa, data2vec-audio, TimeSformer) shared by the model and stage tests,
and tiny text, audio and video encoder folders for feature extraction and feature-level checkpoints."""

__all__ = [
    "tiny_audio_config",
    "tiny_text_config",
    "tiny_video_config",
    "write_tiny_audio_encoder",
    "write_tiny_text_encoder",
    "write_tiny_video_encoder",
]


def tiny_text_config(hidden_size=32, num_hidden_layers=2, vocab_size=40, max_position_embeddings=40):
    """A RoBERTa config of a few thousand parameters (pad id 1, one token type)."""
    return {
        "vocab_size": vocab_size,
        "hidden_size": hidden_size,
        "num_hidden_layers": num_hidden_layers,
        "num_attention_heads": 2,
        "intermediate_size": 37,
        "max_position_embeddings": max_position_embeddings,
        "type_vocab_size": 1,
        "pad_token_id": 1,
    }


def tiny_audio_config(hidden_size=32, num_hidden_layers=2):
    """A data2vec-audio config with a two-layer convolutional front end and no masking or layer drop."""
    return {
        "hidden_size": hidden_size,
        "num_hidden_layers": num_hidden_layers,
        "num_attention_heads": 2,
        "intermediate_size": 37,
        "conv_dim": [16, 16],
        "conv_kernel": [10, 3],
        "conv_stride": [5, 2],
        "num_feat_extract_layers": 2,
        "conv_pos_kernel_size": 3,
        "num_conv_pos_embeddings": 3,
        "num_conv_pos_embedding_groups": 2,
        "mask_time_prob": 0.0,
        "layerdrop": 0.0,
    }


def tiny_video_config(hidden_size=32, num_hidden_layers=2, image_size=32, num_frames=2):
    """A TimeSformer config over `num_frames` frames of `image_size` pixels in 16-pixel patches."""
    return {
        "image_size": image_size,
        "patch_size": 16,
        "num_frames": num_frames,
        "hidden_size": hidden_size,
        "num_hidden_layers": num_hidden_layers,
        "num_attention_heads": 2,
        "intermediate_size": 37,
    }


def write_tiny_text_encoder(path):
    """A tiny random RoBERTa with MiniLM's tokenizer (every word its own id), saved to ``path`` for
    :class:`hf_erc.features.TextEncoder`; returns ``path``."""
    import torch
    from transformers import AutoTokenizer, RobertaConfig, RobertaModel

    from hf_erc.features.encoders import resolve_encoder_path

    tokenizer = AutoTokenizer.from_pretrained(resolve_encoder_path("minilm"))
    config = tiny_text_config(vocab_size=len(tokenizer), max_position_embeddings=130)  # MiniLM truncates at 128
    config["pad_token_id"] = tokenizer.pad_token_id
    torch.manual_seed(0)
    RobertaModel(RobertaConfig(**config)).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def write_tiny_audio_encoder(path):
    """A tiny random data2vec-audio with its feature extractor, saved to ``path`` for
    :class:`hf_erc.features.AudioEncoder`; returns ``path``."""
    import torch
    from transformers import Data2VecAudioConfig, Data2VecAudioModel, Wav2Vec2FeatureExtractor

    torch.manual_seed(0)
    Data2VecAudioModel(Data2VecAudioConfig(**tiny_audio_config())).save_pretrained(path)
    Wav2Vec2FeatureExtractor(sampling_rate=16000, do_normalize=True, return_attention_mask=True).save_pretrained(path)
    return path


def write_tiny_video_encoder(path):
    """A tiny random TimeSformer (2 frames of 32x32) with VideoMAE's image processor, saved to ``path`` for
    :class:`hf_erc.features.VideoEncoder`; returns ``path``."""
    import torch
    from transformers import TimesformerConfig, TimesformerModel
    from transformers.models.videomae.image_processing_pil_videomae import VideoMAEImageProcessorPil

    config = tiny_video_config()
    torch.manual_seed(0)
    TimesformerModel(TimesformerConfig(**config)).save_pretrained(path)
    size = config["image_size"]
    VideoMAEImageProcessorPil(size={"shortest_edge": size}, crop_size={"height": size, "width": size}).save_pretrained(
        path
    )
    return path
