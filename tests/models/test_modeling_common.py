"""The test battery every hf_erc model runs, modelled on `transformers`' `ModelTesterMixin`.

A model's test class (named `Test...` so pytest collects it) inherits `ModelTesterMixin` and provides:

- `model_class`: the `PreTrainedModel` subclass under test;
- `get_config(**overrides)`: a tiny random config (hidden 16-32, 2 heads, small feature sizes, a few labels);
  `get_config(modalities=["text"])` must give the text-only variant (or override `get_text_only_config`);
- `prepare_inputs(config, batch_size=3, seed=0)`: the keyword arguments of `forward` for a padded batch,
  with `labels` and some missing modality entries, covering only `config`'s modalities;
- `prepare_edge_case_inputs(config)`: a batch with the hard cases (for dialogue models: a modality missing
  throughout one dialogue, padded rows, a dialogue of length 1), with `labels`.

Optional overrides: `unused_parameters` (names of parameters that get no gradient by design, each
documented in the model); `single_example_inputs` / `example_logits` when an example's padding is not
along dimension 1 of its inputs as given by `attention_mask`; `expected_logits_shape` when logits are not
`labels.shape + (num_labels,)`; the training settings (`training_steps`, `learning_rate`,
`loss_reduction_factor`).

Models must return a `ModelOutput` with `loss` (given `labels`), `logits`, `modality_logits` (dict) and
`loss_components` (dict of scalars).
"""

import json
import os
import re
import subprocess
import sys
import textwrap

import torch
from safetensors.torch import load_file, save_file
from transformers import AutoConfig, AutoModel


def _config_fields(config):
    """A config's settings, without what saving and loading legitimately add (`auto_map`, the source path)."""
    fields = config.to_dict()
    for name in ("auto_map", "_name_or_path", "transformers_version"):
        fields.pop(name, None)
    return fields


def _tensors(value, prefix):
    """Flatten the tensors of a model output (tensors, dicts and tuples of them) to `{name: tensor}`."""
    if isinstance(value, torch.Tensor):
        return {prefix: value}
    items = value.items() if hasattr(value, "items") else enumerate(value) if isinstance(value, (list, tuple)) else ()
    flat = {}
    for key, item in items:
        if item is not None:
            flat.update(_tensors(item, f"{prefix}.{key}" if prefix else str(key)))
    return flat


# Runs in a fresh interpreter where `hf_erc` cannot be imported: loads a checkpoint through its own code.
_REMOTE_CODE_SCRIPT = textwrap.dedent(
    """
    import sys
    sys.modules["hf_erc"] = None  # any `import hf_erc...` now raises ImportError
    import torch
    from safetensors.torch import load_file, save_file
    from transformers import AutoConfig, AutoModel

    checkpoint, inputs_path, outputs_path = sys.argv[1:4]
    config = AutoConfig.from_pretrained(checkpoint, trust_remote_code=True)
    model = AutoModel.from_pretrained(checkpoint, trust_remote_code=True).eval()
    with torch.no_grad():
        outputs = model(**load_file(inputs_path))
    tensors = {"logits": outputs.logits}
    tensors.update({f"modality_logits.{name}": value for name, value in (outputs.modality_logits or {}).items()})
    if outputs.loss is not None:
        tensors["loss"] = outputs.loss
    save_file({name: value.clone().contiguous() for name, value in tensors.items()}, outputs_path)
    print(type(config).__module__, type(model).__module__)
    """
)


DIALOGUE_MODALITIES = ("text", "audio", "video")


def dialogue_batch(config, lengths, num_turns, seed=0, missing=(), unlabelled=()):
    """Padded inputs of a dialogue-level model (SDT, CMATH, MAGTKD's fusion) for dialogues of `lengths`;
    `missing` lists (dialogue, turn, modality) to drop, `unlabelled` lists (dialogue, turn) real utterances without
    a label. Feature sizes come from `config.feature_dim(modality)`."""
    generator = torch.Generator().manual_seed(seed)
    batch_size = len(lengths)
    attention_mask = torch.zeros(batch_size, num_turns, dtype=torch.long)
    for index, length in enumerate(lengths):
        attention_mask[index, :length] = 1
    real = attention_mask.bool()
    modality_mask = torch.zeros(batch_size, num_turns, len(DIALOGUE_MODALITIES), dtype=torch.bool)
    for modality in config.modalities:
        modality_mask[..., DIALOGUE_MODALITIES.index(modality)] = real
    for dialogue, turn, modality in missing:
        modality_mask[dialogue, turn, DIALOGUE_MODALITIES.index(modality)] = False
    inputs = {}
    for modality in config.modalities:
        values = torch.randn(batch_size, num_turns, config.feature_dim(modality), generator=generator)
        present = modality_mask[..., DIALOGUE_MODALITIES.index(modality)]
        inputs[f"{modality}_features"] = values * present.unsqueeze(-1)
    labels = torch.randint(0, config.num_labels, (batch_size, num_turns), generator=generator).masked_fill(~real, -100)
    for dialogue, turn in unlabelled:
        labels[dialogue, turn] = -100
    speaker_ids = torch.randint(0, config.num_speakers, (batch_size, num_turns), generator=generator) * attention_mask
    inputs.update(attention_mask=attention_mask, speaker_ids=speaker_ids, modality_mask=modality_mask, labels=labels)
    return inputs


