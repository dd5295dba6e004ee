"""``hf-erc show-inputs``: what an utterance-level model (TelME, MAGTKD) sees, one JSON line per utterance.

Each line holds the utterance (``dialogue_id``, ``turn``, ``utterance_id`` where the dataset has one, ``speaker``,
``text``), the ``prompt`` its text model reads (the whole string before tokenization; with a tokenizer also
``num_tokens`` and the ``input_ids`` it reads, truncated, ``<mask>`` appended), and, where the utterance has media,
the audio samples read (``audio_samples``: ``[first, end)`` at ``audio_sampling_rate``) and the frames chosen
(``frame_indices`` within the clip, or within ``video_segment`` for a turn cut from a dialogue recording, or, with
``frame_positions`` ``"recording"``, positions in the dialogue recording as the authors' IEMOCAP loop numbers them).
Everything comes from the model's processor: a checkpoint's own (``--model``) or the preset of the model's processor
for ``--preprocessing`` reference or default (``TelMEProcessor.from_preset``, ``MAGTKDProcessor.from_preset``).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from tokenizers import Tokenizer
from tokenizers.models import WordLevel
from tokenizers.pre_tokenizers import WhitespaceSplit
from transformers import AutoTokenizer, PreTrainedTokenizerFast

from ..data.media import MediaDecodeError, count_video_frames, decode_audio, video_frame_rate
from ..data.prepare import load_erc_dataset
from ..data.views import MEDIA_SOURCE_COLUMNS, media_rows, with_prompt_context
from ..features.encoders import resolve_encoder_path
from ..inference.checkpoints import PROCESSOR_FILE, load_checkpoint_processor
from ..models.registry import get_family

UTTERANCE_MODEL_TYPES = ("telme", "magtkd")


def placeholder_tokenizer():
    """A word-level tokenizer with RoBERTa's special tokens, for prompts without a real tokenizer: the prompt
    strings only need its separator (``</s>``); token counts need the model's own tokenizer (``--tokenizer``)."""
    vocabulary = {token: index for index, token in enumerate(["<s>", "<pad>", "</s>", "<unk>", "<mask>"])}
    backend = Tokenizer(WordLevel(vocabulary, unk_token="<unk>"))
    backend.pre_tokenizer = WhitespaceSplit()
    return PreTrainedTokenizerFast(
        tokenizer_object=backend, bos_token="<s>", eos_token="</s>", sep_token="</s>", pad_token="<pad>",
        unk_token="<unk>", mask_token="<mask>",
    )  # fmt: skip


def preset_processor(model_type: str, dataset: str, preprocessing: str, tokenizer: str | None = None):
    """The processor a ``model_type`` training stage builds on ``dataset`` with ``preprocessing``: the preset of the
    family's processor (``from_preset``) for the paper's configuration of ``dataset``. ``tokenizer`` names the text
    model's tokenizer (a folder, a Hub id or an encoder name such as ``minilm``); without it a placeholder writes the
    same prompt strings."""
    if model_type not in UTTERANCE_MODEL_TYPES:
        raise ValueError(f"--model-type {model_type}: show-inputs covers {list(UTTERANCE_MODEL_TYPES)}.")
    family = get_family(model_type)
    config = family.config_class.for_dataset(dataset)
    if tokenizer is None:
        text_tokenizer = placeholder_tokenizer()
    else:
        text_tokenizer = AutoTokenizer.from_pretrained(resolve_encoder_path(tokenizer), trust_remote_code=False)
    max_length = config.text_max_length - config.text_num_virtual_tokens
    return family.processor_class.from_preset(dataset, preprocessing, text_tokenizer, config, max_length)


def checkpoint_processor(model: str):
    """The processor saved with a checkpoint (its own preprocessing), loaded with hf_erc's classes and without running
    any code the checkpoint ships (:func:`hf_erc.inference.checkpoints.load_checkpoint_processor`)."""
    if Path(model).is_dir() and not Path(model, PROCESSOR_FILE).is_file():
        raise FileNotFoundError(
            f"{model} has no {PROCESSOR_FILE}: show-inputs reads the processor a TelME or MAGTKD stage saved."
        )
    return load_checkpoint_processor(model)


def media_inputs(processor, dataset) -> dict[int, dict]:
    """Per row with media: the audio samples read and the frames chosen by ``processor``."""
    found: dict[int, dict] = {}
    for index, path, start, end in media_rows(dataset, "audio"):
        entry = found.setdefault(index, {})
        try:
            samples = len(decode_audio(path, processor.audio_sampling_rate, start, end))
        except MediaDecodeError as error:
            entry["audio_error"] = error.reason
            continue
        too_long = processor.max_clip_seconds is not None and samples / processor.audio_sampling_rate > processor.max_clip_seconds
        entry["audio_sampling_rate"] = processor.audio_sampling_rate
        entry["audio_samples"] = None if too_long else list(processor.audio_span(samples))
        if too_long:
            entry["audio_skipped"] = f"longer than {processor.max_clip_seconds:g} s: " + (
                "zero audio and all-zero frames stand in (read as present, as the authors' code feeds them)"
                if processor.long_clip_inputs == "zeros"
                else "no audio or video is read"
            )
    recording_lengths: dict[str, int] = {}  # frames per dialogue recording, counted once
    for index, path, start, end in media_rows(dataset, "video"):
        entry = found.setdefault(index, {})
        if entry.get("audio_skipped"):
            continue
        if processor.reads_recording_frames(start, end):
            try:
                indices = processor.recording_frame_indices(start, end, video_frame_rate(path))
                if path not in recording_lengths:
                    recording_lengths[path] = count_video_frames(path)
            except MediaDecodeError as error:
                entry["video_error"] = error.reason
                continue
            kept = [position for position in indices if position < recording_lengths[path]]
            if not kept:
                entry["video_error"] = "no frame in its window (the recording ends before)"
                continue
            # Positions in the recording; past its end the last frame repeats.
            entry["frame_indices"] = kept + [kept[-1]] * (len(indices) - len(kept))
            entry["frame_positions"] = "recording"
            continue
        segment = processor.video_segment(start, end)
        try:
            count = count_video_frames(path, *segment)
        except MediaDecodeError as error:
            entry["video_error"] = error.reason
            continue
        if count == 0:
            entry["video_error"] = "no frame in its window"
            continue
        entry["frame_indices"] = [int(index) for index in processor.frame_indices(count)]
        if segment[0] is not None:
            entry["video_segment"] = [round(segment[0], 4), round(segment[1], 4)]
    return found


