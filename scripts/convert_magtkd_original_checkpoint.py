"""Convert the MAGTKD authors' fusion checkpoint into a MAGTKD checkpoint (config, safetensors, code).

The authors (https://github.com/JieLi-dd/MAGTKD) save the fusion stage, ``model.py`` ``Transformer_Based_Model``,
from ``multimodel_fusion.py`` as ``<dataset>/save_model/multimodal_fusion_best.bin``: a pickled ``state_dict``,
read here with ``torch.load(weights_only=True)``, which only rebuilds tensors. Its keys::

    speaker_embeddings.weight                     [n_speaker + 1, hidden]
    {s}_{t}.transformer_inter.{i}.self_attn.proj_q|proj_k|proj_v|fc.*       (s = source, t = target modality)
    {s}_{t}.transformer_inter.{i}.feed_forward.w_1|w_2|layer_norm.*
    {s}_{t}.transformer_inter.{i}.layer_norm.*    (used from the second layer on)
    {s}_{t}.pos_emb.pe                            (the fixed sinusoidal table)
    {s}_{t}_gate.fc.*                             (the unimodal gates)
    features_reduce_t|a|v.*, fc.*, w_t.*, w_a.*, w_v.*

What the conversion changes:

- key names (``{s}_{t}`` -> ``encoders.{s}_to_{t}``, ``proj_q`` -> ``attention.q_proj``, ``w_t`` -> ``classifier``,
  ``w_a``/``w_v`` -> ``modality_classifiers.audio``/``video``, ...);
- dropped: what the reference declares but never uses (the ``a_t`` and ``v_t`` encoders and gates, since the text
  anchor reuses ``t_t`` and ``t_t_gate`` for all three sources; ``fc``; the first layer's ``layer_norm``) and the
  ``pos_emb.pe`` buffers (recomputed);
- the speaker table: the reference pads with id 2 (``padding_idx=2``); here the padding row is the last one and is
  zero. Real speakers keep their rows, so predictions are unchanged;
- the class order: the reference numbers the classes alphabetically (``anger, disgust, fear, joy, neutral,
  sadness, surprise``; ``ang, exc, fru, hap, neu, sad``); the rows of the three classifiers are reordered to the
  canonical order of ``hf_erc.labels``.

The number of attention heads is not stored in a state dict: pass ``--num_attention_heads`` if it was not 8.

Usage::

    python scripts/convert_magtkd_original_checkpoint.py --checkpoint MELD/save_model/multimodal_fusion_best.bin \\
        --dataset meld --output_dir magtkd-meld
"""

import argparse
import re
from pathlib import Path

import torch

import hf_erc.models  # noqa: F401  (registers the Auto classes and the code files save_pretrained copies)
from hf_erc.models import MAGTKDConfig, MAGTKDForEmotionRecognition

# The reference's class order (dataset.py `emoList`), as hf_erc label names.
REFERENCE_LABELS = {
    "meld": ("anger", "disgust", "fear", "joy", "neutral", "sadness", "surprise"),
    "iemocap": ("angry", "excited", "frustrated", "happy", "neutral", "sad"),
}

REFERENCE_MODALITIES = {"t": "text", "a": "audio", "v": "video"}

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


def label_permutation(dataset):
    """Index into the reference's classes of each canonical class."""
    reference = REFERENCE_LABELS[dataset]
    canonical = MAGTKDConfig.for_dataset(dataset).id2label
    return torch.tensor([reference.index(canonical[index]) for index in range(len(canonical))])


def config_from_state_dict(state_dict, dataset, **overrides):
    """The configuration of a reference state dict: sizes read from its tensors, the rest the dataset preset."""
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


def convert_state_dict(state_dict, dataset):
    """The reference fusion `state_dict` in this model's names, classes in the canonical order."""
    permutation = label_permutation(dataset)
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
            converted[f"{_HEADS[head]}.{parameter}"] = value[permutation]
        else:
            unknown.append(key)
    if unknown:
        raise ValueError(
            f"Unexpected keys in the reference checkpoint: {unknown[:5]}: is it a `Transformer_Based_Model` state "
            "dict from MAGTKD's multimodel_fusion.py?"
        )
    return converted


def convert_checkpoint(checkpoint, dataset, output_dir=None, **config_overrides):
    """Load the reference checkpoint, convert it, and (with `output_dir`) save the converted model there."""
    path = Path(checkpoint)
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist: pass the authors' multimodal_fusion_best.bin.")
    state_dict = torch.load(path, map_location="cpu", weights_only=True)
    config = config_from_state_dict(state_dict, dataset, **config_overrides)
    model = MAGTKDForEmotionRecognition(config)
    model.load_state_dict(convert_state_dict(state_dict, dataset), strict=True)
    model.eval()
    if output_dir is not None:
        model.save_pretrained(output_dir)
    return model


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", required=True, help="The authors' multimodal_fusion_best.bin.")
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
        default=8,
        help="Heads of the fusion (reference: 8).",
    )
    args = parser.parse_args(argv)
    convert_checkpoint(
        args.checkpoint,
        args.dataset,
        args.output_dir,
        num_attention_heads=args.num_attention_heads,
    )
    print(f"Saved the converted MAGTKD {args.dataset} fusion model to {args.output_dir}")


if __name__ == "__main__":
    main()
