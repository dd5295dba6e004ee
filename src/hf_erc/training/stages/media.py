"""The stages of an audio or video model: cross-entropy alone (MAGTKD's ``audio``/``video``), or distilled from
the frozen text model (TelME's ``student``, MAGTKD's ``kd``)."""

from __future__ import annotations

from collections.abc import Sequence

from transformers.utils import logging

from ...data.collators import MediaCollator, PromptCollator
from ...data.views import (
    UTTERANCE_COLUMNS,
    with_length,
    with_media,
    with_prompt_context,
    with_row_index,
    with_vector_column,
)
from ...features.cache import checkpoint_identity
from ...features.encoders import resolve_encoder_path
from ..frozen_outputs import cached_text_outputs
from ..processors import skipped_over_seconds, text_max_length
from ..splits import load_utterance_splits
from .base import (
    RunArguments,
    Stage,
    StageSetup,
    build_stage_model,
    build_stage_processor,
    check_same_labels,
    load_stage_checkpoint,
    text_context_turns,
)

logger = logging.get_logger(__name__)


class MediaStage(Stage):
    """One audio or video model (the one of ``--modalities``) on the utterances that have that modality, their
    waveforms or frames decoded from the media files by the model's processor inside the DataLoader workers,
    trained with its own cross-entropy.

    Utterances whose media is missing (no path, file absent, ``has_<modality>`` false) or longer than the
    model's ``max_clip_seconds`` are left out up front (counted in ``train_results.json``); a file that fails to
    decode during training is dropped from its batch with a warning naming it.
    """

    reads = "utterances that have the modality, decoded from their media files"
    writes = "the audio or video model and its processor"
    usage = (
        "The model reads one utterance's medium through the processor saved with it: `input_values` and "
        "`attention_mask` (audio) or `pixel_values` `[batch, frames, 3, height, width]` (video); "
        "`outputs.logits` is `[batch, num_labels]` and `outputs.utterance_embeddings` the utterance representation."
    )

    def __init__(self, modalities: Sequence[str] = ("audio", "video")):
        self.modalities = tuple(modalities)

    def media_modality(self, modalities: Sequence[str]) -> str:
        chosen = [modality for modality in modalities if modality in self.modalities]
        if len(chosen) != 1 or len(modalities) != 1:
            raise ValueError(
                f"This stage trains one {' or '.join(self.modalities)} model: pass exactly one of them with "
                f"--modalities (got {list(modalities)})."
            )
        return chosen[0]

    def model_class(self, recipe, modalities: Sequence[str]):
        return recipe.stage_models[self.media_modality(modalities)]

    def setup(self, recipe, args: RunArguments) -> StageSetup:
        modality = self.media_modality(args.data.modalities)
        model = build_stage_model(recipe, recipe.stage_models[modality], args, args.model.model_name_or_path)
        teacher = self.load_teacher(recipe, args, model, modality)
        text_model = teacher or model
        source = args.model.processor_name_or_path
        if source is None and args.model.model_name_or_path is not None:
            source = resolve_encoder_path(args.model.model_name_or_path)
        processor = build_stage_processor(
            recipe,
            args,
            model.config,
            text_max_length(args.data, text_model.config),
            tokenizer_source=args.distillation.teacher_model_name_or_path,
            audio_source=source if modality == "audio" else None,
            video_source=source if modality == "video" else None,
        )
        context_turns = None
        if teacher is not None:
            context_turns = text_context_turns(args, teacher, args.distillation.teacher_model_name_or_path)
        datasets, metrics = media_views(
            args.data, modality, processor, with_prompts=teacher is not None, context_turns=context_turns
        )
        setup = StageSetup(
            model=model,
            datasets=datasets,
            data_collator=MediaCollator(modality, processor),
            save_with_model=[processor],
            metrics=metrics,
        )
        text_collator = PromptCollator(processor)
        return self.add_teacher(setup, args, teacher, text_collator)

    def load_teacher(self, recipe, args: RunArguments, model, modality: str):
        """No teacher: this stage trains with cross-entropy only."""
        if args.distillation.teacher_model_name_or_path is not None:
            raise ValueError(
                f"--stage {args.model.stage} trains with cross-entropy only: drop --teacher_model_name_or_path (the "
                "distillation stage reads it)."
            )
        return None

    def add_teacher(self, setup: StageSetup, args: RunArguments, teacher, text_collator) -> StageSetup:
        return setup


