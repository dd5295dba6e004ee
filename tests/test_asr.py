"""Speech recognition cues (`hf_erc.inference.asr`, `hf-erc predict --asr`) with a tiny Whisper built offline.

The tiny Whisper is a real `WhisperForConditionalGeneration` run by transformers' real ASR pipeline (feature
extractor, `generate` with its timestamp rules, timestamp decoding), saved and loaded like a checkpoint. Random weights
would transcribe arbitrary tokens, so its decoder is set by hand to speak a fixed script: the residual branches of the
decoder layers and the token embeddings are zero, so the last hidden state is the layer norm of the position
embedding, one one-hot vector per decoding step, and the (untied) output projection maps each step's vector to that
step's token. Everything else (encoder, attention) keeps its random weights.
"""

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from hf_erc.inference.asr import cues_from_chunks, load_recognizer, transcribe_cues
from hf_erc.cli import main as cli_main
from hf_erc.inference.conversations import conversation_from_asr
from hf_erc.labels import MELD_EMOTIONS
from tests.utils.media_fixtures import write_mp4

SPECIALS = [
    "<|endoftext|>", "<|startoftranscript|>", "<|en|>", "<|translate|>", "<|transcribe|>", "<|startoflm|>",
    "<|startofprev|>", "<|nospeech|>", "<|notimestamps|>",
]  # fmt: skip
WORDS = ["hello", "world"]
TIME_PRECISION = 0.02  # the feature extractor's 30 s window over the encoder's 1500 positions


def _tokenizer():
    """A byte-level BPE Whisper tokenizer: 256 byte symbols, merges making " hello" and " world" one token each,
    Whisper's special tokens, then the 1501 timestamp tokens right after <|notimestamps|> (not special, as Whisper's
    timestamp decoding requires)."""
    from tokenizers import AddedToken, pre_tokenizers
    from transformers import WhisperTokenizer

    vocab = {symbol: index for index, symbol in enumerate(sorted(pre_tokenizers.ByteLevel.alphabet()))}
    merges = []
    for word in WORDS:
        piece = "\u0120"  # the byte-level symbol of a space
        for letter in word:
            merges.append((piece, letter))
            piece += letter
            vocab.setdefault(piece, len(vocab))
    tokenizer = WhisperTokenizer(vocab=vocab, merges=merges)
    tokenizer.add_special_tokens(
        {"additional_special_tokens": [AddedToken(token, special=True, normalized=False) for token in SPECIALS[1:]]}
    )
    tokenizer.add_tokens([AddedToken(f"<|{i * TIME_PRECISION:.2f}|>", normalized=False) for i in range(1501)])
    return tokenizer


def build_tiny_whisper(path, script: list[str]):
    """Save a tiny Whisper (model, generation config, processor) to ``path`` whose transcription of any audio is
    ``script``: tokens such as "<|1.00|>", " hello" or "<|endoftext|>", after the prompt
    <|startoftranscript|><|en|><|transcribe|>."""
    from transformers import (
        GenerationConfig,
        WhisperConfig,
        WhisperFeatureExtractor,
        WhisperForConditionalGeneration,
        WhisperProcessor,
    )

    tokenizer = _tokenizer()
    ids = {token: tokenizer.convert_tokens_to_ids(token) for token in SPECIALS}
    features = WhisperFeatureExtractor()
    eot, start = ids["<|endoftext|>"], ids["<|startoftranscript|>"]
    config = WhisperConfig(
        vocab_size=len(tokenizer), d_model=16, encoder_layers=1, decoder_layers=1, encoder_attention_heads=2,
        decoder_attention_heads=2, encoder_ffn_dim=32, decoder_ffn_dim=32, num_mel_bins=features.feature_size,
        max_source_positions=1500, max_target_positions=32, pad_token_id=eot, bos_token_id=eot, eos_token_id=eot,
        decoder_start_token_id=start, begin_suppress_tokens=[eot], suppress_tokens=None, tie_word_embeddings=False,
    )  # fmt: skip
    torch.manual_seed(0)
    model = WhisperForConditionalGeneration(config).eval()
    # Step p reads position p and predicts the token at p + 1: <|en|> (language detection), <|transcribe|>, script.
    targets = [ids["<|en|>"], ids["<|transcribe|>"]] + [tokenizer.convert_tokens_to_ids(
        token.replace(" ", "\u0120")) for token in script]  # fmt: skip
    width = config.d_model
    assert len(targets) <= width, "one one-hot position vector per step"
    with torch.no_grad():
        decoder = model.model.decoder
        decoder.embed_tokens.weight.zero_()
        for layer in decoder.layers:
            for linear in (layer.self_attn.out_proj, layer.encoder_attn.out_proj, layer.fc2):
                linear.weight.zero_()
                if linear.bias is not None:
                    linear.bias.zero_()
        decoder.embed_positions.weight.zero_()
        decoder.embed_positions.weight[: len(targets)] = torch.eye(width)[: len(targets)]
        decoder.layer_norm.weight.fill_(1.0)
        decoder.layer_norm.bias.zero_()
        hidden = torch.nn.functional.layer_norm(torch.eye(width)[: len(targets)], (width,))
        model.proj_out.weight.zero_()
        for step, token in enumerate(targets):
            model.proj_out.weight[token] += 50.0 * hidden[step] / width  # logit 50 for this step's token, <= 0 else
    model.generation_config = GenerationConfig(
        decoder_start_token_id=start, bos_token_id=eot, eos_token_id=eot, pad_token_id=eot, max_length=32,
        no_timestamps_token_id=ids["<|notimestamps|>"], prev_sot_token_id=ids["<|startofprev|>"],
        is_multilingual=True, lang_to_id={"<|en|>": ids["<|en|>"]}, task="transcribe",
        task_to_id={"translate": ids["<|translate|>"], "transcribe": ids["<|transcribe|>"]},
        max_initial_timestamp_index=50, begin_suppress_tokens=[eot],
    )  # fmt: skip
    model.save_pretrained(path)
    model.generation_config.save_pretrained(path)
    WhisperProcessor(feature_extractor=features, tokenizer=tokenizer).save_pretrained(path)
    return path


