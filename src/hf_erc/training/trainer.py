"""``ERCTrainer``: the ``transformers.Trainer`` of every hf_erc model and stage.

It adds to the stock Trainer what emotion recognition in conversation needs:

* the loss is the model's own ``loss`` (its forward computes CE, self-distillation and the
  like); each part in ``loss_components`` is logged, averaged over the logging window;
* with a ``teacher_model``, distillation from that frozen teacher (response- and
  feature-based, see :mod:`hf_erc.training.losses`) is added with the weights of
  :class:`~hf_erc.training.arguments.DistillationArguments`. A teacher that reads other
  inputs than the student (TelME: text for an audio student) finds its own under the
  ``teacher_`` prefix (``teacher_input_ids`` -> ``input_ids``); a batch that carries the
  teacher's outputs precomputed (``cached_teacher_<output>``, e.g. ``cached_teacher_logits``)
  is distilled from them without running any teacher;
* evaluation hands only the fused ``logits`` (``[B, T, C]``) to ``compute_metrics``: the
  Trainer pads batches of different dialogue lengths with ``-100`` in both logits and
  labels, and those positions are ignored by the metrics;
* dialogues are bucketed by length with a sampler that is reseeded every epoch, so all
  processes draw the same batches and a resumed run draws the ones it would have drawn;
* outside training, each evaluation writes its confusion matrix (PNG and JSON) to
  ``output_dir``;
* optionally Adam with coupled L2 regularisation, the optimizer of the reference code.
"""

from __future__ import annotations

import inspect
import os
from typing import Any

import torch
from torch import nn
from transformers import Trainer
from transformers.trainer_pt_utils import LengthGroupedSampler, get_length_grouped_indices
from transformers.utils import logging

from .arguments import DistillationArguments
from .losses import RESPONSE_KD_LOSSES, similarity_kd_loss
from .metrics import ERCMetrics, save_confusion_matrix

logger = logging.get_logger(__name__)

# Batch keys holding the teacher's own inputs (``teacher_input_ids`` is the teacher's ``input_ids``) and its
# precomputed outputs (``cached_teacher_logits`` is its ``logits``).
TEACHER_INPUT_PREFIX = "teacher_"
CACHED_TEACHER_PREFIX = "cached_teacher_"


class DialogueLengthGroupedSampler(LengthGroupedSampler):
    """Length-bucketed order whose randomness depends only on ``seed`` and the epoch.

    Every process builds the same order (Accelerate then gives each its share of the
    batches), and a run resumed at epoch ``e`` draws the order the uninterrupted run drew.
    The Trainer reaches :meth:`set_epoch` through Accelerate's data loader.
    """

    def __init__(self, batch_size: int, lengths: list[int], seed: int):
        super().__init__(batch_size, lengths=lengths)
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self):
        generator = torch.Generator().manual_seed(self.seed + self.epoch)
        return iter(get_length_grouped_indices(self.lengths, self.batch_size, generator=generator))


def _accepted_keywords(module: nn.Module) -> set[str] | None:
    """Names ``module.forward`` accepts, or ``None`` when it takes ``**kwargs``."""
    parameters = inspect.signature(module.forward).parameters
    if any(parameter.kind == inspect.Parameter.VAR_KEYWORD for parameter in parameters.values()):
        return None
    return set(parameters)


def _output_field(outputs: Any, key: str, model_name: str) -> torch.Tensor:
    value = outputs.get(key) if isinstance(outputs, dict) else getattr(outputs, key, None)
    if value is None:
        available = sorted(k for k, v in outputs.items() if v is not None) if isinstance(outputs, dict) else []
        raise ValueError(
            f"The {model_name} output has no '{key}' to distil (available: {available}). Set "
            "--logits_key/--hidden_state_key to outputs both models return."
        )
    return value


