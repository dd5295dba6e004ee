"""Convert the TelME authors' released checkpoints into hf_erc TelME checkpoints (config, safetensors, code, processor).

The authors (https://github.com/yuntaeyang/TelME, README "Testing with pretrained TelME") release one
``save_model`` folder per dataset, written by ``teacher.py``, ``student.py`` and ``fusion.py``::

    save_model/teacher.bin                        Teacher_model: text_model.* (RobertaModel), W.*, classifier.*
    save_model/student_audio/total_student.bin    Student_Audio: model.* (Data2VecAudioModel), W.*
    save_model/student_video/total_student.bin    Student_Video: model.* (TimesformerModel), W.*
    save_model/total_fusion.bin                   ASF: multihead_attn.*, W_hav.*, W_av.*, LayerNorm.*,
                                                  AV_LayerNorm.*, W.*

Each is a pickled ``state_dict``; it is read with ``torch.load(weights_only=True)``, which only rebuilds
tensors. ``--stage all`` (the default) converts the four into one ``TelMEForEmotionRecognition``;
``--stage teacher|audio|video`` converts one file into the stage checkpoint the training stages write
(``TelMETextTeacher``, ``TelMEAudioStudent``, ``TelMEVideoStudent``), to serve it alone or to train the next
stage from it. Both share the per-part conversion below. What it changes:

- key names (``text_model`` -> ``encoder`` (``text_teacher.encoder`` in the whole model), ``W`` ->
  ``projection``/``classifier``, ...); the stacked ``in_proj_weight`` of ``nn.MultiheadAttention`` is split into
  the query, key and value projections;
- the class order: the reference numbers the classes alphabetically (``anger, disgust, fear, joy, neutral,
  sadness, surprise``; ``ang, exc, fru, hap, neu, sad``); the rows of every classifier are reordered to the
  canonical order of ``hf_erc.labels``;
- dropped: RoBERTa's pooler (never used by the teacher) and the ``position_ids`` buffer older transformers
  saved.

The converted model reproduces the released one: the configuration keeps ``fusion_attention_scope="batch"``
(the reference's fusion attention mixes the utterances of a batch; evaluate with batches of 4 in dataset order
to get the reference's numbers, or use ``--fusion_attention_scope utterance`` for batch-independent
predictions), and, with ``--tokenizer``, a processor is saved with the authors' preprocessing
(``preprocessing="reference"``: their speaker numbering and marker spacing, audio at 22,050 Hz — the reference
loads audio with librosa's default rate while declaring 16 kHz — its last 400,000 samples, BGR frames as OpenCV
reads them; ``docs/models/telme.md`` lists every item).

Usage::

    python scripts/convert_telme_original_checkpoint.py --checkpoint_dir MELD/save_model --dataset meld \\
        --output_dir telme-meld --tokenizer roberta-large
    python scripts/convert_telme_original_checkpoint.py --stage audio \\
        --checkpoint MELD/save_model/student_audio/total_student.bin --dataset meld \\
        --output_dir telme-meld-audio --tokenizer roberta-large
"""

import argparse
import json
import pickle
from pathlib import Path

import torch
from transformers import AutoTokenizer

import hf_erc.models  # noqa: F401  (registers the Auto classes and the code files save_pretrained copies)
from hf_erc.models import (
    TelMEAudioStudent,
    TelMEConfig,
    TelMEForEmotionRecognition,
    TelMEProcessor,
    TelMETextTeacher,
    TelMEVideoStudent,
)


# The reference's class order (dataset.py `emoList`), as hf_erc label names.
REFERENCE_LABELS = {
    "meld": ("anger", "disgust", "fear", "joy", "neutral", "sadness", "surprise"),
    "iemocap": ("angry", "excited", "frustrated", "happy", "neutral", "sad"),
}

REFERENCE_FILES = {
    "teacher": "teacher.bin",
    "audio": "student_audio/total_student.bin",
    "video": "student_video/total_student.bin",
    "fusion": "total_fusion.bin",
}

# The stages `--stage` converts on their own: the model each becomes, the modality of its layout (below) and
# where it sits inside TelMEForEmotionRecognition.
STAGE_MODELS = {"teacher": TelMETextTeacher, "audio": TelMEAudioStudent, "video": TelMEVideoStudent}
STAGE_MODALITIES = {"teacher": "text", "audio": "audio", "video": "video"}
WHOLE_MODEL_PREFIXES = {"teacher": "text_teacher.", "audio": "audio_student.", "video": "video_student."}

# The authors' unimodal models, by modality (TelME's Teacher_model/Student_Audio/Student_Video and MAGTKD's
# Text_model/Audio_model/Video_model share them): their prefixes -> the stage model's, and what is dropped.
UNIMODAL_LAYOUTS = {
    "text": {
        "renames": {"text_model.": "encoder.", "W.": "projection.", "classifier.": "classifier."},
        "dropped": ("text_model.pooler.",),  # RoBERTa's pooler: saved by the authors, never used
    },
    "audio": {"renames": {"model.": "encoder.", "W.": "classifier."}, "dropped": ()},
    "video": {"renames": {"model.": "encoder.", "W.": "classifier."}, "dropped": ()},
}

