"""Convert the MAGTKD authors' checkpoints into hf_erc MAGTKD checkpoints (config, safetensors, code, processor).

The authors (https://github.com/JieLi-dd/MAGTKD) save each stage under ``<dataset>/save_model/`` as a pickled
``state_dict``, read here with ``torch.load(weights_only=True)``, which only rebuilds tensors. ``--stage`` picks
what ``--checkpoint`` holds and what it becomes:

- ``fusion`` (default): ``multimodal_fusion_best.bin`` (``model.py`` ``Transformer_Based_Model``, from
  ``multimodel_fusion.py``) -> ``MAGTKDForEmotionRecognition``;
- ``text``: ``text.bin`` (``Text_model``: ``text_model.*`` RoBERTa with its pooler, ``W.*`` 1024 -> 768,
  ``classifier.*``) -> ``MAGTKDTextModel``;
- ``audio``: ``audio.bin`` or the distilled ``text_KD_audio.bin`` (``Audio_model``: ``model.*`` data2vec-audio,
  ``W.*`` the classifier) -> ``MAGTKDAudioModel``;
- ``video``: ``video.bin`` or the distilled ``text_KD_video.bin`` (``Video_model``: ``model.*`` TimeSformer, ``W.*``)
  -> ``MAGTKDVideoModel``.

The unimodal layouts are TelME's teacher and students; their conversion is TelME's (``# Copied from`` below):
``text_model``/``model`` -> ``encoder``, ``W`` -> ``projection`` (text) or ``classifier`` (audio, video), the
pooler and the ``position_ids`` buffer dropped. The text model's embedding keeps its 9 marker rows (50,274 rows at
real size) although MAGTKD's data never writes the marker tokens: with ``--tokenizer`` the saved
``MAGTKDProcessor`` has the authors' preprocessing (``preprocessing="reference"``: markers as plain text, so the
tokenizer gets no marker token; ``Now<sK>`` without a space; MELD's global speaker ids; audio at 22,050 Hz, its
first 400,000 samples; BGR frames). Encoder sizes are the reference's (roberta-large, data2vec-audio-base-960h,
timesformer-base-finetuned-k400) unless ``--config_file`` gives other ``MAGTKDConfig`` fields.

The fusion's keys::

    speaker_embeddings.weight                     [n_speaker + 1, hidden]
    {s}_{t}.transformer_inter.{i}.self_attn.proj_q|proj_k|proj_v|fc.*       (s = source, t = target modality)
    {s}_{t}.transformer_inter.{i}.feed_forward.w_1|w_2|layer_norm.*
    {s}_{t}.transformer_inter.{i}.layer_norm.*    (used from the second layer on)
    {s}_{t}.pos_emb.pe                            (the fixed sinusoidal table)
    {s}_{t}_gate.fc.*                             (the unimodal gates)
    features_reduce_t|a|v.*, fc.*, w_t.*, w_a.*, w_v.*

What the fusion's conversion changes:

- key names (``{s}_{t}`` -> ``encoders.{s}_to_{t}``, ``proj_q`` -> ``attention.q_proj``, ``w_t`` -> ``classifier``,
  ``w_a``/``w_v`` -> ``modality_classifiers.audio``/``video``, ...);
- dropped: what the reference declares but never uses (the ``a_t`` and ``v_t`` encoders and gates, since the text
  anchor reuses ``t_t`` and ``t_t_gate`` for all three sources; ``fc``; the first layer's ``layer_norm``) and the
  ``pos_emb.pe`` buffers (recomputed);
- the speaker table: the reference pads with id 2 (``padding_idx=2``); here the padding row is the last one and is
  zero. Real speakers keep their rows, so predictions are unchanged.

Every stage: the reference numbers the classes alphabetically (``anger, disgust, fear, joy, neutral, sadness,
surprise``; ``ang, exc, fru, hap, neu, sad``); the rows of every classifier are reordered to the canonical order of
``hf_erc.labels``. The number of attention heads of the fusion is not stored in a state dict: pass
``--num_attention_heads`` if it was not 8.

Usage::

    python scripts/convert_magtkd_original_checkpoint.py --checkpoint MELD/save_model/multimodal_fusion_best.bin \\
        --dataset meld --output_dir magtkd-meld
    python scripts/convert_magtkd_original_checkpoint.py --stage text --checkpoint MELD/save_model/text.bin \\
        --dataset meld --output_dir magtkd-meld-text --tokenizer roberta-large
"""

import argparse
import json
import pickle
import re
from pathlib import Path