def prompt_input_ids(processor, prompt: str) -> list[int]:
    """The token ids the text model reads for ``prompt``: the processor's own encoding (truncation and the
    ``<mask>`` appended), without padding."""
    encoded = processor.encode_prompts([prompt])
    mask = encoded["attention_mask"][0].bool()
    return encoded["input_ids"][0][mask].tolist()


def show_inputs(
    model_type: str,
    dataset_name: str,
    data_dir: str,
    split: str,
    output: str,
    preprocessing: str | None = None,
    model: str | None = None,
    tokenizer: str | None = None,
    with_media: bool = True,
    validation_split: str | None = None,
) -> int:
    """Write one JSON line per utterance of ``split``; returns the number of lines.

    ``validation_split`` (IEMOCAP raw release only: ``"random"`` or ``"reference"``) is the builder's option; a
    prepared folder keeps the split it was prepared with."""
    if model is not None:
        processor = checkpoint_processor(model)
        saved = getattr(processor, "preprocessing", "default")
        if preprocessing is not None and preprocessing != saved:
            raise ValueError(f"{model} was saved with {saved!r} preprocessing; drop --preprocessing {preprocessing}.")
    else:
        processor = preset_processor(model_type, dataset_name, preprocessing or "default", tokenizer)
    options = {} if validation_split is None else {"validation_split": validation_split}
    if options and dataset_name != "iemocap":
        raise ValueError("--validation-split applies to IEMOCAP only.")
    splits = load_erc_dataset(dataset_name, data_dir, **options)
    if split not in splits:
        raise ValueError(f"{data_dir} has no {split!r} split; found {list(splits)}.")
    dataset = splits[split]
    kept_columns = [c for c in (*MEDIA_SOURCE_COLUMNS, "utterance_id") if c in dataset.column_names]
    view = with_prompt_context(dataset, processor, None, kept_columns)
    media = media_inputs(processor, view) if with_media and "audio_path" in view.column_names else {}
    count_tokens = model is not None or tokenizer is not None
    Path(output).parent.mkdir(parents=True, exist_ok=True)
    with open(output, "w", encoding="utf-8") as file:
        for index, row in enumerate(view):
            prompt = processor.render_row(row)
            line = {
                "dialogue_id": row["dialogue_id"],
                "turn": row["turn"],
                **({"utterance_id": row["utterance_id"]} if "utterance_id" in row else {}),
                "speaker": row["speaker"],
                "text": row["text"],
                "prompt": prompt,
                "preprocessing": processor.preprocessing,
            }
            if count_tokens:
                line["num_tokens"] = processor.prompt_length(prompt)
                line["input_ids"] = prompt_input_ids(processor, prompt)
            line.update(media.get(index, {}))
            file.write(json.dumps(line, ensure_ascii=False) + "\n")
    return len(view)


def register(subparsers) -> None:
    """Add ``hf-erc show-inputs``."""
    parser = subparsers.add_parser(
        "show-inputs",
        help="Write what a TelME or MAGTKD model sees for every utterance (prompt, audio window, frames) as JSONL.",
        description=__doc__.split("\n\n")[1],
    )
    parser.add_argument("--model-type", required=True, choices=UTTERANCE_MODEL_TYPES)
    parser.add_argument("--dataset", required=True, choices=["meld", "iemocap"])
    parser.add_argument("--data-dir", required=True, help="A raw release, the MELD CSVs alone, or a prepared folder.")
    parser.add_argument("--split", required=True, choices=["train", "validation", "test"])
    parser.add_argument("--preprocessing", choices=["reference", "default"], default=None,
                        help="The authors' inputs or hf_erc's (default: default, or the checkpoint's).")  # fmt: skip
    parser.add_argument("--model", default=None, help="A TelME/MAGTKD stage checkpoint: use the processor saved with it.")
    parser.add_argument("--tokenizer", default=None,
                        help="The text model's tokenizer (adds num_tokens and input_ids per prompt).")  # fmt: skip
    parser.add_argument("--validation-split", choices=["random", "reference"], default=None,
                        help="IEMOCAP raw release: how validation is drawn (as hf-erc prepare; default random). "
                        "'reference' is the authors' split, test dialogues in their order.")  # fmt: skip
    parser.add_argument("--no-media", dest="with_media", action="store_false", help="Skip decoding media files.")
    parser.add_argument("--output", required=True, help="The JSONL file to write.")
    parser.set_defaults(func=_run_show_inputs)


def _run_show_inputs(args) -> int:
    lines = show_inputs(
        args.model_type, args.dataset, args.data_dir, args.split, args.output, preprocessing=args.preprocessing,
        model=args.model, tokenizer=args.tokenizer, with_media=args.with_media,
        validation_split=args.validation_split,
    )  # fmt: skip
    print(f"Wrote {lines} utterances to {args.output}.", file=sys.stderr)
    return 0
