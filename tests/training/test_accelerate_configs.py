"""The Accelerate configurations of configs/accelerate/ and their README launch lines, read by Accelerate's own
loader and launcher so that none rots: the launcher turns each into the environment its processes would get, and
the FSDP and DeepSpeed plugins are built from that environment as a training process builds them."""

import shlex

import pytest
from accelerate.commands.config.config_args import ClusterConfig, load_config_from_file
from accelerate.commands.launch import _validate_launch_command, launch_command_parser
from accelerate.utils import DeepSpeedPlugin, DistributedType, FullyShardedDataParallelPlugin
from accelerate.utils.dataclasses import get_module_class_from_name
from accelerate.utils.launch import prepare_deepspeed_cmd_env, prepare_multi_gpu_env

from tests.utils.training import REPO_ROOT

CONFIG_DIR = REPO_ROOT / "configs" / "accelerate"
# file -> (distributed type, processes, machines)
EXPECTED = {
    "single_gpu.yaml": (DistributedType.NO, 1, 1),
    "multi_gpu.yaml": (DistributedType.MULTI_GPU, 2, 1),
    "multi_node.yaml": (DistributedType.MULTI_GPU, 16, 2),
    "fsdp.yaml": (DistributedType.FSDP, 2, 1),
    "deepspeed_zero2.yaml": (DistributedType.DEEPSPEED, 2, 1),
}
FUSION_LAYERS = "RobertaLayer,Data2VecAudioEncoderLayer,TimesformerLayer"


def launch_arguments(argv):
    """`accelerate launch` arguments after the launcher has merged the config file into them."""
    return _validate_launch_command(launch_command_parser().parse_args(argv))[0]


def readme_launch_lines():
    text = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    cells = [cell.strip(" `") for row in text.splitlines() for cell in row.split("|")]
    return [shlex.split(cell) for cell in cells if cell.startswith("accelerate launch --config_file configs/accelerate/")]


def test_every_config_is_shipped_and_documented():
    assert sorted(path.name for path in CONFIG_DIR.glob("*.yaml")) == sorted(EXPECTED)
    documented = {argv[argv.index("--config_file") + 1].split("/")[-1] for argv in readme_launch_lines()}
    assert documented == set(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_config_loads_with_accelerate(name):
    config = load_config_from_file(str(CONFIG_DIR / name))
    assert isinstance(config, ClusterConfig)
    _, num_processes, num_machines = EXPECTED[name]
    assert (config.distributed_type, config.num_processes, config.num_machines) == EXPECTED[name]
    # Precision comes from the training config (`bf16: true`), never from the launcher.
    assert config.mixed_precision == "no" and not config.use_cpu
    args = launch_arguments(["--config_file", str(CONFIG_DIR / name), "scripts/train.py"])
    assert args.num_processes == num_processes and args.num_machines == num_machines
    # Every key of a plugin section is an `accelerate launch` option (a misspelt one would be ignored silently).
    options = {action.dest for action in launch_command_parser()._actions}
    for key in config.fsdp_config:
        assert (key if key.startswith("fsdp_") else f"fsdp_{key}") in options, key
    for key in config.deepspeed_config:
        assert key in options, key


def test_multi_node_config_names_the_main_machine():
    config = load_config_from_file(str(CONFIG_DIR / "multi_node.yaml"))
    assert config.main_process_ip and config.main_process_port and config.rdzv_backend == "static"
    assert config.num_processes % config.num_machines == 0


def test_fsdp_config_wraps_roberta_layers(monkeypatch):
    args = launch_arguments(["--config_file", str(CONFIG_DIR / "fsdp.yaml"), "scripts/train.py"])
    for name, value in prepare_multi_gpu_env(args).items():
        monkeypatch.setenv(name, value)
    plugin = FullyShardedDataParallelPlugin()
    assert plugin.fsdp_version == 2
    assert plugin.auto_wrap_policy.__name__ == "transformer_auto_wrap_policy"
    assert plugin.transformer_cls_names_to_wrap == ["RobertaLayer"]
    assert plugin.state_dict_type.name == "FULL_STATE_DICT"  # one safetensors checkpoint


def test_fsdp_wrap_classes_exist_in_the_models():
    """The teacher holds RobertaLayer (and not the media encoders' layers, so it cannot take the fusion's list);
    the whole TelME model holds all three classes the README's fusion line wraps."""
    from hf_erc.models.telme.modeling_telme import TelMEForEmotionRecognition, TelMETextTeacher
    from tests.utils.tiny_telme import tiny_config

    teacher, whole = TelMETextTeacher(tiny_config()), TelMEForEmotionRecognition(tiny_config())
    assert get_module_class_from_name(teacher, "RobertaLayer") is not None
    for layer in FUSION_LAYERS.split(","):
        assert get_module_class_from_name(whole, layer) is not None, layer
    fusion_line = [argv for argv in readme_launch_lines() if "--fsdp_transformer_layer_cls_to_wrap" in argv]
    assert [argv[argv.index("--fsdp_transformer_layer_cls_to_wrap") + 1] for argv in fusion_line] == [FUSION_LAYERS]


def test_deepspeed_config_is_zero_stage_2(monkeypatch):
    args = launch_arguments(["--config_file", str(CONFIG_DIR / "deepspeed_zero2.yaml"), "scripts/train.py"])
    assert args.use_deepspeed and args.zero_stage == 2
    # What `accelerate launch` does before starting the processes, then the plugin a process builds.
    config = load_config_from_file(str(CONFIG_DIR / "deepspeed_zero2.yaml"))
    args.deepspeed_fields_from_accelerate_config = ",".join(config.deepspeed_config)
    _, environment = prepare_deepspeed_cmd_env(args)
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    plugin = DeepSpeedPlugin()
    assert plugin.zero_stage == 2
    zero = plugin.deepspeed_config["zero_optimization"]
    assert zero["stage"] == 2 and zero["offload_optimizer"]["device"] == "none"
    # Batch sizes, accumulation and clipping are left to the training config.
    assert plugin.deepspeed_config["gradient_accumulation_steps"] == "auto"
    assert plugin.deepspeed_config["gradient_clipping"] == "auto"


@pytest.mark.parametrize("argv", readme_launch_lines(), ids=lambda argv: argv[argv.index("--config_file") + 1])
def test_readme_launch_lines_parse(argv):
    """Each README line is `accelerate launch <options> scripts/train.py --config <shipped config>`."""
    assert argv[:2] == ["accelerate", "launch"]
    script = argv.index("scripts/train.py")
    args = launch_arguments(argv[2:])
    assert args.training_script == "scripts/train.py"
    assert (REPO_ROOT / argv[argv.index("--config_file") + 1]).is_file()
    training_config = argv[script:][argv[script:].index("--config") + 1]
    assert (REPO_ROOT / training_config).is_file(), training_config
