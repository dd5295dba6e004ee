"""``hf-erc quickstart``: the whole path on real MELD text, offline, on a CPU in minutes (or on IEMOCAP's, with
``--dataset iemocap --data-dir IEMOCAP_full_release``).

Steps: read the MELD CSVs (IEMOCAP: the release, split as TelME's and MAGTKD's authors split it, 5,163 / 647 / 1,623
turns, written to a prepared folder); adapt all-MiniLM-L6-v2 to the dataset's emotions on the training utterances
(two epochs, as the papers' text features come from an encoder fine-tuned on the dataset) and embed every utterance
with it (cached); train text-only SDT on those features (dialogue context, speakers); print the test table; reload
the checkpoint with ``AutoModel.from_pretrained(..., trust_remote_code=True)`` in a process where hf_erc cannot be
imported; label a sample conversation. ``--frozen-encoder`` skips the fine-tuning (about a minute instead of about
six on MELD, 4 points lower).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import textwrap
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from ..data.collators import DialogueCollator
from ..data.dialogues import group_dialogues
from ..data.export import save_parquet_repo
from ..data.prepare import dataset_card, is_prepared_folder, load_erc_dataset
from ..features.encoders import FINE_TUNING_FILE
from ..features.extract import extract_features_to_disk
from ..inference.checkpoints import foreign_code_files, load_checkpoint_model
from ..inference.pipelines import pipeline
from ..training import RunArguments, train
from ..training.finetune import TextFineTuningArguments, fine_tune_text_encoder_on_disk
from .predict import format_predictions

MELD_CSV = "train_sent_emo.csv"
RESOURCES = Path(__file__).resolve().parents[1] / "resources"
SAMPLE_CONVERSATION = RESOURCES / "sample_conversation.json"
# configs/sdt-<dataset>-text.yaml, shipped in the package as resources.
TRAINING_CONFIGS = {dataset: RESOURCES / "configs" / f"sdt-{dataset}-text.yaml" for dataset in ("meld", "iemocap")}
TRAINING_CONFIG = TRAINING_CONFIGS["meld"]
DATASET_TITLES = {"meld": "MELD", "iemocap": "IEMOCAP"}

RELOAD_SCRIPT = textwrap.dedent(
    """
    import sys
    sys.modules["hf_erc"] = None  # prove the checkpoint needs only torch + transformers
    import torch
    from transformers import AutoModel
    checkpoint, batch_file = sys.argv[1], sys.argv[2]
    model = AutoModel.from_pretrained(checkpoint, trust_remote_code=True).eval()
    batch = torch.load(batch_file)
    expected = batch.pop("expected_logits")
    with torch.no_grad():
        logits = model(**batch).logits
    print(type(model).__module__, float((logits - expected).abs().max()))
    """
)


def find_meld_dir(explicit: str | None = None) -> Path:
    """The MELD CSV folder: ``explicit`` (``--meld-dir``), else ``$HF_ERC_MELD_DIR``, else the first
    ``shared/data/meld`` found next to the working directory or the checkout.

    A folder the user named (the argument or the variable) is the folder used: when it lacks the CSVs that is an
    error naming it, never a silent switch to another copy. The search runs only when nothing was named."""
    named = [(explicit, "--meld-dir"), (os.environ.get("HF_ERC_MELD_DIR"), "$HF_ERC_MELD_DIR")]
    for folder, source in named:
        if folder:
            if not (Path(folder) / MELD_CSV).is_file():
                raise FileNotFoundError(
                    f"{source} {folder} has no {MELD_CSV}: point it at the folder with MELD's *_sent_emo.csv files."
                )
            return Path(folder)
    for base in (Path.cwd(), Path(__file__).resolve().parents[4]):
        for candidate in (base.parent / "shared" / "data" / "meld", base / "shared" / "data" / "meld"):
            if (candidate / MELD_CSV).is_file():
                return candidate
    raise FileNotFoundError(
        "MELD CSVs not found (looked for shared/data/meld beside the working folder and the checkout). Download "
        "MELD.Raw from the MELD authors and pass --meld-dir to the folder holding train_sent_emo.csv, "
        "dev_sent_emo.csv and test_sent_emo.csv."
    )


def find_iemocap_dir(explicit: str | None) -> Path:
    """The IEMOCAP folder the user named: a raw ``IEMOCAP_full_release`` or a folder ``hf-erc prepare`` wrote. There is
    no default: the release's license keeps it out of this project."""
    if not explicit:
        raise FileNotFoundError(
            "--dataset iemocap needs --data-dir: the IEMOCAP_full_release folder (USC SAIL distributes it under a "
            "license that does not allow us to ship it) or a folder `hf-erc prepare iemocap` wrote."
        )
    folder = Path(explicit)
    if not is_prepared_folder(folder) and not any(folder.glob("Session[1-5]")):
        raise FileNotFoundError(
            f"--data-dir {folder} is neither IEMOCAP_full_release (Session1..Session5 folders) nor a folder `hf-erc "
            "prepare iemocap` wrote: point it at one of them."
        )
    return folder