HELLO_WORLD = ["<|0.00|>", " hello", "<|1.00|>", "<|1.20|>", " world", "<|2.40|>", "<|endoftext|>"]


@pytest.fixture(scope="module")
def tiny_whisper(tmp_path_factory):
    return build_tiny_whisper(tmp_path_factory.mktemp("whisper"), HELLO_WORLD)




@pytest.fixture(scope="module")
def talk(tmp_path_factory):
    return write_mp4(tmp_path_factory.mktemp("talk") / "talk.mp4", seconds=3.0)


def _cue_tuples(cues):
    return [(cue.index, cue.start, cue.end, cue.speaker, cue.text) for cue in cues]


def test_transcribe_cues_turns_timestamped_speech_into_cues(tiny_whisper, talk):
    cues = transcribe_cues(talk, str(tiny_whisper), device="cpu")
    assert _cue_tuples(cues) == [(1, 0.0, 1.0, "unknown", "hello"), (2, 1.2, 2.4, "unknown", "world")]
    # A built pipeline serves as well, and without chunking (the model's own decoding) gives the same cues.
    recognizer = load_recognizer(str(tiny_whisper), device="cpu")
    assert load_recognizer(recognizer) is recognizer
    assert transcribe_cues(talk, recognizer, chunk_length_s=None) == cues


def test_an_unfinished_last_segment_ends_with_the_audio(talk):
    """A last chunk without an end time (the pipeline's output when decoding stops inside a segment) ends where
    the decoded audio ends. A scripted Whisper cannot produce one: Whisper's decoding re-reads the audio from the
    last complete segment, so this recogniser is a stand-in for the pipeline."""

    def recognizer(inputs, **options):
        assert inputs["sampling_rate"] == 16000 and options["return_timestamps"] is True
        return {"text": " hello world", "chunks": [{"text": " hello", "timestamp": (0.0, 1.0)},
                                                   {"text": " world", "timestamp": (1.2, None)}]}  # fmt: skip

    cues = transcribe_cues(talk, recognizer)
    assert _cue_tuples(cues)[0] == (1, 0.0, 1.0, "unknown", "hello")
    assert (cues[1].start, cues[1].text) == (1.2, "world")
    assert cues[1].end == pytest.approx(3.0, abs=0.05)  # the decoded audio's length


def test_conversation_from_asr_builds_utterances_like_subtitle_cues(tiny_whisper, talk):
    utterances = conversation_from_asr(talk, str(tiny_whisper), device="cpu")
    path = str(talk)
    assert [(u.speaker, u.text, u.audio, u.video, u.start, u.end, u.missing) for u in utterances] == [
        ("unknown", "hello", path, path, 0.0, 1.0, {}),
        ("unknown", "world", path, path, 1.2, 2.4, {}),
    ]


