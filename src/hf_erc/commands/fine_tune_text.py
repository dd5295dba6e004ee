"""``hf-erc fine-tune-text``: adapt a text encoder to a dataset's emotions before ``extract-features``."""

from __future__ import annotations

import argparse

from ..locking import OutputFolderLock
from ..training.finetune import TextFineTuningArguments, fine_tune_text_encoder_on_disk


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``hf-erc fine-tune-text``."""
    defaults = TextFineTuningArguments()
    parser = subparsers.add_parser(
        "fine-tune-text",
        help="Adapt a text encoder to a dataset's emotions (training split only) before extract-features.",
        description=(
            "Fine-tune a text encoder on the training utterances' emotions and save the encoder alone; then "
            "`hf-erc extract-features --text-encoder OUTPUT` computes features with it (as the papers' fine-tuned "
            "RoBERTa features)."
        ),
    )
    parser.add_argument("dataset", choices=["meld", "iemocap"])
    parser.add_argument("--data-dir", required=True, help="Raw release folder, or the output of `hf-erc prepare`.")
    parser.add_argument("--output", required=True, help="Folder to write the fine-tuned encoder and its tokenizer to.")
    parser.add_argument("--text-encoder", default=defaults.text_encoder, help="Encoder to start from (Hub id, folder, or 'minilm').")
    parser.add_argument("--pooling", default=defaults.pooling, choices=["mean", "first"])
    parser.add_argument("--max-length", type=int, default=defaults.max_length)
    parser.add_argument("--epochs", type=float, default=defaults.num_train_epochs)
    parser.add_argument("--learning-rate", type=float, default=defaults.learning_rate)
    parser.add_argument("--batch-size", type=int, default=defaults.batch_size)
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.set_defaults(func=run_fine_tune_text)


def run_fine_tune_text(args: argparse.Namespace) -> int:
    settings = TextFineTuningArguments(
        text_encoder=args.text_encoder, pooling=args.pooling, max_length=args.max_length, num_train_epochs=args.epochs,
        learning_rate=args.learning_rate, batch_size=args.batch_size, seed=args.seed,
    )
    with OutputFolderLock(args.output, option="--output"):
        metrics = fine_tune_text_encoder_on_disk(args.dataset, args.data_dir, args.output, settings)
    if metrics:
        print(f"Validation of the utterance classifier: weighted F1 {100 * metrics['weighted_f1']:.2f}, macro F1 {100 * metrics['macro_f1']:.2f}")
    print(f"Fine-tuned encoder: {args.output} (use it with `hf-erc extract-features --text-encoder {args.output}`)")
    return 0

