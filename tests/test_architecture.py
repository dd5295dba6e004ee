"""The package's structure: no import cycles, no oversized data/features/training modules, uniform configs, and
one registry of model families that the training script and the model cards both read."""

import ast
import inspect
from pathlib import Path

import pytest

from hf_erc.hub import known_model_types, paper_info
from hf_erc.models import CMATHConfig, MAGTKDConfig, SDTConfig, TelMEConfig
from hf_erc.training.recipes import RECIPES, get_recipe

SOURCE_ROOT = Path(__file__).resolve().parents[1] / "src"
PACKAGE = SOURCE_ROOT / "hf_erc"


def module_files() -> dict[str, tuple[Path, bool]]:
    """Dotted module name -> (file, is package face) for every module of hf_erc."""
    modules = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(SOURCE_ROOT).with_suffix("").parts)
        is_package = parts[-1] == "__init__"
        modules[".".join(parts[:-1] if is_package else parts)] = (path, is_package)
    return modules


def import_graph() -> dict[str, set[str]]:
    """Module -> the hf_erc modules it imports, anywhere in its file (inside functions too); a package face
    (``__init__``) re-exporting its modules is not an edge."""
    modules = module_files()

    def resolve(name: str) -> str | None:
        while name and name not in modules:
            name = name.rpartition(".")[0]
        return name or None

    graph = {}
    for module, (path, is_package) in modules.items():
        edges = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    package = module.split(".") if is_package else module.split(".")[:-1]
                    package = package[: len(package) - (node.level - 1)]
                    base = ".".join(package + ([base] if base else []))
                names = [f"{base}.{alias.name}" for alias in node.names]
            for name in names:
                target = resolve(name)
                if target and target != module and not modules[target][1]:
                    edges.add(target)
        graph[module] = edges
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as a path of modules, or None (depth-first search with colours)."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(module):
        state[module] = 1
        stack.append(module)
        for target in sorted(graph[module]):
            if state.get(target) == 1:
                return stack[stack.index(target) :] + [target]
            if target not in state:
                cycle = visit(target)
                if cycle:
                    return cycle
        stack.pop()
        state[module] = 2
        return None

    for module in sorted(graph):
        if module not in state:
            cycle = visit(module)
            if cycle:
                return cycle
    return None


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


def test_every_recipe_has_classes_stages_and_a_paper():
    assert sorted(RECIPES) == ["cmath", "magtkd", "sdt", "telme"]
    for name, recipe in RECIPES.items():
        assert get_recipe(name) is recipe
        assert issubclass(recipe.model_class, recipe.model_class.__mro__[1]) and recipe.stages
        for model_type in recipe.model_types:
            assert paper_info(model_type) is recipe.paper
    # Stage checkpoints have model cards too: every model_type a stage writes is known to the cards.
    assert "telme-erc-text-teacher" in known_model_types() and "magtkd-erc-audio" in known_model_types()
    assert paper_info("telme-erc-text-teacherx") is None


def test_an_unknown_model_family_or_stage_is_named_with_the_known_ones():
    with pytest.raises(ValueError, match=r"'bert' is not a known model family: choose one of \['cmath', 'magtkd'"):
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
