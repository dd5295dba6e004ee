"""Fusion stages: the final model trained over the frozen stage models' utterance embeddings, computed once
per split and cached on disk. TelME's fusion labels utterances one at a time; MAGTKD's is dialogue-level."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ...data.collators import DialogueCollator, PromptCollator, UtteranceEmbeddingCollator
from ...data.dialogues import group_dialogues
from ...data.views import MEDIA_SOURCE_COLUMNS, with_prompt_context, with_vector_column
from ...features.cache import checkpoint_identity
from ..frozen_outputs import utterance_embedding_columns
from ..processors import text_max_length
from ..splits import load_utterance_splits
from .base import (
    STAGE_CHECKPOINT_OPTIONS,
    RunArguments,
    Stage,
    StageSetup,
    build_stage_processor,
    check_same_labels,
    load_stage_checkpoint,
    preset_name,
    text_context_turns,
)


class FusionStage(Stage):
    """The frozen stage checkpoints of ``--modalities`` (text: ``--teacher_model_name_or_path``; audio and video:
    ``--audio_student_name_or_path``, ``--video_student_name_or_path``), each read once, embed every utterance
    of every split once (cached); the fusion trains on those embeddings. Utterances without a medium keep their
    row and have that modality masked.

    Subclasses build the fusion model (:meth:`build_model`), shape the embeddings into training rows
    (:meth:`training_view`) and batch them (:meth:`collator`).
    """

    reads = "the frozen stage models' utterance embeddings, computed once per split and cached"
    # Fusion settings of default preprocessing (``--preprocessing reference`` keeps the authors' values); a
    # ``--config_overrides`` field wins over them. Each is a documented field of the model's configuration and a
    # row of the model's differences table (docs/models/<model>.md).
    default_fusion_settings: Mapping[str, Any] = {}

    def fusion_overrides(self, args: RunArguments) -> dict:
        """The fusion's configuration fields of this run: :attr:`default_fusion_settings` in default preprocessing,
        then ``--config_overrides``."""
        settings = dict(self.default_fusion_settings) if args.data.preprocessing != "reference" else {}
        return {**settings, **dict(args.model.config_overrides)}

    def model_class(self, recipe, modalities: Sequence[str]):
        if "text" not in modalities:
            raise ValueError(
                f"The {recipe.name} fusion is anchored on text: --modalities must include text (got {list(modalities)})."
            )
        return recipe.model_class

    def setup(self, recipe, args: RunArguments) -> StageSetup:
        modalities = list(args.data.modalities)
        self.model_class(recipe, modalities)
        encoder_overrides = sorted(set(args.model.config_overrides) & {"text_config", "audio_config", "video_config"})
        if encoder_overrides:
            raise ValueError(
                f"--config_overrides sets {encoder_overrides}, but the fusion stage takes the encoders from the stage "
                "checkpoints: override only fusion settings (hidden sizes, dropout, loss weights, ...)."
            )
        paths = {"text": args.distillation.teacher_model_name_or_path}
        paths.update({m: getattr(args.model, f"{m}_student_name_or_path") for m in modalities if m != "text"})
        stage_models = {
            modality: load_stage_checkpoint(
                path,
                recipe.stage_models[modality],
                f"{STAGE_CHECKPOINT_OPTIONS[modality]} (the trained {modality} stage)",
            )
            for modality, path in paths.items()
        }
        text_model = stage_models["text"]
        for modality, stage_model in stage_models.items():
            if modality != "text":
                check_same_labels(stage_model, text_model, f"the text model {paths['text']}")
            stage_model.requires_grad_(False).eval()
        model = self.build_model(recipe, args, stage_models)

        processor = build_stage_processor(
            recipe,
            args,
            text_model.config,
            text_max_length(args.data, text_model.config),
            tokenizer_source=paths["text"],
            audio_source=paths.get("audio"),
            video_source=paths.get("video"),
        )
        text_collator = PromptCollator(processor)
        checkpoints = {modality: checkpoint_identity(path) for modality, path in paths.items()}
        media_models = {modality: stage_models[modality] for modality in modalities if modality != "text"}

        context_turns = text_context_turns(args, text_model, paths["text"])
        datasets, metrics = {}, {}
        for split, dataset in load_utterance_splits(args.data).items():
            view = with_prompt_context(dataset, processor, context_turns, MEDIA_SOURCE_COLUMNS)
            columns, counts = utterance_embedding_columns(
                args, view, split, text_model, media_models, text_collator, processor, checkpoints
            )
            metrics.update({f"{split}_utterances_with_{modality}": count for modality, count in counts.items()})
            metrics[f"{split}_utterances"] = len(view)
            datasets[split] = self.training_view(view, columns, modalities)
        return StageSetup(
            model=model,
            datasets=datasets,
            data_collator=self.collator(model, stage_models),
            save_with_model=self.saved_with_model(processor),
            metrics=metrics,
        )

    def build_model(self, recipe, args: RunArguments, stage_models: Mapping[str, Any]):
        raise NotImplementedError

    def training_view(self, view, columns: Mapping[str, list], modalities: Sequence[str]):
        raise NotImplementedError

    def collator(self, model, stage_models: Mapping[str, Any]):
        raise NotImplementedError

    def saved_with_model(self, processor) -> list:
        return []


class TelMEFusionStage(FusionStage):
    """TelME's attention-based modality shifting fusion, inside the whole model assembled from the stage models
    (teacher and students frozen); its processor is saved with it, so the checkpoint runs on raw inputs."""

    writes = "the whole TelME model (teacher, students and fusion) and its processor"
    usage = (
        "The model reads a raw utterance through the processor saved with it (`AutoProcessor`): the dialogue-context "
        "prompt (`input_ids`, `attention_mask`, `prompt_positions`), the audio (`input_values`, "
        "`audio_attention_mask`), the frames (`pixel_values`) and `modality_mask` `[batch, 3]`; or cached "
        "`text_embeddings`, `audio_embeddings`, `video_embeddings`. `outputs.logits` is `[batch, num_labels]`."
    )

    # The reference bounds the audio/video shift at 0.1 (MELD; IEMOCAP 0.2) of the text embedding's norm: the
    # fusion can then never overrule the teacher, even where the text is the least reliable input (on planted-signal
    # data with equally reliable inputs it stays at the text's accuracy). 1.0 lets the shift reach the text's norm.
    default_fusion_settings = {"fusion_beta_shift": 1.0}

    def build_model(self, recipe, args: RunArguments, stage_models):
        model = recipe.model_class.from_stage_models(
            stage_models["text"],
            stage_models.get("audio"),
            stage_models.get("video"),
            modalities=list(args.data.modalities),
            **self.fusion_overrides(args),
        )
        return model.freeze_unimodal_models()

    def training_view(self, view, columns, modalities):
        view = view.select_columns(["dialogue_id", "turn", "emotion", "row"])
        for name, values in columns.items():
            view = with_vector_column(view, name, values)
        return view

    def collator(self, model, stage_models):
        return UtteranceEmbeddingCollator(
            audio_size=model.config.audio_config.hidden_size, video_size=model.config.video_config.hidden_size
        )

    def saved_with_model(self, processor) -> list:
        return [processor]


# Settings of MAGTKD's unimodal stages that the fusion's configuration records from the text model.
_MAGTKD_STAGE_FIELDS = (
    "projection_size",
    "text_num_virtual_tokens",
    "num_speaker_tokens",
    "text_max_length",
    "audio_sampling_rate",
    "audio_max_seconds",
    "max_clip_seconds",
)


class MAGTKDFusionStage(FusionStage):
    """MAGTKD's anchor gated transformer: dialogue-level, over the 768-d utterance embeddings of the frozen text
    model and the (distilled) audio and video models, grouped into dialogues and batched by ``DialogueCollator``."""

    writes = "the MAGTKD fusion, which labels every turn of a dialogue from its stage models' utterance embeddings"
    usage = (
        "The model takes a padded batch of dialogues of the stage models' utterance embeddings: `text_features`, "
        "`audio_features`, `video_features` `[batch, turns, hidden_size]`, `attention_mask` `[batch, turns]`, "
        "`speaker_ids` `[batch, turns]` and optionally `modality_mask` `[batch, turns, 3]`; `outputs.logits` is "
        "`[batch, turns, num_labels]`."
    )
    unit = "dialogues"
    # The anchor also reads its own turn's enhanced audio and video, and every input feature is scaled to unit RMS
    # (MAGTKDConfig.anchor_reads_aligned_features, normalize_features; docs/models/magtkd.md).
    default_fusion_settings = {"anchor_reads_aligned_features": True, "normalize_features": True}

    def build_model(self, recipe, args: RunArguments, stage_models):
        text_model = stage_models["text"]
        # The fusion's configuration records the encoders it was trained over (it has no input projection).
        encoders = {
            f"{m}_config": getattr(stage_models.get(m, text_model).config, f"{m}_config") for m in ("text", "audio", "video")
        }
        stage_fields = {name: getattr(text_model.config, name) for name in _MAGTKD_STAGE_FIELDS}
        fields = {**stage_fields, **encoders, **self.fusion_overrides(args)}
        config = recipe.config_class.for_dataset(preset_name(args), modalities=list(args.data.modalities), **fields)
        sizes = self._embedding_sizes(stage_models)
        wrong = {m: size for m, size in sizes.items() if size != config.hidden_size}
        if wrong:
            raise ValueError(
                f"MAGTKD's fusion reads {config.hidden_size}-d utterance features (hidden_size, no input projection) "
                f"but the stage models give {wrong}: set config_overrides hidden_size to their size."
            )
        return recipe.model_class(config)

    @staticmethod
    def _embedding_sizes(stage_models) -> dict[str, int]:
        sizes = {"text": stage_models["text"].config.projection_size}
        for modality, model in stage_models.items():
            if modality != "text":
                sizes[modality] = getattr(model.config, f"{modality}_config").hidden_size
        return sizes

    def training_view(self, view, columns, modalities):
        view = view.select_columns(["dialogue_id", "turn", "speaker", "emotion"])
        for name, values in columns.items():
            view = with_vector_column(view, name.replace("_embeddings", "_features"), values)
        kept = ["dialogue_id", "turn", "speaker", "emotion", *(f"{m}_features" for m in modalities)]
        return group_dialogues(view, columns=kept)

    def collator(self, model, stage_models):
        return DialogueCollator(
            modalities=model.config.modalities,
            feature_dims=self._embedding_sizes(stage_models),
            speaker_vocab=model.config.speaker_vocab,
            unknown_speaker_id=model.config.unknown_speaker_id,
            num_speakers=model.config.num_speakers,
        )