class ModelTesterMixin:
    model_class = None
    unused_parameters = ()
    training_steps = 25
    learning_rate = 1e-2
    # The eval-mode loss after `training_steps` Adam steps on one batch must fall below this share of the first.
    loss_reduction_factor = 0.5

    # --- provided by the model's test class ---------------------------------------------------------------
    def get_config(self, **overrides):
        raise NotImplementedError

    def prepare_inputs(self, config, batch_size=3, seed=0):
        raise NotImplementedError

    def prepare_edge_case_inputs(self, config):
        raise NotImplementedError

    # --- overridable defaults ---------------------------------------------------------------------------
    def get_text_only_config(self):
        return self.get_config(modalities=["text"])

    def expected_logits_shape(self, config, inputs):
        return tuple(inputs["labels"].shape) + (config.num_labels,)

    def single_example_inputs(self, inputs, index):
        """Example `index` of a batch alone, its padding (along dimension 1, from `attention_mask`) removed."""
        length = int(inputs["attention_mask"][index].sum())
        padded_length = inputs["attention_mask"].shape[1]
        single = {}
        for name, value in inputs.items():
            value = value[index : index + 1]
            if value.dim() >= 2 and value.shape[1] == padded_length:
                value = value[:, :length]
            single[name] = value
        return single

    def example_logits(self, logits, inputs, index):
        """The logits of example `index` on its real positions (per-turn logits are trimmed to its length)."""
        if logits.dim() == 3:
            return logits[index, : int(inputs["attention_mask"][index].sum())]
        return logits[index]

    # --- helpers ----------------------------------------------------------------------------------------
    def build_model(self, config=None, seed=0):
        torch.manual_seed(seed)
        return self.model_class(config if config is not None else self.get_config())

    def assert_outputs_close(self, expected, actual, **tolerances):
        torch.testing.assert_close(actual.logits, expected.logits, **tolerances)
        for name, value in (expected.modality_logits or {}).items():
            torch.testing.assert_close(actual.modality_logits[name], value, **tolerances)
        if expected.loss is not None:
            torch.testing.assert_close(actual.loss, expected.loss, **tolerances)

    # --- the battery ------------------------------------------------------------------------------------
    def test_forward_output_shapes(self):
        config = self.get_config()
        model = self.build_model(config).eval()
        inputs = self.prepare_inputs(config)
        with torch.no_grad():
            outputs = model(**inputs)
        shape = self.expected_logits_shape(config, inputs)
        assert tuple(outputs.logits.shape) == shape
        assert outputs.modality_logits, "modality_logits must hold at least one modality"
        for name, value in outputs.modality_logits.items():
            assert name in ("text", "audio", "video"), name
            assert tuple(value.shape) == shape, name
        assert outputs.loss is not None and outputs.loss.dim() == 0 and torch.isfinite(outputs.loss)
        assert outputs.loss_components
        for name, value in outputs.loss_components.items():
            assert value.dim() == 0 and torch.isfinite(value), name

    def test_return_tuple(self):
        config = self.get_config()
        model = self.build_model(config).eval()
        inputs = self.prepare_inputs(config)
        with torch.no_grad():
            as_dict = model(**inputs)
            as_tuple = model(**inputs, return_dict=False)
        assert isinstance(as_tuple, tuple)
        torch.testing.assert_close(as_tuple[0], as_dict.loss)
        torch.testing.assert_close(as_tuple[1], as_dict.logits)

    def test_training_reduces_loss(self):
        config = self.get_config()
        model = self.build_model(config)
        inputs = self.prepare_inputs(config, seed=1)
        optimizer = torch.optim.Adam(model.parameters(), lr=self.learning_rate)

        def eval_loss():
            model.eval()
            with torch.no_grad():
                return model(**inputs).loss.item()

        initial = eval_loss()
        model.train()
        for _ in range(self.training_steps):
            optimizer.zero_grad()
            model(**inputs).loss.backward()
            optimizer.step()
        final = eval_loss()
        assert final < initial * self.loss_reduction_factor, (initial, final)

    def test_save_load_round_trip(self, tmp_path):
        config = self.get_config()
        model = self.build_model(config).eval()
        inputs = self.prepare_inputs(config)
        model.save_pretrained(tmp_path)
        files = sorted(path.name for path in tmp_path.iterdir())
        assert "model.safetensors" in files and "config.json" in files, files
        assert not [name for name in files if name.endswith((".bin", ".pt", ".pth", ".pkl"))], files

        reloaded = self.model_class.from_pretrained(tmp_path).eval()
        assert _config_fields(reloaded.config) == _config_fields(model.config)
        through_auto = AutoModel.from_pretrained(tmp_path).eval()
        assert type(through_auto) is self.model_class
        with torch.no_grad():
            expected = model(**inputs)
            self.assert_outputs_close(expected, reloaded(**inputs))
            self.assert_outputs_close(expected, through_auto(**inputs))

    def test_trust_remote_code_without_hf_erc(self, tmp_path):
        config = self.get_config()
        model = self.build_model(config).eval()
        inputs = self.prepare_inputs(config)
        checkpoint = tmp_path / "checkpoint"
        model.save_pretrained(checkpoint)

        saved = json.loads((checkpoint / "config.json").read_text())
        auto_map = saved.get("auto_map", {})
        assert set(auto_map) >= {"AutoConfig", "AutoModel"}, saved
        for reference in (auto_map["AutoConfig"], auto_map["AutoModel"]):
            module_name = reference.split("--")[-1].rsplit(".", 1)[0]
            code = checkpoint / f"{module_name}.py"
            assert code.is_file(), f"{code.name} was not copied into the checkpoint"
        for code in checkpoint.glob("*.py"):
            assert not re.search(r"^\s*(from|import)\s+hf_erc\b", code.read_text(), re.MULTILINE), (
                f"{code.name} imports hf_erc: shipped code may only import torch, transformers and sibling files"
            )

        save_file({name: value.contiguous() for name, value in inputs.items()}, tmp_path / "inputs.safetensors")
        environment = dict(os.environ, HF_MODULES_CACHE=str(tmp_path / "modules"), HF_HUB_OFFLINE="1")
        result = subprocess.run(
            [
                sys.executable,
                "-c",
                _REMOTE_CODE_SCRIPT,
                str(checkpoint),
                str(tmp_path / "inputs.safetensors"),
                str(tmp_path / "outputs.safetensors"),
            ],
            cwd=tmp_path,
            env=environment,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert result.returncode == 0, result.stderr[-3000:]
        assert "hf_erc" not in result.stdout and "transformers_modules" in result.stdout, result.stdout

        remote = load_file(tmp_path / "outputs.safetensors")
        with torch.no_grad():
            expected = model(**inputs)
        torch.testing.assert_close(remote["logits"], expected.logits)
        for name, value in (expected.modality_logits or {}).items():
            torch.testing.assert_close(remote[f"modality_logits.{name}"], value)
        torch.testing.assert_close(remote["loss"], expected.loss)

    def test_batch_matches_single_examples(self):
        config = self.get_config()
        model = self.build_model(config).eval()
        inputs = self.prepare_inputs(config, batch_size=3)
        with torch.no_grad():
            batched = model(**inputs)
            for index in range(inputs["labels"].shape[0]):
                single_inputs = self.single_example_inputs(inputs, index)
                alone = model(**single_inputs)
                pairs = {"logits": (alone.logits, batched.logits)}
                for name, value in (batched.modality_logits or {}).items():
                    pairs[f"modality_logits.{name}"] = (alone.modality_logits[name], value)
                for name, (single_value, batched_value) in pairs.items():
                    torch.testing.assert_close(
                        self.example_logits(single_value, single_inputs, 0),
                        self.example_logits(batched_value, inputs, index),
                        atol=1e-5,
                        rtol=1e-4,
                        msg=lambda message: f"example {index}, {name}: {message}",
                    )

    def test_edge_cases_are_finite(self):
        config = self.get_config()
        model = self.build_model(config).train()
        inputs = self.prepare_edge_case_inputs(config)
        outputs = model(**inputs)
        for name, value in _tensors(outputs, "").items():
            if value.is_floating_point():
                assert torch.isfinite(value).all(), f"output {name} is not finite"
        outputs.loss.backward()
        for name, parameter in model.named_parameters():
            if parameter.grad is not None:
                assert torch.isfinite(parameter.grad).all(), f"gradient of {name} is not finite"

    def test_every_parameter_gets_a_gradient(self):
        config = self.get_config()
        model = self.build_model(config).train()
        inputs = self.prepare_inputs(config)
        model(**inputs).loss.backward()
        without = [
            name
            for name, parameter in model.named_parameters()
            if parameter.requires_grad
            and name not in self.unused_parameters
            and (parameter.grad is None or not parameter.grad.abs().sum() > 0)
        ]
        assert not without, f"parameters without gradient: {without}"

    def test_config_round_trip(self, tmp_path):
        config = self.get_config()
        as_dict = config.to_dict()
        assert type(config).from_dict(as_dict).to_dict() == as_dict
        assert json.loads(config.to_json_string())["model_type"] == config.model_type
        config.save_pretrained(tmp_path)
        assert _config_fields(type(config).from_pretrained(tmp_path)) == _config_fields(config)
        assert type(AutoConfig.from_pretrained(tmp_path)) is type(config)

    def test_text_only_config(self):
        config = self.get_text_only_config()
        model = self.build_model(config).train()
        inputs = self.prepare_inputs(config)
        assert not any(name.startswith(("audio", "video")) for name in inputs), sorted(inputs)
        outputs = model(**inputs)
        assert tuple(outputs.logits.shape) == self.expected_logits_shape(config, inputs)
        assert set(outputs.modality_logits) <= {"text"}
        assert torch.isfinite(outputs.loss)
        outputs.loss.backward()
