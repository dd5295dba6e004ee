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

Dialogue-level models whose config has a `causal` field (online ERC) also run the causal tests: with
`get_config(causal=True)` the per-turn outputs of turns `< k` must not depend on turns `>= k` (changed or removed);
with `causal=False` they must (so the check can fail). They use `prepare_inputs` (a padded batch of dialogues along
dimension 1) and `dialogue_batch`.
"""

import json
import os
import re
import subprocess
import sys
import textwrap

import pytest
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


def perturb_later_turns(inputs, first_changed, num_speakers, seed=0):
    """`inputs` of a padded dialogue batch with the features and speakers of real turns `>= first_changed` replaced by
    random values (and some of their modalities dropped); earlier turns and padding untouched."""
    generator = torch.Generator().manual_seed(seed)
    later = inputs["attention_mask"].bool().clone()
    later[:, :first_changed] = False
    changed = dict(inputs)
    for name, value in inputs.items():
        if name.endswith("_features"):
            noise = 3.0 * torch.randn(value.shape, generator=generator, dtype=value.dtype)
            changed[name] = torch.where(later.unsqueeze(-1), noise, value)
    if inputs.get("speaker_ids") is not None:
        speakers = torch.randint(0, num_speakers, inputs["speaker_ids"].shape, generator=generator)
        changed["speaker_ids"] = torch.where(later, speakers, inputs["speaker_ids"])
    if inputs.get("modality_mask") is not None:
        dropped = (torch.rand(inputs["modality_mask"].shape, generator=generator) < 0.3) & later.unsqueeze(-1)
        changed["modality_mask"] = inputs["modality_mask"] & ~dropped
    return changed


def truncate_turns(inputs, num_turns):
    """`inputs` of a padded dialogue batch cut to its first `num_turns` turns (every tensor along dimension 1)."""
    padded_length = inputs["attention_mask"].shape[1]
    return {
        name: value[:, :num_turns] if value.dim() >= 2 and value.shape[1] == padded_length else value
        for name, value in inputs.items()
    }


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
        self.check_training_reduces_loss(self.get_config())

    def check_training_reduces_loss(self, config):
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

    # --- online (causal) ERC: dialogue-level models whose config has `causal` ----------------------------
    def get_causal_config(self, causal=True, **overrides):
        if not hasattr(self.get_config(), "causal"):
            pytest.skip(f"{type(self.get_config()).__name__} has no `causal` field (not a dialogue-level model)")
        config = self.get_config(causal=causal, **overrides)
        assert config.causal is causal
        return config

    def turn_outputs(self, outputs):
        """The per-turn outputs: `logits` and every modality's logits, `{name: [batch, turns, labels]}`."""
        named = {"logits": outputs.logits}
        named.update({f"modality_logits.{name}": value for name, value in (outputs.modality_logits or {}).items()})
        return named

    def earlier_turn_changes(self, model, inputs, first_changed, seed=0):
        """Largest change of any per-turn output on the real turns `< first_changed` when the turns `>=
        first_changed` are (a) replaced by random features and (b) removed; `{case/output name: max |change|}`."""
        cases = {
            "changed": perturb_later_turns(inputs, first_changed, model.config.num_speakers, seed=seed),
            "truncated": truncate_turns(inputs, first_changed),
        }
        earlier = inputs["attention_mask"][:, :first_changed].bool()
        assert earlier.any()
        with torch.no_grad():
            reference = self.turn_outputs(model(**inputs))
            changes = {}
            for case, case_inputs in cases.items():
                for name, value in self.turn_outputs(model(**case_inputs)).items():
                    expected = reference[name][:, :first_changed][earlier]
                    actual = value[:, :first_changed][earlier]
                    assert torch.isfinite(actual).all(), f"{case}, {name}: not finite"
                    changes[f"{case}/{name}"] = float((actual - expected).abs().max())
        return changes

    def test_causal_outputs_ignore_later_turns(self):
        for implementation in ("sdpa", "eager"):
            config = self.get_causal_config()
            config._attn_implementation = implementation
            model = self.build_model(config).eval()
            inputs = self.prepare_inputs(config, batch_size=3)
            assert not inputs["attention_mask"].bool().all(), "the batch must be padded"
            for first_changed in (1, 2, 4):
                changes = self.earlier_turn_changes(model, inputs, first_changed, seed=first_changed)
                moved = {name: change for name, change in changes.items() if change > 1e-5}
                assert not moved, f"{implementation}, turns >= {first_changed} changed earlier outputs: {moved}"

    def test_non_causal_outputs_depend_on_later_turns(self):
        # The same check with causal=False must fail: it proves the causal test can detect a leak.
        config = self.get_causal_config(causal=False)
        model = self.build_model(config).eval()
        inputs = self.prepare_inputs(config, batch_size=3)
        changes = self.earlier_turn_changes(model, inputs, first_changed=2, seed=2)
        for case in ("changed", "truncated"):
            assert changes[f"{case}/logits"] > 1e-3, (case, changes)
            for name in self.turn_outputs(model(**inputs)):
                assert changes[f"{case}/{name}"] > 1e-3, (case, name, changes)

    def test_causal_save_load_round_trip(self, tmp_path):
        config = self.get_causal_config()
        model = self.build_model(config).eval()
        inputs = self.prepare_inputs(config)
        model.save_pretrained(tmp_path)
        assert json.loads((tmp_path / "config.json").read_text())["causal"] is True
        reloaded = self.model_class.from_pretrained(tmp_path).eval()
        assert reloaded.config.causal is True
        through_auto = AutoModel.from_pretrained(tmp_path).eval()
        assert through_auto.config.causal is True
        with torch.no_grad():
            expected = model(**inputs)
            self.assert_outputs_close(expected, reloaded(**inputs))
            self.assert_outputs_close(expected, through_auto(**inputs))

    def test_config_without_causal_loads_as_non_causal(self, tmp_path):
        config = self.get_causal_config(causal=False)
        assert type(config)().causal is False
        config.save_pretrained(tmp_path)
        saved = json.loads((tmp_path / "config.json").read_text())
        assert saved.pop("causal") is False
        (tmp_path / "config.json").write_text(json.dumps(saved))
        assert type(config).from_pretrained(tmp_path).causal is False
        assert AutoConfig.from_pretrained(tmp_path).causal is False

    def test_causal_training_reduces_loss(self):
        self.check_training_reduces_loss(self.get_causal_config())

    def test_causal_masked_modalities_are_finite(self):
        config = self.get_causal_config()
        model = self.build_model(config).train()
        # First turns with modalities missing: a causal query there has no valid key in the missing source.
        first, *others = config.modalities
        missing = [(0, 0, modality) for modality in others] + [(0, turn, others[-1]) for turn in range(3)] if others else []
        missing += [(2, 0, first)] + [(2, 1, modality) for modality in config.modalities]
        for inputs in (
            dialogue_batch(config, [4, 1, 3], num_turns=4, seed=6, missing=missing),
            self.prepare_edge_case_inputs(config),
        ):
            model.zero_grad()
            outputs = model(**inputs)
            for name, value in _tensors(outputs, "").items():
                if value.is_floating_point():
                    assert torch.isfinite(value).all(), f"output {name} is not finite"
            outputs.loss.backward()
            for name, parameter in model.named_parameters():
                if parameter.grad is not None:
                    assert torch.isfinite(parameter.grad).all(), f"gradient of {name} is not finite"
