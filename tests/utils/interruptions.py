"""Crash a run at a chosen point with SIGKILL, as the out-of-memory killer or a power cut would: no ``finally``, no
``atexit``, every file as it is at that instant (the run's lock included).

Run it in place of the command, which then runs unchanged in this process:

    python -m tests.utils.interruptions --kill-in-step 8 scripts/train.py --config ...
    python -m tests.utils.interruptions --kill-in-encode 3 -m hf_erc.cli extract-features ...

``--kill-in-step N`` kills during optimizer step N, after its forward and backward pass: steps 1..N-1 are done, the
ones after the last saved checkpoint are lost. ``--kill-in-encode N`` kills when the text encoder is called for the
N-th time, before it encodes anything: the N-1 calls before it are done.
"""

import os
import runpy
import signal
import sys


def kill_in_step(step: int) -> None:
    from hf_erc.training.trainer import ERCTrainer

    original = ERCTrainer.training_step

    def training_step(self, *args, **kwargs):
        loss = original(self, *args, **kwargs)
        if self.state.global_step + 1 == step:
            os.kill(os.getpid(), signal.SIGKILL)
        return loss

    ERCTrainer.training_step = training_step


def kill_in_encode(call: int) -> None:
    from hf_erc.features.encoders import TextEncoder

    original = TextEncoder.encode
    calls = [0]

    def encode(self, *args, **kwargs):
        calls[0] += 1
        if calls[0] == call:
            os.kill(os.getpid(), signal.SIGKILL)
        return original(self, *args, **kwargs)

    TextEncoder.encode = encode


def main() -> None:
    option, number, *command = sys.argv[1:]
    {"--kill-in-step": kill_in_step, "--kill-in-encode": kill_in_encode}[option](int(number))
    if command[0] == "-m":
        sys.argv = command[1:]
        runpy.run_module(command[1], run_name="__main__", alter_sys=True)
    else:
        sys.argv = command
        runpy.run_path(command[0], run_name="__main__")


if __name__ == "__main__":
    main()
