"""The package's floors, checked on the code's own import graph (every import, inside functions too).

From the bottom up: ``models/`` (what ships inside a checkpoint, and the registry of model families) imports nothing
of hf_erc outside itself; ``data/`` and ``features/`` read and encode datasets and know nothing of training,
inference or the commands; ``training/`` and ``inference/`` build on those; ``commands/`` (one module per ``hf-erc``
sub-command) sits on top, and only it and the CLI entry import it. The package root keeps what every floor shares.
"""

from __future__ import annotations

from tests.utils.import_graph import PACKAGE, import_graph

# Modules allowed at the package root: what every floor shares, and the CLI entry.
ROOT_MODULES = {"__init__", "cli", "distributed", "hub", "labels", "locking"}

# floor -> the floors it must not import.
FORBIDDEN = {
    "models": {"data", "features", "training", "inference", "commands", "root"},
    "data": {"features", "training", "inference", "commands"},
    "features": {"training", "inference", "commands"},
    "inference": {"training", "commands"},
    "training": {"inference", "commands"},
    "root": {"training", "commands"},
}
# Root modules that may import a floor the table forbids to the root: the CLI entry lists the commands.
ROOT_EXCEPTIONS = {("hf_erc.cli", "commands")}


def floor(module: str) -> str:
    """``models``, ``data``, ... for a module inside a sub-package; ``root`` for a module at the package root."""
    parts = module.split(".")
    if len(parts) == 1 or len(parts) == 2 and (PACKAGE / f"{parts[1]}.py").is_file():
        return "root"
    return parts[1]


def layering_violations(graph: dict[str, set[str]]) -> list[str]:
    """Every import that goes to a floor its module's floor must not reach, as ``a -> b`` lines."""
    violations = []
    for module, targets in sorted(graph.items()):
        for target in sorted(targets):
            source_floor, target_floor = floor(module), floor(target)
            if source_floor == target_floor or (module, target_floor) in ROOT_EXCEPTIONS:
                continue
            if target_floor in FORBIDDEN.get(source_floor, set()):
                violations.append(f"{module} ({source_floor}/) -> {target} ({target_floor}/)")
    return violations


def test_no_floor_imports_a_floor_above_it():
    graph = import_graph()
    assert "hf_erc.models.registry" in graph, "the registry of model families lives in models/"
    assert {"hf_erc.inference.pipelines", "hf_erc.commands.quickstart", "hf_erc.training.run"} <= set(graph)
    violations = layering_violations(graph)
    assert not violations, "imports that cross the floors:\n" + "\n".join(violations)


def test_the_package_root_keeps_only_what_every_floor_shares():
    root = {path.stem for path in PACKAGE.glob("*.py")}
    assert root <= ROOT_MODULES, f"modules at the package root that belong in a folder: {sorted(root - ROOT_MODULES)}"


def test_every_sub_command_is_one_module_of_commands():
    from hf_erc.cli import SUBCOMMAND_MODULES, build_parser

    assert all(name.startswith("hf_erc.commands.") for name in SUBCOMMAND_MODULES)
    commands = set(build_parser()._subparsers._group_actions[0].choices)
    expected = {"prepare", "extract-features", "fine-tune-text", "train", "report", "predict", "show-inputs", "demo"}
    assert expected | {"quickstart", "make-planted"} <= commands
    # every module of commands/ is a registered sub-command (no helper module hides there)
    command_modules = {f"hf_erc.commands.{path.stem}" for path in (PACKAGE / "commands").glob("*.py")}
    assert command_modules - {"hf_erc.commands.__init__"} == set(SUBCOMMAND_MODULES)


def test_the_check_finds_a_crossing_import():
    graph = {
        "hf_erc.models.sdt.modeling_sdt": {"hf_erc.data.collators"},  # models reaching into data
        "hf_erc.data.meld": {"hf_erc.training.metrics"},  # data reaching into training
        "hf_erc.inference.pipelines": {"hf_erc.commands.predict", "hf_erc.data.media"},  # the second is allowed
        "hf_erc.cli": {"hf_erc.commands.train"},  # allowed: the CLI entry lists the commands
        "hf_erc.hub": {"hf_erc.training.recipes"},  # the root reaching into training
        "hf_erc.commands.train": {"hf_erc.training.run"},  # allowed
    }
    assert layering_violations(graph) == [
        "hf_erc.data.meld (data/) -> hf_erc.training.metrics (training/)",
        "hf_erc.hub (root/) -> hf_erc.training.recipes (training/)",
        "hf_erc.inference.pipelines (inference/) -> hf_erc.commands.predict (commands/)",
        "hf_erc.models.sdt.modeling_sdt (models/) -> hf_erc.data.collators (data/)",
    ]
