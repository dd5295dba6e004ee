"""The stage of a prompted text model (TelME's teacher, MAGTKD's text model)."""

from __future__ import annotations

from collections.abc import Sequence

from ...data.collators import UtteranceCollator
from ...data.views import with_dialogue_context, with_length
from ..processors import fit_embeddings_to_tokenizer, load_speaker_tokenizer, text_max_length
from ..splits import load_utterance_splits
from .base import RunArguments, Stage, StageSetup, build_stage_model, preset_config


class TextStage(Stage):
    """Cross-entropy on dialogue contexts ending in the prompt ``Now <sK> feels <mask>``, optionally with a PEFT
    method (``TeacherPeftArguments``) folded into a plain model before the final save. Its tokenizer, with the
    speaker markers added, is saved with the checkpoint."""

    reads = "utterances with their dialogue context, as prompts"
    writes = "the text model (and its tokenizer with the speaker markers), read by the distillation and fusion stages"
    usage = (
        "The model reads one utterance with its dialogue context as a prompt: `input_ids` and `attention_mask` "
        "`[batch, tokens]` (left-padded, from the tokenizer saved with it) and `prompt_positions` `[batch]`; "
        "`outputs.logits` is `[batch, num_labels]` and `outputs.utterance_embeddings` the projected utterance "
        "representation."
    )

    def model_class(self, recipe, modalities: Sequence[str]):
        return recipe.stage_models["text"]

    def setup(self, recipe, args: RunArguments) -> StageSetup:
        from ...teachers import PREPENDING_METHODS, apply_peft, fold_peft

        model_class = self.model_class(recipe, args.data.modalities)
        source = args.model.model_name_or_path
        config = preset_config(recipe, args, modalities=None) if source is None else recipe.config_class()
        num_speaker_tokens = config.num_speaker_tokens
        tokenizer = load_speaker_tokenizer(args.peft.tokenizer_name_or_path or source, num_speaker_tokens)
        # A randomly initialised encoder gets one embedding row per token of its tokenizer.
        fields = {"vocab_size": len(tokenizer), "pad_token_id": tokenizer.pad_token_id} if source is None else {}
        model = build_stage_model(recipe, model_class, args, source, **fields)
        fit_embeddings_to_tokenizer(model, tokenizer)
        prompt_tokens = args.peft.num_virtual_tokens if args.peft.method in PREPENDING_METHODS else 0
        collator = UtteranceCollator(tokenizer, max_length=text_max_length(args.data, model.config, prompt_tokens))
        apply_peft(model, args.peft)

        datasets = {}
        for split, dataset in load_utterance_splits(args.data).items():
            view = with_dialogue_context(dataset, args.data.max_context_turns)
            datasets[split] = with_length(view, prompt_lengths(view, collator))
        return StageSetup(
            model=model, datasets=datasets, data_collator=collator, finalize_model=fold_peft, save_with_model=[tokenizer]
        )


def prompt_lengths(view, collator: UtteranceCollator) -> list[int]:
    """Tokens per row of a text view as ``collator`` will cut them (prompt and mask included)."""
    columns = ["context_speakers", "context_texts", "speaker", "text"]
    texts = [collator.render(row) for row in view.select_columns(columns)]
    encoded = collator.tokenizer(texts, add_special_tokens=False)["input_ids"]
    return [min(len(ids) + 1, collator.max_length) for ids in encoded]