import torch
from transformers import AutoTokenizer

import hf_erc.models  # noqa: F401  (registers the Auto classes and the code files save_pretrained copies)
from hf_erc.models import (
    MAGTKDAudioModel,
    MAGTKDConfig,
    MAGTKDForEmotionRecognition,
    MAGTKDProcessor,
    MAGTKDTextModel,
    MAGTKDVideoModel,
)

# The reference's class order (dataset.py `emoList`), as hf_erc label names.
REFERENCE_LABELS = {
    "meld": ("anger", "disgust", "fear", "joy", "neutral", "sadness", "surprise"),
    "iemocap": ("angry", "excited", "frustrated", "happy", "neutral", "sad"),
}

REFERENCE_MODALITIES = {"t": "text", "a": "audio", "v": "video"}

# What each stage reads (the files the authors' scripts write) and the model it becomes.
STAGE_FILES = {
    "fusion": ("multimodal_fusion_best.bin",),
    "text": ("text.bin",),
    "audio": ("audio.bin", "text_KD_audio.bin"),
    "video": ("video.bin", "text_KD_video.bin"),
}
STAGE_MODELS = {"text": MAGTKDTextModel, "audio": MAGTKDAudioModel, "video": MAGTKDVideoModel}

# The released audio models were trained on librosa's default 22,050 Hz and the first 400,000 samples.
REFERENCE_AUDIO_SAMPLING_RATE = 22050
REFERENCE_AUDIO_MAX_SAMPLES = 400_000

_FUSION_HINT = (
    "pass the authors' multimodal_fusion_best.bin (<dataset>/save_model/); for text.bin, audio.bin, video.bin "
    "and the text_KD_* files use --stage text|audio|video"
)

# Declared by the reference's `Transformer_Based_Model` but never called in its forward.
_UNUSED = re.compile(r"^(a_t|v_t|a_t_gate|v_t_gate|fc)\.|\.pos_emb\.pe$|\.transformer_inter\.0\.layer_norm\.")
_ENCODER = re.compile(r"^(?P<source>[tav])_(?P<target>[tav])\.transformer_inter\.(?P<layer>\d+)\.(?P<rest>.+)$")
_GATE = re.compile(r"^(?P<source>[tav])_(?P<target>[tav])_gate\.fc\.(?P<parameter>weight|bias)$")
_LAYER_PARTS = {
    "self_attn.proj_q": "attention.q_proj",
    "self_attn.proj_k": "attention.k_proj",
    "self_attn.proj_v": "attention.v_proj",
    "self_attn.fc": "attention.out_proj",
    "feed_forward.w_1": "feed_forward.fc1",
    "feed_forward.w_2": "feed_forward.fc2",
    "feed_forward.layer_norm": "feed_forward.layer_norm",
    "layer_norm": "input_layer_norm",
}
_HEADS = {
    "w_t": "classifier",
    "w_a": "modality_classifiers.audio",
    "w_v": "modality_classifiers.video",
}
# Keys the fusion's configuration is read from.
_FUSION_SIZE_KEYS = ("w_t.weight", "t_t.transformer_inter.0.feed_forward.w_1.weight", "speaker_embeddings.weight")


# Copied from scripts.convert_telme_original_checkpoint.CheckpointFormatError
class CheckpointFormatError(ValueError):
    """A released file does not hold the state dict the conversion expects."""


# Copied from scripts.convert_telme_original_checkpoint.load_reference_state_dict with _SAVE_MODEL_HINT->_FUSION_HINT
def load_reference_state_dict(path, hint=_FUSION_HINT):
    """A released ``.bin`` state dict, read without running pickled code; `hint` says what to pass instead when
    the file is missing."""
    path = Path(path)
    if not path.is_file():
        problem = "is a folder, not a checkpoint file" if path.is_dir() else "not found"
        raise FileNotFoundError(f"{path} {problem}: {hint}.")
    try:
        state_dict = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError) as error:
        reason = (str(error).strip().splitlines() or [type(error).__name__])[0][:200]
        raise CheckpointFormatError(
            f"{path} cannot be read as a state dict saved with torch.save (only tensors are loaded, a pickled "
            f"model object is refused): {reason}"
        ) from error
    if not isinstance(state_dict, dict) or not all(isinstance(value, torch.Tensor) for value in state_dict.values()):
        raise CheckpointFormatError(f"{path} does not hold a state dict of tensors.")
    return state_dict


