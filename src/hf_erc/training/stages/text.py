"""The stage of a prompted text model (TelME's teacher, MAGTKD's text model)."""

from __future__ import annotations

from collections.abc import Sequence

from ...data.collators import PromptCollator
from ...data.views import with_length, with_prompt_context
from ..processors import fit_embeddings_to_tokenizer, text_max_length
from ..splits import load_utterance_splits
from ..teachers import PREPENDING_METHODS, apply_peft, fold_peft
from .base import RunArguments, Stage, StageSetup, build_stage_model, build_stage_processor, preset_config


class TextStage(Stage):
    """Cross-entropy on dialogue contexts ending in the prompt ``Now <sK> feels <mask>``, built by the model's
    processor; optionally with a PEFT method (``TeacherPeftArguments``) folded into a plain model before the final
    save. The processor (its tokenizer with the speaker markers) is saved with the checkpoint."""

    reads = "utterances with their dialogue context, as prompts"
    writes = "the text model and its processor, read by the distillation and fusion stages"
    usage = (
        "The model reads one utterance with its dialogue context as a prompt, built by the processor saved with it "
        "(`AutoProcessor`): `input_ids` and `attention_mask` `[batch, tokens]` (left-padded) and `prompt_positions` "
        "`[batch]`; `outputs.logits` is `[batch, num_labels]` and `outputs.utterance_embeddings` the projected "
        "utterance representation."
    )

    def model_class(self, recipe, modalities: Sequence[str]):
        return recipe.stage_models["text"]

    def setup(self, recipe, args: RunArguments) -> StageSetup:
        model_class = self.model_class(recipe, args.data.modalities)
        source = args.model.model_name_or_path
        prompt_tokens = args.peft.num_virtual_tokens if args.peft.method in PREPENDING_METHODS else 0
        if source is None:
            # A randomly initialised encoder gets one embedding row per token of the processor's tokenizer (speaker
            # markers included): the processor comes first, from the preset configuration the model is built with.
            config = preset_config(recipe, args, modalities=None)
            processor = build_stage_processor(
                recipe, args, config, text_max_length(args.data, config, prompt_tokens), tokenizer_source=None
            )
            tokenizer = processor.tokenizer
            model = build_stage_model(
                recipe, model_class, args, None, vocab_size=len(tokenizer), pad_token_id=tokenizer.pad_token_id
            )
        else:
            model = build_stage_model(recipe, model_class, args, source)
            max_length = text_max_length(args.data, model.config, prompt_tokens)
            processor = build_stage_processor(recipe, args, model.config, max_length, tokenizer_source=source)
        fit_embeddings_to_tokenizer(model, processor.tokenizer)
        # The prompts' context window travels with the checkpoint: the fusion builds the same prompts from it.
        model.config.text_max_context_turns = args.data.max_context_turns
        apply_peft(model, args.peft)

        datasets = {}
        for split, dataset in load_utterance_splits(args.data).items():
            view = with_prompt_context(dataset, processor, args.data.max_context_turns)
            datasets[split] = with_length(view, prompt_lengths(view, processor))
        return StageSetup(
            model=model,
            datasets=datasets,
            data_collator=PromptCollator(processor),
            finalize_model=fold_peft,
            save_with_model=[processor],
        )


def prompt_lengths(view, processor) -> list[int]:
    """Tokens per row of a prompt view as the processor will cut them (prompt and mask included)."""
    columns = [name for name in ("turn", "context_speakers", "context_texts", "speaker", "text", "carried_speakers")]
    rows = view.select_columns([name for name in columns if name in view.column_names])
    return [processor.prompt_length(processor.render_row(row)) for row in rows]