FUSION_RENAMES = {
    "multihead_attn.out_proj.": "attention.out_proj.",
    "W_hav.": "gate.",
    "W_av.": "nonverbal_projection.",
    "AV_LayerNorm.": "nonverbal_layer_norm.",
    "LayerNorm.": "layer_norm.",
    "W.": "classifier.",
}

# The released audio students were trained on librosa's default 22,050 Hz and the last 400,000 samples.
REFERENCE_AUDIO_SAMPLING_RATE = 22050
REFERENCE_AUDIO_MAX_SAMPLES = 400_000

_SAVE_MODEL_HINT = (
    "point --checkpoint_dir at the authors' save_model folder (teacher.bin, student_audio/total_student.bin, "
    "student_video/total_student.bin, total_fusion.bin)"
)


class CheckpointFormatError(ValueError):
    """A released file does not hold the state dict the conversion expects."""


def load_reference_state_dict(path, hint=_SAVE_MODEL_HINT):
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


def label_permutation(dataset, config):
    """Index, in the reference's class order, of each of the config's classes."""
    reference = REFERENCE_LABELS[dataset]
    names = [config.id2label[index] for index in range(config.num_labels)]
    if sorted(names) != sorted(reference):
        raise ValueError(f"The config's labels {names} are not the reference's {dataset} labels {list(reference)}.")
    return torch.tensor([reference.index(name) for name in names])


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


def _authors_key(key, renames):
    """The authors' name of a converted key (the inverse of `_rename`), or None when no prefix matches."""
    for old, new in renames.items():
        if key.startswith(new):
            return old + key[len(new) :]
    return None


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


def convert_unimodal_state_dict(modality, state_dict, permutation, source):
    """One of the authors' unimodal state dicts (``modality`` text, audio or video) in the names of the stage
    model (``encoder.*``, ``projection.*``, ``classifier.*``), its classes in the canonical order."""
    layout = UNIMODAL_LAYOUTS[modality]
    converted = _rename(state_dict, layout["renames"], source, dropped=layout["dropped"])
    return permute_classes(converted, "classifier.", permutation, source)


def convert_fusion_state_dict(fusion, permutation, source=REFERENCE_FILES["fusion"]):
    """The released ASF state dict in the names of the fusion module, classes reordered."""
    fusion = dict(fusion)
    state_dict = {}
    for suffix in ("weight", "bias"):
        stacked = fusion.pop(f"multihead_attn.in_proj_{suffix}", None)
        if stacked is None:
            raise CheckpointFormatError(f"{source}: no multihead_attn.in_proj_{suffix}.")
        for name, part in zip(("q_proj", "k_proj", "v_proj"), stacked.chunk(3, dim=0)):
            state_dict[f"attention.{name}.{suffix}"] = part.clone()
    state_dict.update(_rename(fusion, FUSION_RENAMES, source))
    return permute_classes(state_dict, "classifier.", permutation, source)


def convert_state_dicts(teacher, audio, video, fusion, permutation):
    """The four released state dicts as one TelMEForEmotionRecognition state dict, classes reordered."""
    state_dict = {}
    for stage, released in (("teacher", teacher), ("audio", audio), ("video", video)):
        part = convert_unimodal_state_dict(STAGE_MODALITIES[stage], released, permutation, REFERENCE_FILES[stage])
        state_dict.update({WHOLE_MODEL_PREFIXES[stage] + key: value for key, value in part.items()})
    fused = convert_fusion_state_dict(fusion, permutation)
    state_dict.update({f"fusion.{key}": value for key, value in fused.items()})
    return state_dict


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


def reference_config(dataset, fusion_attention_scope="batch", fields=None):
    """The configuration of the released models (encoder sizes of roberta-large, data2vec-audio-base-960h and
    timesformer-base-finetuned-k400 unless `fields` say otherwise) and of their inputs."""
    fields = dict(fields or {})
    for name in ("id2label", "label2id", "num_labels", "model_type", "transformers_version", "auto_map"):
        fields.pop(name, None)
    fields.pop("architectures", None)
    settings = dict(fields)
    settings.update(
        fusion_attention_scope=fusion_attention_scope,
        audio_sampling_rate=REFERENCE_AUDIO_SAMPLING_RATE,
        audio_max_seconds=REFERENCE_AUDIO_MAX_SAMPLES / REFERENCE_AUDIO_SAMPLING_RATE,
    )
    return TelMEConfig.for_dataset(dataset, **settings)


def _whole_model_origin(key):
    """Which released file and key a key of TelMEForEmotionRecognition comes from (unimodal parts), or None."""
    for stage, prefix in WHOLE_MODEL_PREFIXES.items():
        if key.startswith(prefix):
            original = _authors_key(key[len(prefix) :], UNIMODAL_LAYOUTS[STAGE_MODALITIES[stage]]["renames"])
            if original is not None:
                return f"{original} of {REFERENCE_FILES[stage]}"
    return None