# The authors' unimodal models, by modality (TelME's layouts): their prefixes -> the stage model's, and what is
# dropped.
# Copied from scripts.convert_telme_original_checkpoint.UNIMODAL_LAYOUTS
UNIMODAL_LAYOUTS = {
    "text": {
        "renames": {"text_model.": "encoder.", "W.": "projection.", "classifier.": "classifier."},
        "dropped": ("text_model.pooler.",),  # RoBERTa's pooler: saved by the authors, never used
    },
    "audio": {"renames": {"model.": "encoder.", "W.": "classifier."}, "dropped": ()},
    "video": {"renames": {"model.": "encoder.", "W.": "classifier."}, "dropped": ()},
}


# Copied from scripts.convert_telme_original_checkpoint._rename
def _rename(state_dict, renames, source, dropped=()):
    """Apply `renames` (old prefix -> new prefix) to every key; keys starting with `dropped` are left out."""
    converted = {}
    for key, value in state_dict.items():
        if key.startswith(tuple(dropped)) or key.endswith(("embeddings.position_ids", "embeddings.token_type_ids")):
            continue
        prefix = next((old for old in renames if key == old or key.startswith(old)), None)
        if prefix is None:
            raise CheckpointFormatError(
                f"{source}: unexpected key {key!r} (expected keys starting with {list(renames)}): is it the file "
                "this conversion reads?"
            )
        converted[renames[prefix] + key[len(prefix) :]] = value
    return converted


# Copied from scripts.convert_telme_original_checkpoint._authors_key
def _authors_key(key, renames):
    """The authors' name of a converted key (the inverse of `_rename`), or None when no prefix matches."""
    for old, new in renames.items():
        if key.startswith(new):
            return old + key[len(new) :]
    return None


# Copied from scripts.convert_telme_original_checkpoint.permute_classes
def permute_classes(state_dict, prefix, permutation, source):
    """Reorder the rows of the classifier ``{prefix}weight``/``{prefix}bias`` (in place) from the reference's class
    order to the canonical one, after checking it has as many classes as the dataset."""
    for suffix in ("weight", "bias"):
        key = prefix + suffix
        if key not in state_dict:
            continue  # reported as missing when the state dict is loaded
        rows = state_dict[key].shape[0]
        if rows != len(permutation):
            raise CheckpointFormatError(
                f"{source}: the classifier {key} has {rows} classes, the dataset {len(permutation)}. Check --dataset."
            )
        state_dict[key] = state_dict[key][permutation].clone()
    return state_dict


# Copied from scripts.convert_telme_original_checkpoint.convert_unimodal_state_dict
def convert_unimodal_state_dict(modality, state_dict, permutation, source):
    """One of the authors' unimodal state dicts (``modality`` text, audio or video) in the names of the stage
    model (``encoder.*``, ``projection.*``, ``classifier.*``), its classes in the canonical order."""
    layout = UNIMODAL_LAYOUTS[modality]
    converted = _rename(state_dict, layout["renames"], source, dropped=layout["dropped"])
    return permute_classes(converted, "classifier.", permutation, source)


# Copied from scripts.convert_telme_original_checkpoint.load_checked
def load_checked(model, state_dict, source, origin=None):
    """Load `state_dict` into `model` strictly; missing or unexpected keys and wrong shapes raise a
    CheckpointFormatError naming `source` and, through `origin` (key -> where the authors' file has it), the
    authors' name of each key."""

    def named(key):
        where = origin(key) if origin is not None else None
        return key if where is None else f"{key} (from {where})"

    expected = model.state_dict()
    missing, unexpected = sorted(set(expected) - set(state_dict)), sorted(set(state_dict) - set(expected))
    if missing or unexpected:
        raise CheckpointFormatError(
            f"{source} does not match the configured architecture: missing {[named(key) for key in missing[:10]]}, "
            f"unexpected {[named(key) for key in unexpected[:10]]}. Check --dataset and --config_file (encoder "
            "sizes)."
        )
    for key, value in state_dict.items():
        if value.shape != expected[key].shape:
            raise CheckpointFormatError(
                f"{source}: {key} has shape {tuple(value.shape)}, the model expects {tuple(expected[key].shape)} "
                f"({named(key)}). Check --dataset and --config_file."
            )
    model.load_state_dict(state_dict, strict=True)
    return model.eval()


def label_permutation(dataset):
    """Index into the reference's classes of each canonical class."""
    reference = REFERENCE_LABELS[dataset]
    canonical = MAGTKDConfig.for_dataset(dataset).id2label
    return torch.tensor([reference.index(canonical[index]) for index in range(len(canonical))])