class ERCTrainer(Trainer):
    """Trainer for hf_erc models, with optional distillation from a frozen teacher.

    Args:
        teacher_model (`nn.Module`, *optional*):
            A trained model whose outputs the student learns from. It is frozen, kept in eval
            mode, moved to the training device and never prepared by Accelerate: with
            several processes every rank holds its own copy and only the student is wrapped
            in DistributedDataParallel, so no gradient or synchronisation reaches the teacher.
        distillation_args ([`DistillationArguments`], *optional*):
            Temperatures, weights and which outputs to compare; defaults when omitted.
        **kwargs: the arguments of `transformers.Trainer`. Without `compute_metrics`,
            [`ERCMetrics`] over the model's `config.id2label` is used.
    """

    # The model's loss is a mean over the batch's utterances; the Trainer divides it by the
    # number of gradient-accumulation steps.
    loss_is_scaled_for_ga = False

    def __init__(
        self,
        *args,
        teacher_model: nn.Module | None = None,
        distillation_args: DistillationArguments | None = None,
        **kwargs,
    ):
        model = kwargs.get("model", args[0] if args else None)
        self.emotion_names = self._emotion_names(model)
        if kwargs.get("compute_metrics") is None and self.emotion_names is not None:
            kwargs["compute_metrics"] = ERCMetrics(self.emotion_names)
        training_args = kwargs.get("args", args[1] if len(args) > 1 else None)
        if training_args is not None and getattr(training_args, "adam_l2_regularization", False):
            if kwargs.get("optimizer_cls_and_kwargs") is None:
                kwargs["optimizer_cls_and_kwargs"] = (
                    torch.optim.Adam,
                    {
                        "lr": training_args.learning_rate,
                        "betas": (training_args.adam_beta1, training_args.adam_beta2),
                        "eps": training_args.adam_epsilon,
                    },
                )
        super().__init__(*args, **kwargs)
        # compute_loss never hands `num_items_in_batch` to the model (see `loss_is_scaled_for_ga`), so the Trainer
        # need not count (and, with several processes, gather) the labels of every batch for it.
        self.model_accepts_loss_kwargs = False
        self.distillation_args = distillation_args if distillation_args is not None else DistillationArguments()
        self.teacher_model = teacher_model
        if teacher_model is not None:
            teacher_model.requires_grad_(False)
            teacher_model.eval()
            self._move_model_to_device(teacher_model, self.args.device)
        self._component_sums: dict[str, torch.Tensor] = {}
        self._component_batches = 0
        self._forward_keywords: dict[int, set[str] | None] = {}
        self.confusion_matrices: dict[str, list[list[int]]] = {}

    @staticmethod
    def _emotion_names(model: nn.Module | None) -> list[str] | None:
        id2label = getattr(getattr(model, "config", None), "id2label", None)
        if not id2label:
            return None
        return [id2label[index] for index in sorted(id2label)]

    # ---- Data -------------------------------------------------------------------------

    def _get_train_sampler(self, train_dataset=None):
        train_dataset = train_dataset if train_dataset is not None else self.train_dataset
        column = self.args.length_column_name
        if self.args.train_sampling_strategy != "group_by_length" or column not in getattr(
            train_dataset, "column_names", ()
        ):
            return super()._get_train_sampler(train_dataset)
        seed = self.args.data_seed if self.args.data_seed is not None else self.args.seed
        return DialogueLengthGroupedSampler(
            self.args.train_batch_size * self.args.gradient_accumulation_steps, list(train_dataset[column]), seed
        )

    # ---- Optimizer --------------------------------------------------------------------

    def get_decay_parameter_names(self, model: nn.Module) -> list[str]:
        # The references decay every parameter, biases and norms included (SDT's coupled L2; TelME's and MAGTKD's
        # AdamW over model.parameters()).
        if getattr(self.args, "adam_l2_regularization", False) or getattr(self.args, "decay_all_parameters", False):
            return [name for name, _ in model.named_parameters()]
        return super().get_decay_parameter_names(model)

    # ---- Loss -------------------------------------------------------------------------

    def _model_inputs(self, model: nn.Module, inputs: dict[str, Any], drop: tuple[str, ...] = ()) -> dict[str, Any]:
        """The entries of ``inputs`` that ``model.forward`` accepts (batches may carry a teacher's inputs too)."""
        module = self.accelerator.unwrap_model(model)
        key = id(module)
        if key not in self._forward_keywords:
            self._forward_keywords[key] = _accepted_keywords(module)
        accepted = self._forward_keywords[key]
        return {
            name: value
            for name, value in inputs.items()
            if name not in drop
            and not name.startswith((TEACHER_INPUT_PREFIX, CACHED_TEACHER_PREFIX))
            and (accepted is None or name in accepted)
        }

    def _teacher_outputs(self, inputs: dict[str, Any]) -> dict[str, Any] | None:
        """The teacher's outputs for this batch: precomputed ones from the batch, else a run of the frozen teacher
        on its ``teacher_``-prefixed inputs (or, without any, on the inputs its forward accepts); ``None`` when
        there is neither a cache nor a teacher."""
        cached = {
            name[len(CACHED_TEACHER_PREFIX) :]: value
            for name, value in inputs.items()
            if name.startswith(CACHED_TEACHER_PREFIX)
        }
        if cached:
            return cached
        if self.teacher_model is None:
            return None
        own_inputs = {
            name[len(TEACHER_INPUT_PREFIX) :]: value
            for name, value in inputs.items()
            if name.startswith(TEACHER_INPUT_PREFIX)
        }
        if not own_inputs:
            own_inputs = self._model_inputs(self.teacher_model, inputs, drop=("labels",))
        with torch.no_grad(), self.accelerator.autocast():
            return self.teacher_model(**own_inputs)

    def compute_loss(
        self,
        model: nn.Module,
        inputs: dict[str, Any],
        return_outputs: bool = False,
        num_items_in_batch: torch.Tensor | int | None = None,
    ):
        """The model's own loss, plus the weighted distillation terms when a teacher is set.

        ``num_items_in_batch`` is not used: models return a per-batch mean (see
        ``loss_is_scaled_for_ga``).
        """
        outputs = model(**self._model_inputs(model, inputs))
        own_loss = outputs.get("loss") if isinstance(outputs, dict) else outputs[0]
        if own_loss is None:
            raise ValueError(
                "The model returned no loss: the batch needs `labels` (the dialogue collator builds them from the "
                "emotion column)."
            )
        components = {name: value for name, value in (outputs.get("loss_components") or {}).items()}
        loss = own_loss
        teacher_outputs = self._teacher_outputs(inputs)
        if teacher_outputs is not None:
            distillation_terms = self._distillation_terms(outputs, teacher_outputs, inputs)
            loss = self.distillation_args.ce_weight * own_loss
            for name, (weight, value) in distillation_terms.items():
                loss = loss + weight * value
                components[name] = value
            components["student"] = own_loss
        if model.training:
            self._accumulate_components(components)
        return (loss, outputs) if return_outputs else loss

    def _distillation_terms(
        self, outputs: Any, teacher_outputs: Any, inputs: dict[str, Any]
    ) -> dict[str, tuple[float, torch.Tensor]]:
        """``{name: (weight, loss)}`` of the response- and feature-based terms against the frozen teacher's outputs."""
        arguments = self.distillation_args
        terms: dict[str, tuple[float, torch.Tensor]] = {}
        if arguments.response_kd_weight:
            student_logits = _output_field(outputs, arguments.logits_key, "student")
            teacher_logits = _output_field(teacher_outputs, arguments.logits_key, "teacher").to(student_logits.dtype)
            response_loss = RESPONSE_KD_LOSSES[arguments.response_kd_type](
                student_logits,
                teacher_logits,
                temperature=arguments.temperature,
                mask=self._utterance_mask(inputs, student_logits),
            )
            terms["response_kd"] = (arguments.response_kd_weight, response_loss)
        if arguments.feature_kd_weight:
            student_features = _output_field(outputs, arguments.hidden_state_key, "student")
            teacher_features = _output_field(teacher_outputs, arguments.hidden_state_key, "teacher")
            feature_loss = similarity_kd_loss(
                student_features,
                teacher_features.to(student_features.dtype),
                temperature=arguments.feature_kd_temperature,
                mask=self._utterance_mask(inputs, student_features),
            )
            terms["feature_kd"] = (arguments.feature_kd_weight, feature_loss)
        return terms

    @staticmethod
    def _utterance_mask(inputs: dict[str, Any], tensor: torch.Tensor) -> torch.Tensor | None:
        """Real utterances of a dialogue batch (``attention_mask`` shaped like ``tensor[..., 0]``); None otherwise.

        Unlabelled real turns are distilled too: the teacher's prediction needs no label.
        """
        attention_mask = inputs.get("attention_mask")
        if attention_mask is not None and tuple(attention_mask.shape) == tuple(tensor.shape[:-1]):
            return attention_mask.bool()
        return None

    # ---- Logging ----------------------------------------------------------------------

    def _accumulate_components(self, components: dict[str, torch.Tensor]) -> None:
        for name, value in components.items():
            value = value.detach().float()
            self._component_sums[name] = self._component_sums[name] + value if name in self._component_sums else value
        self._component_batches += 1

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        """Add ``loss_<component>`` (mean over the batches since the last log, over all processes) to training logs."""
        if "loss" in logs and self._component_batches:
            names = sorted(self._component_sums)
            means = torch.stack([self._component_sums[name] for name in names]) / self._component_batches
            if self.args.world_size > 1:
                means = self.accelerator.reduce(means, reduction="mean")
            for name, value in zip(names, means.tolist()):
                logs[f"loss_{name}"] = round(value, 6)
            self._component_sums = {}
            self._component_batches = 0
        super().log(logs, start_time)

    # ---- Evaluation -------------------------------------------------------------------

    def prediction_step(
        self,
        model: nn.Module,
        inputs: dict[str, Any],
        prediction_loss_only: bool,
        ignore_keys: list[str] | None = None,
    ) -> tuple[torch.Tensor | None, torch.Tensor | None, torch.Tensor | None]:
        """Return ``(loss, fused logits [B, T, C], labels)``: only the fused prediction is scored.

        The loss is the model's own loss (no teacher at evaluation).
        """
        inputs = self._prepare_inputs(inputs)
        labels = inputs.get("labels")
        with torch.no_grad(), self.compute_loss_context_manager():
            outputs = model(**self._model_inputs(model, inputs))
        loss = outputs.get("loss") if isinstance(outputs, dict) else None
        loss = loss.detach().mean() if loss is not None else None
        if prediction_loss_only:
            return loss, None, None
        logits = outputs["logits"] if isinstance(outputs, dict) else outputs[1]
        return loss, logits.detach(), labels

    def evaluation_loop(self, dataloader, description, prediction_loss_only=None, ignore_keys=None, metric_key_prefix="eval"):
        """Keep the confusion matrix out of the logged metrics; outside training, write it to ``output_dir``."""
        output = super().evaluation_loop(
            dataloader,
            description,
            prediction_loss_only=prediction_loss_only,
            ignore_keys=ignore_keys,
            metric_key_prefix=metric_key_prefix,
        )
        matrix = output.metrics.pop(f"{metric_key_prefix}_confusion_matrix", None)
        if matrix is not None:
            self.confusion_matrices[metric_key_prefix] = matrix
            if not self.is_in_train and self.args.should_save and self.emotion_names is not None:
                self.save_confusion_matrix(metric_key_prefix)
        return output

    def save_confusion_matrix(self, metric_key_prefix: str = "eval", output_dir: str | None = None) -> tuple[str, str]:
        """Write the last ``metric_key_prefix`` evaluation's confusion matrix as ``<prefix>_confusion_matrix.{png,json}``."""
        if metric_key_prefix not in self.confusion_matrices:
            raise ValueError(f"No '{metric_key_prefix}' evaluation has been run yet: nothing to save.")
        output_dir = output_dir if output_dir is not None else self.args.output_dir
        os.makedirs(output_dir, exist_ok=True)
        path_png = os.path.join(output_dir, f"{metric_key_prefix}_confusion_matrix.png")
        path_json = os.path.join(output_dir, f"{metric_key_prefix}_confusion_matrix.json")
        save_confusion_matrix(
            self.confusion_matrices[metric_key_prefix],
            self.emotion_names,
            path_png,
            path_json,
            title=f"{metric_key_prefix} confusion matrix",
        )
        return path_png, path_json
