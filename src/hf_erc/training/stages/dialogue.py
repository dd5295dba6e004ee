"""The stage of dialogue-level models over utterance feature vectors (SDT, CMATH)."""

from __future__ import annotations

from collections.abc import Sequence

from transformers import AutoModel, PreTrainedModel

from ... import models  # noqa: F401  (registers the hf_erc model types with the Auto classes, for the teacher)
from ...data.collators import DialogueCollator
from ..arguments import RunArguments
from ..splits import feature_dims, load_dialogue_splits, speaker_vocab
from .base import Stage, StageSetup, preset_config


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

    def model_class(self, recipe, modalities: Sequence[str]) -> type[PreTrainedModel]:
        return recipe.model_class

    def setup(self, recipe, args: RunArguments) -> StageSetup:
        dialogues = load_dialogue_splits(args.data)
        dims = feature_dims(dialogues["train"], args.data.modalities)
        model = self.build_model(recipe, args, self.size_fields(dims))
        # Stored in the config so that inference (hf_erc.inference.pipelines) numbers speakers and names labels as training did.
        model.config.speaker_vocab = speaker_vocab(args.data)
        model.config.dataset_name = args.data.dataset_name
        collator = DialogueCollator(
            modalities=args.data.modalities,
            feature_dims=dims,
            speaker_vocab=model.config.speaker_vocab,
            # MAGTKD's configuration field (features stage); the other families have none.
            unknown_speaker_id=getattr(model.config, "unknown_speaker_id", None),
            num_speakers=args.data.num_speakers or getattr(model.config, "num_speakers", None),
        )
        return StageSetup(
            model=model, datasets=dialogues, data_collator=collator, teacher_model=self.load_teacher(args)
        )

    @staticmethod
    def size_fields(dims: dict[str, int]) -> dict[str, int]:
        """Configuration fields that give the feature sizes: ``<modality>_dim`` (SDT, CMATH)."""
        return {f"{modality}_dim": dim for modality, dim in dims.items()}

    @staticmethod
    def build_model(recipe, args: RunArguments, fields: dict[str, int]) -> PreTrainedModel:
        """The model from ``--model_name_or_path`` or from its dataset preset, with feature sizes matching the data."""
        overrides = dict(args.model.config_overrides)
        source = args.model.model_name_or_path
        if source is not None:
            model = recipe.model_class.from_pretrained(source, use_safetensors=True, **overrides)
        else:
            for key, dim in fields.items():
                if key in overrides and overrides[key] != dim:
                    raise ValueError(
                        f"config_overrides sets {key}={overrides[key]} but the features of {args.data.data_dir} "
                        f"need {dim}: remove the override or use the matching features."
                    )
            model = recipe.model_class(preset_config(recipe, args, list(args.data.modalities), **fields))
        for key, dim in fields.items():
            expected = getattr(model.config, key, None)
            if expected is not None and expected != dim:
                raise ValueError(
                    f"{source} has {key}={expected} but the features of {args.data.data_dir} need {dim}: train from "
                    "the preset instead, or use the features it was trained on."
                )
        return model

    @staticmethod
    def load_teacher(args: RunArguments) -> PreTrainedModel | None:
        """The frozen teacher of a distillation run, any registered hf_erc model; ``None`` without one."""
        path = args.distillation.teacher_model_name_or_path
        if path is None:
            return None
        return AutoModel.from_pretrained(path, trust_remote_code=False, use_safetensors=True)


class FeatureFusionStage(DialogueStage):
    """MAGTKD's fusion trained (or evaluated, with ``--do_train false``) on utterance features already extracted:
    the authors' first-stage pickles (``--data_dir`` holding ``first_stage_*_features.pkl``) or hf_erc feature
    columns. The fusion has no input projection: every feature size is its ``hidden_size``."""

    reads = "dialogues of first-stage utterance features (the authors' pickles or feature columns)"
    writes = "the MAGTKD fusion, which labels every turn of a dialogue from its utterance features"

    @staticmethod
    def load_teacher(args: RunArguments) -> None:
        """None: the features already come from the stage models (``--teacher_model_name_or_path`` and the
        students' paths of a fusion config are not read here)."""
        return None

    @staticmethod
    def size_fields(dims: dict[str, int]) -> dict[str, int]:
        sizes = set(dims.values())
        if len(sizes) != 1:
            raise ValueError(f"MAGTKD's fusion reads features of one size (its hidden_size); these have {dims}.")
        return {"hidden_size": sizes.pop()}