def config_from_state_dict(state_dict, dataset, source=STAGE_FILES["fusion"][0], **overrides):
    """The configuration of a reference state dict: sizes read from its tensors, the rest the dataset preset."""
    absent = [key for key in _FUSION_SIZE_KEYS if key not in state_dict]
    if absent:
        raise CheckpointFormatError(
            f"{source} has no {absent}: is it MAGTKD's multimodal_fusion_best.bin (a Transformer_Based_Model state "
            "dict)? For the text, audio and video models use --stage text|audio|video."
        )
    hidden_size = state_dict["w_t.weight"].shape[1]
    layers = {int(match["layer"]) for key in state_dict if (match := _ENCODER.match(key))}
    settings = {
        "hidden_size": hidden_size,
        "intermediate_size": state_dict["t_t.transformer_inter.0.feed_forward.w_1.weight"].shape[0],
        "num_hidden_layers": max(layers) + 1,
        "num_speakers": state_dict["speaker_embeddings.weight"].shape[0] - 1,
    }
    if settings["num_speakers"] != MAGTKDConfig.for_dataset(dataset).num_speakers:
        # A different speaker table cannot keep the preset's name -> id vocabulary.
        settings["speaker_vocab"] = None
    settings.update(overrides)
    return MAGTKDConfig.for_dataset(dataset, **settings)


def convert_state_dict(state_dict, dataset, source=STAGE_FILES["fusion"][0]):
    """The reference fusion `state_dict` in this model's names, classes in the canonical order."""
    converted = {}
    unknown = []
    for key, value in state_dict.items():
        if _UNUSED.search(key):
            continue
        if key == "speaker_embeddings.weight":
            # The last row becomes the (zero) padding row; the reference's padding row 2 is a real speaker's.
            value = value.clone()
            value[-1] = 0
            converted[key] = value
        elif match := _ENCODER.match(key):
            part, parameter = match["rest"].rsplit(".", 1)
            if part not in _LAYER_PARTS:
                unknown.append(key)
                continue
            name = f"{REFERENCE_MODALITIES[match['source']]}_to_{REFERENCE_MODALITIES[match['target']]}"
            converted[f"encoders.{name}.layers.{match['layer']}.{_LAYER_PARTS[part]}.{parameter}"] = value
        elif match := _GATE.match(key):
            name = f"{REFERENCE_MODALITIES[match['source']]}_to_{REFERENCE_MODALITIES[match['target']]}"
            converted[f"gates.{name}.linear.{match['parameter']}"] = value
        elif key.startswith("features_reduce_"):
            modality, parameter = key[len("features_reduce_") :].split(".")
            converted[f"modality_reductions.{REFERENCE_MODALITIES[modality]}.{parameter}"] = value
        elif key.split(".")[0] in _HEADS:
            head, parameter = key.split(".")
            converted[f"{_HEADS[head]}.{parameter}"] = value
        else:
            unknown.append(key)
    if unknown:
        raise CheckpointFormatError(
            f"Unexpected keys in {source}: {unknown[:5]}: is it a `Transformer_Based_Model` state dict from MAGTKD's "
            "multimodel_fusion.py? For the text, audio and video models use --stage text|audio|video."
        )
    permutation = label_permutation(dataset)
    for head in _HEADS.values():
        permute_classes(converted, f"{head}.", permutation, source)
    return converted


def convert_checkpoint(checkpoint, dataset, output_dir=None, **config_overrides):
    """Load the reference fusion checkpoint, convert it, and (with `output_dir`) save the converted model there."""
    path = Path(checkpoint)
    state_dict = load_reference_state_dict(path)
    config = config_from_state_dict(state_dict, dataset, source=path, **config_overrides)
    model = load_checked(MAGTKDForEmotionRecognition(config), convert_state_dict(state_dict, dataset, path), path)
    if output_dir is not None:
        model.save_pretrained(output_dir)
    return model


def _config_fields(fields):
    """The fields of a --config_file that may override the preset (labels and saved-file bookkeeping are not)."""
    ignored = ("id2label", "label2id", "num_labels", "model_type", "transformers_version", "auto_map", "architectures")
    return {name: value for name, value in (fields or {}).items() if name not in ignored}


