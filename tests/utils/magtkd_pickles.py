"""Fake MAGTKD first-stage feature pickles, in the layout the authors' ``extract_first_stage_features.py`` writes
(one dict per split: five feature dicts, speakers, labels, vids, dia2utt)."""

import pickle

import numpy as np

from hf_erc.data.magtkd_features import MAGTKD_FEATURE_KEYS

DIM = 8
FILES = {split: f"first_stage_{split}_features.pkl" for split in ("train", "dev", "test")}

# {file split: {Dialogue_ID: (labels in the authors' order, speaker ids, Utterance_IDs)}}
MELD_SPLITS = {
    "train": {0: ([0, 4, 6], [0, 2, 0], [0, 1, 2]), 3: ([1, 3], [6, 303], [0, 2])},
    "dev": {1: ([2, 5], [3, 4], [0, 1]), 0: ([4], [2], [0])},
    "test": {7: ([6], [5], [0]), 2: ([4, 0, 3], [1, 146, 1], [0, 1, 3])},
}
IEMOCAP_SPLITS = {
    "train": {0: ([0, 1, 2], [0, 1, 0], [0, 1, 2]), 1: ([3, 4], [1, 0], [0, 1])},
    "dev": {0: ([5, 5], [0, 1], [0, 1]), 1: ([4], [1], [0])},
    "test": {0: ([2], [1], [0]), 1: ([1, 0], [0, 1], [0, 1]), 2: ([3, 3, 5], [1, 0, 1], [0, 1, 2])},
}


def feature_file_contents(dialogues, seed, dim=DIM):
    """One file's dict, exactly in the layout extract_first_stage_features.py writes."""
    rng = np.random.default_rng(seed)
    contents = {name: {} for name in (*MAGTKD_FEATURE_KEYS, "speakers", "labels", "dia2utt")}
    contents["vids"] = []
    for vid, (labels, speakers, utterances) in dialogues.items():
        contents["vids"].append(vid)
        for name in MAGTKD_FEATURE_KEYS:
            contents[name][vid] = [rng.standard_normal(dim).astype(np.float32) for _ in labels]
        contents["speakers"][vid] = list(speakers)
        contents["labels"][vid] = list(labels)
        contents["dia2utt"][vid] = list(utterances)
    return contents


def dump_pickle(path, obj):
    with open(path, "wb") as handle:
        pickle.dump(obj, handle)
    return path


def write_feature_folder(folder, splits, edit=None, dim=DIM):
    """Write the three pickles (``edit(split, contents)`` may corrupt one first); return {split: contents}."""
    folder.mkdir(parents=True, exist_ok=True)
    written = {}
    for seed, (split, dialogues) in enumerate(splits.items()):
        contents = feature_file_contents(dialogues, seed, dim)
        if edit is not None:
            contents = edit(split, contents) or contents
        dump_pickle(folder / FILES[split], contents)
        written[split] = contents
    return written
