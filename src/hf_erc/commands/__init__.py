"""The ``hf-erc`` sub-commands, one module each: the command line (argparse) and what it prints, over functions
of the layers below (data, features, training, inference). Nothing but :mod:`hf_erc.cli` and these modules
imports from here.

| command | module |
|---|---|
| ``hf-erc prepare`` | :mod:`.prepare` |
| ``hf-erc extract-features`` | :mod:`.extract_features` |
| ``hf-erc fine-tune-text`` | :mod:`.fine_tune_text` |
| ``hf-erc show-inputs`` | :mod:`.show_inputs` |
| ``hf-erc predict`` | :mod:`.predict` |
| ``hf-erc demo`` | :mod:`.demo` |
| ``hf-erc quickstart`` | :mod:`.quickstart` |
"""
