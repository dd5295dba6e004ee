"""The package's structure: no import cycles, no oversized data/features/training modules, uniform configs, and
one registry of model families that the Auto classes, checkpoint loading, the model cards and the training recipes
all read."""

import ast
import inspect
from pathlib import Path

import pytest
from transformers import AutoConfig, AutoModel
from transformers.models.auto.processing_auto import PROCESSOR_MAPPING

from hf_erc.hub import paper_info
from hf_erc.inference.checkpoints import _processor_class_names
from hf_erc.models import CMATHConfig, MAGTKDConfig, SDTConfig, TelMEConfig
from hf_erc.models.registry import (
    MODEL_FAMILIES,
    ModelFamily,
    family_for_model_type,
    get_family,
    known_model_types,
    register_family,
)
from hf_erc.training.recipes import RECIPES, get_recipe
from tests.utils.import_graph import PACKAGE, find_cycle, import_graph

def test_the_import_graph_has_no_cycle():
    graph = import_graph()
    assert "hf_erc.training.run" in graph and "hf_erc.training.recipes" in graph["hf_erc.training.run"]
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_the_cycle_finder_finds_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


@pytest.mark.parametrize("folder", ["data", "features", "training"])
def test_no_module_of_the_data_and_training_layers_is_over_600_lines(folder):
    long = {
        str(path.relative_to(PACKAGE)): count
        for path in (PACKAGE / folder).rglob("*.py")
        if (count := len(path.read_text(encoding="utf-8").splitlines())) > 600
    }
    assert not long, f"modules over 600 lines: {long}"


@pytest.mark.parametrize("config_class", [SDTConfig, CMATHConfig, TelMEConfig, MAGTKDConfig])
def test_every_config_offers_for_dataset_with_modalities(config_class):
    parameters = inspect.signature(config_class.for_dataset).parameters
    assert list(parameters)[:2] == ["dataset", "modalities"]
    assert parameters["modalities"].default is None
    config = config_class.for_dataset("meld", modalities=["text", "audio"], num_labels=7)
    assert list(config.modalities) == ["text", "audio"]
    assert config_class.for_dataset("iemocap").num_labels == 6


def test_every_family_has_classes_and_a_paper_and_every_recipe_trains_one():
    assert sorted(MODEL_FAMILIES) == sorted(RECIPES) == ["cmath", "magtkd", "sdt", "telme"]
    for name, family in MODEL_FAMILIES.items():
        assert get_family(name) is family and get_recipe(name).family is family and get_recipe(name).stages
        assert get_recipe(name).model_class is family.model_class
        for model_type in family.model_types:
            assert family_for_model_type(model_type) is family and paper_info(model_type) is family.paper
    # Stage checkpoints have model cards too: every model_type a stage writes is known to the cards.
    assert "telme-erc-text-teacher" in known_model_types() and "magtkd-erc-audio" in known_model_types()
    assert paper_info("telme-erc-text-teacherx") is None and family_for_model_type("telme-erc-text-teacherx") is None
    # Training, checkpoints, conversion and serving use one processor class per family.
    assert get_family("magtkd").processor_class.__name__ == "MAGTKDProcessor"
    assert _processor_class_names() == ["MAGTKDProcessor", "TelMEProcessor"]


def test_importing_the_models_registers_every_class_of_the_registry_with_the_auto_classes():
    for family in MODEL_FAMILIES.values():
        for model_class in family.model_classes:
            config_class = model_class.config_class
            assert type(AutoConfig.for_model(config_class.model_type)) is config_class
            assert AutoModel._model_mapping[config_class] is model_class
        if family.processor_class is not None:
            assert PROCESSOR_MAPPING[family.config_class] is family.processor_class
            assert family.processor_class._auto_class == "AutoProcessor"  # save_pretrained writes its auto_map


def test_a_family_defined_outside_hf_erc_joins_the_registry(monkeypatch):
    monkeypatch.setattr("hf_erc.models.registry.MODEL_FAMILIES", dict(MODEL_FAMILIES))
    sdt = get_family("sdt")
    register_family(ModelFamily("my-sdt", sdt.config_class, sdt.model_class, sdt.paper))
    assert get_family("my-sdt").model_types == ("sdt-erc",)
    assert "my-sdt" not in MODEL_FAMILIES  # the table of this module was left alone


def test_an_unknown_model_family_or_stage_is_named_with_the_known_ones():
    with pytest.raises(ValueError, match=r"'bert' is not a known model family: choose one of \['cmath', 'magtkd'"):
        get_family("bert")
    with pytest.raises(ValueError, match=r"--model_type 'bert' is not a known model family: choose one of \['cmath'"):
        get_recipe("bert")
    with pytest.raises(ValueError, match=r"--stage kd does not apply to telme, which trains in stage\(s\) \['teacher'"):
        get_recipe("telme").stage("kd")
    with pytest.raises(ValueError, match=r"--model_type telme trains in stages: pass --stage"):
        get_recipe("telme").stage(None)
    assert get_recipe("sdt").stage(None)[0] == "full"


def test_test_modules_take_shared_helpers_from_tests_utils():
    """A test module imports helpers from tests/utils (or the shared model battery), never from another test
    module."""
    tests_root = Path(__file__).resolve().parent
    offenders = []
    for path in tests_root.rglob("test_*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom):
                module = node.module or ""
                leaf = module.rpartition(".")[2]
                if leaf.startswith("test_") and leaf != "test_modeling_common":
                    offenders.append(f"{path.relative_to(tests_root)} imports from {'.' * node.level}{module}")
    assert not offenders, offenders