def convert_checkpoint(checkpoint_dir, dataset, config):
    """Build the TelME model of a released ``save_model`` folder."""
    checkpoint_dir = Path(checkpoint_dir)
    released = {name: load_reference_state_dict(checkpoint_dir / file) for name, file in REFERENCE_FILES.items()}
    permutation = label_permutation(dataset, config)
    state_dict = convert_state_dicts(
        released["teacher"], released["audio"], released["video"], released["fusion"], permutation
    )
    model = TelMEForEmotionRecognition(config)
    return load_checked(model, state_dict, checkpoint_dir, _whole_model_origin)


def convert_stage_checkpoint(checkpoint, stage, dataset, config):
    """Build the stage model (``stage``: teacher, audio or video) of one released file."""
    path = Path(checkpoint)
    hint = (
        f"pass the authors' {REFERENCE_FILES[stage]} with --checkpoint, or their save_model folder with "
        "--checkpoint_dir"
    )
    released = load_reference_state_dict(path, hint)
    modality = STAGE_MODALITIES[stage]
    state_dict = convert_unimodal_state_dict(modality, released, label_permutation(dataset, config), path)
    renames = UNIMODAL_LAYOUTS[modality]["renames"]
    return load_checked(STAGE_MODELS[stage](config), state_dict, path, lambda key: _authors_key(key, renames))


def build_processor(tokenizer_name_or_path, config, dataset):
    """The processor with the authors' preprocessing for ``dataset`` (``TelMEProcessor.from_preset`` with
    ``preprocessing="reference"``): what the released models were trained on."""
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_name_or_path, trust_remote_code=False)
    max_length = config.text_max_length - config.text_num_virtual_tokens
    return TelMEProcessor.from_preset(dataset, "reference", tokenizer, config, max_length)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--stage",
        default="all",
        choices=("all", *STAGE_MODELS),
        help="'all' (default): the whole model from the four files; 'teacher', 'audio' or 'video': that stage's "
        "checkpoint (TelMETextTeacher, TelMEAudioStudent, TelMEVideoStudent) from its one file.",
    )
    parser.add_argument("--checkpoint_dir", default=None, help="The authors' save_model folder of one dataset.")
    parser.add_argument(
        "--checkpoint",
        default=None,
        help="With --stage teacher|audio|video: the stage's .bin file (teacher.bin, student_audio/total_student.bin, "
        "student_video/total_student.bin) instead of --checkpoint_dir.",
    )
    parser.add_argument(
        "--dataset", required=True, choices=sorted(REFERENCE_LABELS), help="Dataset the models were trained on."
    )
    parser.add_argument("--output_dir", required=True, help="Where to write the converted checkpoint.")
    parser.add_argument(
        "--fusion_attention_scope",
        default="batch",
        choices=("batch", "utterance"),
        help="'batch' (the reference's behaviour, default) or 'utterance' (batch-independent predictions).",
    )
    parser.add_argument(
        "--config_file",
        default=None,
        help="JSON of TelMEConfig fields replacing the reference sizes (for checkpoints of other encoder sizes).",
    )
    parser.add_argument(
        "--tokenizer",
        default=None,
        help="RoBERTa tokenizer (name or folder) to save a TelMEProcessor beside the model; without it no processor.",
    )
    args = parser.parse_args(argv)
    if args.stage == "all":
        if args.checkpoint is not None:
            parser.error(
                "--checkpoint names one stage's file: use it with --stage teacher|audio|video, or pass "
                "--checkpoint_dir to convert the whole model."
            )
        if args.checkpoint_dir is None:
            parser.error("--stage all converts the whole release: pass --checkpoint_dir (the authors' save_model).")
    elif (args.checkpoint is None) == (args.checkpoint_dir is None):
        parser.error(
            f"--stage {args.stage}: pass either --checkpoint (the authors' {REFERENCE_FILES[args.stage]}) or "
            "--checkpoint_dir (their save_model folder), not both."
        )
    return args


def main(argv=None):
    args = parse_args(argv)
    fields = {}
    if args.config_file is not None:
        with open(args.config_file, encoding="utf-8") as file:
            fields = json.load(file)
    config = reference_config(args.dataset, args.fusion_attention_scope, fields)
    if args.stage == "all":
        source = args.checkpoint_dir
        model = convert_checkpoint(source, args.dataset, config)
    else:
        source = args.checkpoint or Path(args.checkpoint_dir) / REFERENCE_FILES[args.stage]
        model = convert_stage_checkpoint(source, args.stage, args.dataset, config)
    model.save_pretrained(args.output_dir)
    if args.tokenizer is not None:
        build_processor(args.tokenizer, config, args.dataset).save_pretrained(args.output_dir)
    print(f"Converted {source} ({args.dataset}) to a {type(model).__name__} in {args.output_dir}.")
    return model


if __name__ == "__main__":
    main()
