"""The stage of dialogue-level models over utterance feature vectors (SDT, CMATH)."""

from __future__ import annotations

from collections.abc import Sequence

from ...data.collators import DialogueCollator
from ..splits import feature_dims, load_dialogue_splits, speaker_vocab
from .base import RunArguments, Stage, StageSetup, preset_config


class DialogueStage(Stage):
    """The whole model on dialogue rows of frozen-encoder features, batched by ``DialogueCollator``; optionally
    distilled from a frozen hf_erc teacher (``--teacher_model_name_or_path``, read with ``AutoModel``)."""

    reads = "dialogues of per-utterance feature vectors (`hf-erc extract-features` or a feature pickle)"
    writes = "the whole model, which labels every turn of a dialogue from its utterance features"
    usage = (
        "The model takes a padded batch of dialogues: per-modality feature tensors `[batch, turns, dim]` "
        "(`text_features`, `audio_features`, `video_features`), `attention_mask` `[batch, turns]`, `speaker_ids` "
        "`[batch, turns]` and optionally `modality_mask` `[batch, turns, 3]`; `outputs.logits` is `[batch, turns, "
        "num_labels]` over the labels in `config.id2label`."
    )
    unit = "dialogues"

    def model_class(self, recipe, modalities: Sequence[str]):
        return recipe.model_class

    def setup(self, recipe, args: RunArguments) -> StageSetup:
        dialogues = load_dialogue_splits(args.data)
        dims = feature_dims(dialogues["train"], args.data.modalities)
        model = self.build_model(recipe, args, dims)
        # Stored in the config so that inference (hf_erc.pipelines) numbers speakers and names labels as training did.
        model.config.speaker_vocab = speaker_vocab(args.data)
        model.config.dataset_name = args.data.dataset_name
        collator = DialogueCollator(
            modalities=args.data.modalities,
            feature_dims=dims,
            speaker_vocab=model.config.speaker_vocab,
            num_speakers=args.data.num_speakers or getattr(model.config, "num_speakers", None),
        )
        return StageSetup(
            model=model, datasets=dialogues, data_collator=collator, teacher_model=self.load_teacher(args)
        )

    @staticmethod
    def build_model(recipe, args: RunArguments, dims: dict[str, int]):
        """The model from ``--model_name_or_path`` or from its dataset preset, with feature sizes matching the data."""
        overrides = dict(args.model.config_overrides)
        source = args.model.model_name_or_path
        if source is not None:
            model = recipe.model_class.from_pretrained(source, **overrides)
        else:
            for modality, dim in dims.items():
                key = f"{modality}_dim"
                if key in overrides and overrides[key] != dim:
                    raise ValueError(
                        f"config_overrides sets {key}={overrides[key]} but the {modality} features of "
                        f"{args.data.data_dir} have {dim} values: remove the override or use the matching features."
                    )
            fields = {f"{modality}_dim": dim for modality, dim in dims.items()}
            model = recipe.model_class(preset_config(recipe, args, list(args.data.modalities), **fields))
        for modality, dim in dims.items():
            expected = getattr(model.config, f"{modality}_dim", None)
            if expected is not None and expected != dim:
                raise ValueError(
                    f"{source} expects {expected}-d {modality} features but {args.data.data_dir} has {dim}-d ones: "
                    "train from the preset instead, or use the features it was trained on."
                )
        return model

    @staticmethod
    def load_teacher(args: RunArguments):
        """The frozen teacher of a distillation run, any registered hf_erc model; ``None`` without one."""
        path = args.distillation.teacher_model_name_or_path
        if path is None:
            return None
        from transformers import AutoModel

        import hf_erc.models  # noqa: F401  (registers the hf_erc model types with the Auto classes)

        return AutoModel.from_pretrained(path)
