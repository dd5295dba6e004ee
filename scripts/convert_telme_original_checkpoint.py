"""Convert the TelME authors' released checkpoints into a TelME checkpoint (config, safetensors, code, processor).

The authors (https://github.com/yuntaeyang/TelME, README "Testing with pretrained TelME") release one
``save_model`` folder per dataset, written by ``teacher.py``, ``student.py`` and ``fusion.py``::

    save_model/teacher.bin                        Teacher_model: text_model.* (RobertaModel), W.*, classifier.*
    save_model/student_audio/total_student.bin    Student_Audio: model.* (Data2VecAudioModel), W.*
    save_model/student_video/total_student.bin    Student_Video: model.* (TimesformerModel), W.*
    save_model/total_fusion.bin                   ASF: multihead_attn.*, W_hav.*, W_av.*, LayerNorm.*,
                                                  AV_LayerNorm.*, W.*

Each is a pickled ``state_dict``; it is read with ``torch.load(weights_only=True)``, which only rebuilds
tensors. What the conversion changes:

- key names (``text_model`` -> ``text_teacher.encoder``, ``W`` -> ``projection``/``classifier``, ...); the
  stacked ``in_proj_weight`` of ``nn.MultiheadAttention`` is split into the query, key and value projections;
- the class order: the reference numbers the classes alphabetically (``anger, disgust, fear, joy, neutral,
  sadness, surprise``; ``ang, exc, fru, hap, neu, sad``); the rows of all four classifiers are reordered to the
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
"""

import argparse
import json
from pathlib import Path

import torch

import hf_erc.models  # noqa: F401  (registers the Auto classes and the code files save_pretrained copies)
from hf_erc.models import TelMEConfig, TelMEForEmotionRecognition, TelMEProcessor


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

# The released audio students were trained on librosa's default 22,050 Hz and the last 400,000 samples.
REFERENCE_AUDIO_SAMPLING_RATE = 22050
REFERENCE_AUDIO_MAX_SAMPLES = 400_000


class CheckpointFormatError(ValueError):
    """A released file does not hold the state dict the conversion expects."""


def load_reference_state_dict(path):
    """A released ``.bin`` state dict, read without running pickled code."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} not found: point --checkpoint_dir at the authors' save_model folder (teacher.bin, "
            "student_audio/total_student.bin, student_video/total_student.bin, total_fusion.bin)."
        )
    state_dict = torch.load(path, map_location="cpu", weights_only=True)
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
            raise CheckpointFormatError(f"{source}: unexpected key {key!r} (expected prefixes {list(renames)}).")
        converted[renames[prefix] + key[len(prefix) :]] = value
    return converted


def convert_state_dicts(teacher, audio, video, fusion, permutation):
    """The four released state dicts as one TelMEForEmotionRecognition state dict, classes reordered."""
    state_dict = {}
    state_dict.update(
        _rename(
            teacher,
            {
                "text_model.": "text_teacher.encoder.",
                "W.": "text_teacher.projection.",
                "classifier.": "text_teacher.classifier.",
            },
            REFERENCE_FILES["teacher"],
            dropped=("text_model.pooler.",),
        )
    )
    state_dict.update(
        _rename(
            audio, {"model.": "audio_student.encoder.", "W.": "audio_student.classifier."}, REFERENCE_FILES["audio"]
        )
    )
    state_dict.update(
        _rename(
            video, {"model.": "video_student.encoder.", "W.": "video_student.classifier."}, REFERENCE_FILES["video"]
        )
    )
    fusion = dict(fusion)
    for suffix in ("weight", "bias"):
        stacked = fusion.pop(f"multihead_attn.in_proj_{suffix}", None)
        if stacked is None:
            raise CheckpointFormatError(f"{REFERENCE_FILES['fusion']}: no multihead_attn.in_proj_{suffix}.")
        for name, part in zip(("q_proj", "k_proj", "v_proj"), stacked.chunk(3, dim=0)):
            state_dict[f"fusion.attention.{name}.{suffix}"] = part.clone()
    state_dict.update(
        _rename(
            fusion,
            {
                "multihead_attn.out_proj.": "fusion.attention.out_proj.",
                "W_hav.": "fusion.gate.",
                "W_av.": "fusion.nonverbal_projection.",
                "AV_LayerNorm.": "fusion.nonverbal_layer_norm.",
                "LayerNorm.": "fusion.layer_norm.",
                "W.": "fusion.classifier.",
            },
            REFERENCE_FILES["fusion"],
        )
    )
    for prefix in ("text_teacher", "audio_student", "video_student", "fusion"):
        for suffix in ("weight", "bias"):
            key = f"{prefix}.classifier.{suffix}"
            state_dict[key] = state_dict[key][permutation].clone()
    return state_dict


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


def convert_checkpoint(checkpoint_dir, dataset, config):
    """Build the TelME model of a released ``save_model`` folder."""
    checkpoint_dir = Path(checkpoint_dir)
    released = {name: load_reference_state_dict(checkpoint_dir / file) for name, file in REFERENCE_FILES.items()}
    permutation = label_permutation(dataset, config)
    state_dict = convert_state_dicts(
        released["teacher"], released["audio"], released["video"], released["fusion"], permutation
    )
    model = TelMEForEmotionRecognition(config)
    expected = set(model.state_dict())
    missing, unexpected = sorted(expected - set(state_dict)), sorted(set(state_dict) - expected)
    if missing or unexpected:
        raise CheckpointFormatError(
            f"{checkpoint_dir} does not match the configured architecture: missing {missing[:10]}, unexpected "
            f"{unexpected[:10]}. Check --dataset and --config_file (encoder sizes)."
        )
    for key, value in state_dict.items():
        if value.shape != model.state_dict()[key].shape:
            raise CheckpointFormatError(
                f"{checkpoint_dir}: {key} has shape {tuple(value.shape)}, the model expects "
                f"{tuple(model.state_dict()[key].shape)}. Check --dataset and --config_file."
            )
    model.load_state_dict(state_dict, strict=True)
    return model.eval()


def build_processor(tokenizer_name_or_path, config, dataset):
    """The processor with the authors' preprocessing for ``dataset`` (``preprocessing="reference"``, see
    ``hf_erc.training.processors.REFERENCE_SETTINGS``): what the released models were trained on."""
    from transformers import AutoTokenizer

    from hf_erc.training.processors import build_processor as build_model_processor
    from hf_erc.training.processors import processor_settings

    tokenizer = AutoTokenizer.from_pretrained(tokenizer_name_or_path)
    max_length = config.text_max_length - config.text_num_virtual_tokens
    settings = processor_settings("telme", dataset, "reference", config)
    return build_model_processor(TelMEProcessor, tokenizer, config, max_length, settings)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint_dir", required=True, help="The authors' save_model folder of one dataset.")
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
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    fields = {}
    if args.config_file is not None:
        with open(args.config_file, encoding="utf-8") as file:
            fields = json.load(file)
    config = reference_config(args.dataset, args.fusion_attention_scope, fields)
    model = convert_checkpoint(args.checkpoint_dir, args.dataset, config)
    model.save_pretrained(args.output_dir)
    if args.tokenizer is not None:
        build_processor(args.tokenizer, config, args.dataset).save_pretrained(args.output_dir)
    print(f"Converted {args.checkpoint_dir} ({args.dataset}) to {args.output_dir}.")
    return model


if __name__ == "__main__":
    main()