class DistilledMediaStage(MediaStage):
    """A :class:`MediaStage` distilled from the recipe's frozen text model ``--teacher_model_name_or_path`` by
    ``ERCTrainer`` (response KD on the logits, feature KD on ``utterance_embeddings``, weights from
    ``DistillationArguments``). By default the teacher runs once over the training set before training and the
    student learns from its cached logits and embeddings; ``--cache_teacher_outputs false`` runs it on every
    batch, from the text inputs the collator adds under the ``teacher_`` prefix."""

    reads = "utterances that have the modality, decoded from their media files, with the text model's outputs"
    writes = "the audio or video model distilled from the text model, and its processor"

    def load_teacher(self, recipe, args: RunArguments, model, modality: str):
        path = args.distillation.teacher_model_name_or_path
        what = "--teacher_model_name_or_path (a trained text model)"
        teacher = load_stage_checkpoint(path, recipe.stage_models["text"], what)
        check_same_labels(model, teacher, f"the teacher {path}")
        student_size = getattr(model.config, f"{modality}_config").hidden_size
        if args.distillation.feature_kd_weight and student_size != teacher.config.projection_size:
            raise ValueError(
                f"Feature KD compares the {modality} model's {student_size}-d embeddings with the teacher's "
                f"{teacher.config.projection_size}-d ones: train the teacher with projection_size={student_size}."
            )
        return teacher

    def add_teacher(self, setup: StageSetup, args: RunArguments, teacher, text_collator) -> StageSetup:
        collator = setup.data_collator
        if not args.distillation.cache_teacher_outputs:
            setup.teacher_model = teacher
            setup.data_collator = MediaCollator(collator.modality, collator.processor, teacher_collator=text_collator)
            return setup
        train = setup.datasets["train"]
        checkpoint = checkpoint_identity(args.distillation.teacher_model_name_or_path)
        outputs = cached_text_outputs(args, teacher, train, text_collator, checkpoint, prefix="teacher")
        num_labels = teacher.config.num_labels
        train = with_vector_column(train, "teacher_logits", list(outputs[:, :num_labels]))
        embeddings = list(outputs[:, num_labels:])
        setup.datasets["train"] = with_vector_column(train, "teacher_utterance_embeddings", embeddings)
        return setup


def media_views(data_args, modality: str, processor, with_prompts: bool, context_turns: int | None = None):
    """Per split, the utterance rows that have ``modality`` (media columns added; the prompt context too when a
    teacher reads it, ``context_turns`` previous turns, the teacher's own window); and how many were skipped, by reason
    (the processor's ``max_clip_seconds`` rule included)."""
    max_clip_seconds = skipped_over_seconds(processor)
    datasets, metrics = {}, {}
    media_columns = (f"{modality}_path", f"has_{modality}", "start", "end")
    for split, dataset in load_utterance_splits(data_args).items():
        if with_prompts:
            view = with_prompt_context(dataset, processor, context_turns, extra_columns=media_columns)
        else:
            keep = [name for name in (*UTTERANCE_COLUMNS, *media_columns) if name in dataset.column_names]
            view = with_row_index(dataset.select_columns(keep))
        view, skipped = with_media(view, modality, max_clip_seconds)
        total = sum(skipped.values())
        metrics[f"{split}_utterances_skipped"] = total
        if split == "train":
            metrics.update({f"train_skipped_{reason}": count for reason, count in skipped.items()})
        logger.warning(
            f"{modality} model, {split}: {len(view)} utterances with {modality}, {total} skipped "
            f"({', '.join(f'{reason}: {count}' for reason, count in skipped.items())})."
        )
        if len(view) == 0:
            raise ValueError(
                f"No {split} utterance of {data_args.data_dir} has usable {modality}: point --data_dir to a release "
                f"with the media files, or train the {modality} model on another dataset."
            )
        if modality == "audio" and "start" in view.column_names:
            # Bucket clips of similar duration (less padding); video clips all give the same number of frames.
            durations = [
                0 if a is None or b is None else int(100 * (b - a)) for a, b in zip(view["start"], view["end"])
            ]
            if any(durations):
                view = with_length(view, durations)
        datasets[split] = view.remove_columns([c for c in media_columns if c in view.column_names])
    return datasets, metrics