def test_predict_with_asr_labels_the_recognised_cues(text_only_checkpoint, tiny_whisper, talk, capsys):
    arguments = ["predict", "--model", str(text_only_checkpoint), "--video", str(talk)]
    assert cli_main(arguments + ["--asr", str(tiny_whisper), "--json", "--device", "cpu"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [(row["speaker"], row["text"], row["start"], row["end"]) for row in rows] == [
        ("unknown", "hello", 0.0, 1.0),
        ("unknown", "world", 1.2, 2.4),
    ]
    for row in rows:
        assert set(row["probabilities"]) == set(MELD_EMOTIONS)
        assert row["emotion"] == max(row["probabilities"], key=row["probabilities"].get)


def test_a_folder_uses_asr_only_for_videos_without_subtitles(
    text_only_checkpoint, tiny_whisper, talk, tmp_path, capsys
):
    folder = tmp_path / "videos"
    folder.mkdir()
    for name in ("a", "b"):
        (folder / f"{name}.mp4").write_bytes(Path(talk).read_bytes())
    (folder / "a.srt").write_text("1\n00:00:00,500 --> 00:00:02,000\nJOEY: How you doin'?\n", encoding="utf-8")
    arguments = ["predict", "--model", str(text_only_checkpoint), "--video", str(folder), "--json", "--device", "cpu"]
    assert cli_main(arguments + ["--asr", str(tiny_whisper)]) == 0
    results = json.loads(capsys.readouterr().out)
    assert [(row["speaker"], row["text"]) for row in results["a.mp4"]] == [("JOEY", "How you doin'?")]
    assert [(row["speaker"], row["text"]) for row in results["b.mp4"]] == [("unknown", "hello"), ("unknown", "world")]


def test_a_video_without_audio_is_named(text_only_checkpoint, tiny_whisper, tmp_path, capsys):
    silent = write_mp4(tmp_path / "silent.mp4", seconds=2.0, with_audio=False)
    with pytest.raises(ValueError, match=r"silent\.mp4 has no audio"):
        transcribe_cues(silent, str(tiny_whisper), device="cpu")
    with pytest.raises(ValueError, match=r"silent\.mp4 has no audio"):
        conversation_from_asr(silent, str(tiny_whisper), device="cpu")
    arguments = ["predict", "--model", str(text_only_checkpoint), "--video", str(silent), "--asr", str(tiny_whisper)]
    assert cli_main(arguments + ["--device", "cpu"]) == 2
    assert "silent.mp4 has no audio" in capsys.readouterr().err


def test_an_asr_model_that_cannot_be_loaded_is_named(talk, tmp_path):
    empty = tmp_path / "not-a-whisper"
    empty.mkdir()
    with pytest.raises(ValueError, match="Cannot load the speech recognition model .*not-a-whisper"):
        transcribe_cues(talk, str(empty), device="cpu")


def test_asr_and_subtitles_do_not_go_together(text_only_checkpoint, talk, tmp_path, capsys):
    subtitles = tmp_path / "talk.srt"
    subtitles.write_text("1\n00:00:00,500 --> 00:00:02,000\nJOEY: hi\n", encoding="utf-8")
    arguments = ["predict", "--model", str(text_only_checkpoint), "--video", str(talk), "--subtitles", str(subtitles)]
    assert cli_main(arguments + ["--asr", "openai/whisper-tiny"]) == 2
    assert "--subtitles or --asr, not both" in capsys.readouterr().err


def test_chunks_become_sorted_non_overlapping_cues():
    chunks = [
        {"text": " world ", "timestamp": (1.5, 3.0)},
        {"text": "  ", "timestamp": (0.2, 0.4)},  # nothing said: dropped
        {"text": " hello", "timestamp": (0.0, 2.0)},  # overlaps the next one: ends where it starts
        {"text": " again", "timestamp": (1.5, 2.5)},  # starts with " world", ends first: " world" starts after it
        {"text": " more", "timestamp": (3.5, None)},  # unfinished: ends with the audio (then where the next starts)
        {"text": " late", "timestamp": (4.5, 6.0)},  # past the audio's end: clipped
    ]
    cues = cues_from_chunks(chunks, duration=5.0)
    assert [(cue.index, cue.start, cue.end, cue.text) for cue in cues] == [
        (1, 0.0, 1.5, "hello"),
        (2, 1.5, 2.5, "again"),
        (3, 2.5, 3.0, "world"),
        (4, 3.5, 4.5, "more"),
        (5, 4.5, 5.0, "late"),
    ]
    assert {cue.speaker for cue in cues} == {"unknown"}
    # Two segments with the same times leave the second no time of its own: it joins the first.
    same = cues_from_chunks([{"text": "one", "timestamp": (1.0, 2.0)}, {"text": "two", "timestamp": (1.0, 2.0)}])
    assert [(cue.start, cue.end, cue.text) for cue in same] == [(1.0, 2.0, "one two")]
    assert cues_from_chunks([]) == []


def test_no_speech_is_an_error_naming_the_video(talk):
    def silent_recognizer(inputs, **options):
        assert inputs["sampling_rate"] == 16000 and isinstance(inputs["raw"], np.ndarray)
        return {"text": "", "chunks": []}

    assert transcribe_cues(talk, silent_recognizer) == []
    with pytest.raises(ValueError, match=r"found no speech in .*talk\.mp4"):
        conversation_from_asr(talk, silent_recognizer)
