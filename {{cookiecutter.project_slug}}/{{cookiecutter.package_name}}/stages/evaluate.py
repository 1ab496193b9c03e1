"""evaluate: score the model on the held-out table; write the metrics and the plot tables of
the task (evaluation.py lists them: one function and one line per plot)."""

from pathlib import Path

from reproml.runtime.io import atomic_write_tree, write_json
from reproml.runtime.model_file import load_recorded_model

from .. import evaluation
from ..config import ProjectConfig
from ..data import read_for_model


def run(config: ProjectConfig) -> dict[str, Path]:
    paths = config.paths
    model = load_recorded_model(paths.model, paths.model_record)
    features, actual = read_for_model(paths.test, config.data)
    predicted = evaluation.predict_in_batches(model.predict, features)
    result = evaluation.Evaluation(
        model, features, actual, predicted, config.data.task, config.seed
    )
    return {
        "metrics": write_json(paths.metrics, evaluation.scores(result)),
        "plots": atomic_write_tree(paths.plots, evaluation.plot_tables(result)),
    }
