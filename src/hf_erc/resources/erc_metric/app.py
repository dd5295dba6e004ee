"""Widget of the metric's Hub Space (``app_file`` of README.md); not used by hf_erc."""

import evaluate
from evaluate.utils import launch_gradio_widget

module = evaluate.load("erc_metric.py")
launch_gradio_widget(module)