def run_quickstart(
    data_dir: str | None = None,
    output_dir: str = "outputs/quickstart",
    epochs: int = 30,
    text_encoder: str = "minilm",
    train_overrides: Mapping[str, Any] | None = None,
    fine_tune_encoder: bool = True,
    seed: int = 42,
    dataset: str = "meld",
) -> dict[str, float]:
    """Run every step on ``dataset`` (``"meld"``: the CSV folder ``data_dir``, found when not given; ``"iemocap"``: the
    release or a prepared folder, required); returns the test metrics (``weighted_f1``, ``accuracy``, ``macro_f1``,
    ``f1_<label>`` ...).

    ``train_overrides``: more fields of SDT's training arguments (e.g. ``{"disable_tqdm": True}``), over
    ``configs/sdt-<dataset>-text.yaml``.
    """
    if dataset not in TRAINING_CONFIGS:
        raise ValueError(f"--dataset must be one of {sorted(TRAINING_CONFIGS)}, got {dataset!r}.")
    title, output = DATASET_TITLES[dataset], Path(output_dir)
    features_dir, checkpoint = output / f"{dataset}-features", output / f"sdt-{dataset}-text"
    if dataset == "meld":
        source = find_meld_dir(data_dir)
        print(f"[1/5] MELD text from {source}", end="")
    else:
        source = find_iemocap_dir(data_dir)
        if not is_prepared_folder(source):
            # The authors' split (their 12 validation dialogues, session 5 as test, their order), read once: the
            # fine-tuning and the features read the same prepared folder.
            prepared = output / "iemocap"
            print(f"[1/5] IEMOCAP from {source}, split as TelME's and MAGTKD's authors did -> {prepared}")
            dataset_dict = load_erc_dataset("iemocap", source, validation_split="reference", cache_dir=output / "cache")
            card_text, card_metadata = dataset_card("iemocap", dataset_dict)
            save_parquet_repo(dataset_dict, prepared, card_text, **card_metadata)
            source = prepared
        print(f"[1/5] IEMOCAP text from {source}", end="")
    if fine_tune_encoder:
        encoder_dir = output / f"{text_encoder}-{dataset}"
        print(f"; fine-tuning {text_encoder} on the training utterances' emotions -> {encoder_dir}")
        if (encoder_dir / FINE_TUNING_FILE).is_file():
            print(f"      {encoder_dir} is already fine-tuned (delete it to fine-tune again)")
        else:
            metrics = fine_tune_text_encoder_on_disk(
                dataset, source, encoder_dir, TextFineTuningArguments(text_encoder=text_encoder, seed=seed)
            )
            print(f"      utterance classifier, validation weighted F1 {100 * metrics['weighted_f1']:.2f}")
        text_encoder = str(encoder_dir)
        print(f"      embedding every utterance with it -> {features_dir}")
    else:
        print(f"; frozen {text_encoder} utterance embeddings -> {features_dir}")
    dataset_dict, _ = extract_features_to_disk(
        dataset, source, features_dir, text_encoder=text_encoder, cache_dir=output / "feature-cache"
    )

    config = TRAINING_CONFIGS[dataset]
    print(f"[2/5] Training text-only SDT ({config.name}, {epochs} epochs) -> {checkpoint}")
    arguments = RunArguments.from_config(
        config, data_dir=str(features_dir), output_dir=str(checkpoint), num_train_epochs=epochs, seed=seed,
        **(train_overrides or {}),
    )
    results = train(arguments)

    print("[3/5] Reloading the checkpoint with AutoModel(trust_remote_code=True) in a process without hf_erc")
    foreign = foreign_code_files(checkpoint)
    if foreign:  # the reload runs the checkpoint's code: only ever hf_erc's own
        raise RuntimeError(
            f"{checkpoint} holds Python files that are not hf_erc's own model code ({', '.join(foreign)}); the "
            "reload check would run them, so it stops here. Delete the folder and run the quickstart again."
        )
    model = load_checkpoint_model(checkpoint).eval()
    dialogue = group_dialogues(dataset_dict["test"].select(range(min(20, len(dataset_dict["test"])))))[0]
    batch = DialogueCollator(modalities=["text"], num_speakers=model.config.num_speakers, label_column=None)([dialogue])
    with torch.no_grad():
        batch["expected_logits"] = model(**batch).logits
    batch_file = output / "reload_check_batch.pt"
    torch.save(batch, batch_file)
    completed = subprocess.run(
        [sys.executable, "-c", RELOAD_SCRIPT, str(checkpoint), str(batch_file)], capture_output=True, text=True, check=False
    )
    if completed.returncode != 0:
        raise RuntimeError(f"Reloading {checkpoint} without hf_erc failed:\n{completed.stderr[-3000:]}")
    module, difference = completed.stdout.split()[-2:]
    print(f"      loaded {module}; max |logits difference| vs. hf_erc = {float(difference):.2e}")

    print(f"[4/5] Labelling the sample conversation {SAMPLE_CONVERSATION.name}")
    print(format_predictions(pipeline(str(checkpoint))(SAMPLE_CONVERSATION)))
    test = {key[5:]: value for key, value in results.test.items() if isinstance(value, float)}
    floor = " (frozen-MiniLM logistic-regression floor: weighted F1 55.7, accuracy 59.1)" if dataset == "meld" else ""
    print(
        f"[5/5] Test macro F1 {100 * test.get('macro_f1', float('nan')):.2f}; per class: "
        + ", ".join(f"{name} {100 * value:.1f}" for name, value in _per_class(test).items())
        + f"{floor}. Checkpoint: {checkpoint}"
    )
    print(
        f"{title} test weighted F1 {100 * test.get('weighted_f1', float('nan')):.2f}, accuracy "
        f"{100 * test.get('accuracy', float('nan')):.2f}"
    )
    return test