def reference_config(dataset, fields=None):
    """The configuration of the authors' text, audio and video models (encoder sizes of roberta-large with 9 marker
    rows, data2vec-audio-base-960h and timesformer-base-finetuned-k400 unless `fields` say otherwise) and of their
    audio input."""
    settings = _config_fields(fields)
    settings.update(
        audio_sampling_rate=REFERENCE_AUDIO_SAMPLING_RATE,
        audio_max_seconds=REFERENCE_AUDIO_MAX_SAMPLES / REFERENCE_AUDIO_SAMPLING_RATE,
    )
    return MAGTKDConfig.for_dataset(dataset, **settings)


def convert_stage_checkpoint(checkpoint, stage, dataset, config):
    """Build the unimodal model (``stage``: text, audio or video) of one of the authors' files."""
    path = Path(checkpoint)
    hint = f"pass the authors' {' or '.join(STAGE_FILES[stage])} (<dataset>/save_model/) for --stage {stage}"
    released = load_reference_state_dict(path, hint)
    state_dict = convert_unimodal_state_dict(stage, released, label_permutation(dataset), path)
    renames = UNIMODAL_LAYOUTS[stage]["renames"]
    return load_checked(STAGE_MODELS[stage](config), state_dict, path, lambda key: _authors_key(key, renames))


# Copied from scripts.convert_telme_original_checkpoint.build_processor with TelME->MAGTKD
def build_processor(tokenizer_name_or_path, config, dataset):
    """The processor with the authors' preprocessing for ``dataset`` (``MAGTKDProcessor.from_preset`` with
    ``preprocessing="reference"``): what the released models were trained on."""
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_name_or_path, trust_remote_code=False)
    max_length = config.text_max_length - config.text_num_virtual_tokens
    return MAGTKDProcessor.from_preset(dataset, "reference", tokenizer, config, max_length)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--stage",
        default="fusion",
        choices=tuple(STAGE_FILES),
        help="What --checkpoint holds: 'fusion' (default; multimodal_fusion_best.bin -> MAGTKDForEmotionRecognition), "
        "'text' (text.bin -> MAGTKDTextModel), 'audio' (audio.bin or text_KD_audio.bin -> MAGTKDAudioModel) or "
        "'video' (video.bin or text_KD_video.bin -> MAGTKDVideoModel).",
    )
    parser.add_argument("--checkpoint", required=True, help="The authors' .bin file of that stage.")
    parser.add_argument(
        "--dataset",
        required=True,
        choices=sorted(REFERENCE_LABELS),
        help="Dataset it was trained on.",
    )
    parser.add_argument("--output_dir", required=True, help="Folder for the converted checkpoint.")
    parser.add_argument(
        "--num_attention_heads",
        type=int,
        default=None,
        help="Heads of the fusion (reference: 8); --stage fusion only.",
    )
    parser.add_argument(
        "--config_file",
        default=None,
        help="JSON of MAGTKDConfig fields replacing the reference's (e.g. the encoder sizes of a text, audio or "
        "video model of another size).",
    )
    parser.add_argument(
        "--tokenizer",
        default=None,
        help="RoBERTa tokenizer (name or folder), without speaker tokens, to save a MAGTKDProcessor beside a text, "
        "audio or video model; without it no processor.",
    )
    args = parser.parse_args(argv)
    if args.stage == "fusion" and args.tokenizer is not None:
        parser.error(
            "--tokenizer: the fusion reads the text, audio and video models' features, not raw inputs; save a "
            "processor with those models (--stage text|audio|video)."
        )
    if args.stage != "fusion" and args.num_attention_heads is not None:
        parser.error(
            f"--num_attention_heads sets the fusion's heads; the {args.stage} model's sizes come from --config_file."
        )
    return args


def main(argv=None):
    args = parse_args(argv)
    fields = {}
    if args.config_file is not None:
        with open(args.config_file, encoding="utf-8") as file:
            fields = json.load(file)
    if args.stage == "fusion":
        overrides = _config_fields(fields)
        if args.num_attention_heads is not None:
            overrides["num_attention_heads"] = args.num_attention_heads
        model = convert_checkpoint(args.checkpoint, args.dataset, args.output_dir, **overrides)
    else:
        config = reference_config(args.dataset, fields)
        model = convert_stage_checkpoint(args.checkpoint, args.stage, args.dataset, config)
        model.save_pretrained(args.output_dir)
        if args.tokenizer is not None:
            build_processor(args.tokenizer, config, args.dataset).save_pretrained(args.output_dir)
    print(f"Saved the converted MAGTKD {args.dataset} {args.stage} model ({type(model).__name__}) to {args.output_dir}")
    return model


if __name__ == "__main__":
    main()