def _per_class(metrics: Mapping[str, float]) -> dict[str, float]:
    return {key[3:]: value for key, value in metrics.items() if key.startswith("f1_")}


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``hf-erc quickstart``."""
    parser = subparsers.add_parser(
        "quickstart", help="Train and evaluate text-only SDT on real MELD (or IEMOCAP) text, offline, then predict."
    )
    parser.add_argument(
        "--dataset", choices=sorted(TRAINING_CONFIGS), default="meld",
        help="meld (default; the CSVs are found in ../shared/data/meld) or iemocap (needs --data-dir).",
    )  # fmt: skip
    parser.add_argument(
        "--data-dir", "--meld-dir", dest="data_dir", default=None,
        help="MELD: the folder with *_sent_emo.csv (default: ../shared/data/meld). IEMOCAP: IEMOCAP_full_release or "
        "a folder `hf-erc prepare iemocap` wrote.",
    )  # fmt: skip
    parser.add_argument("--output-dir", default="outputs/quickstart")
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--text-encoder", default="minilm")
    parser.add_argument(
        "--frozen-encoder",
        action="store_true",
        help="Embed with the text encoder as it is (about a minute on 2 cores; test weighted F1 about 57) instead of "
        "fine-tuning it on MELD's training utterances first (about six minutes; about 61).",
    )
    parser.add_argument("--seed", type=int, default=42, help="Seed of the fine-tuning and of SDT's training.")
    parser.set_defaults(func=_run_quickstart_command)


def _run_quickstart_command(args: argparse.Namespace) -> int:
    run_quickstart(
        args.data_dir, args.output_dir, args.epochs, args.text_encoder, fine_tune_encoder=not args.frozen_encoder,
        seed=args.seed, dataset=args.dataset,
    )
    return 0
