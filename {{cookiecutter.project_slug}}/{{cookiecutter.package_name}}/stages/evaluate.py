"""evaluate: score the model on the held-out table; write the metrics and the plot tables of
the task (evaluation.py lists them: one function and one line per plot). Predictions that are
not one label or number per row, and scores outside their ranges, stop it before anything is
written (the machinery's contract)."""

from pathlib import Path

from reproml.runtime.contract import check_metrics, check_predictions, check_probabilities
from reproml.runtime.io import atomic_write_tree, write_json
from reproml.runtime.model_file import load_recorded_model

from .. import evaluation
from ..config import ProjectConfig
from ..data import read_for_model


def run(config: ProjectConfig) -> dict[str, Path]:
    paths = config.paths
    model = load_recorded_model(paths.model, paths.model_record)
    features, actual = read_for_model(paths.test, config.data)
    task = config.data.task
    predicted = evaluation.predict_in_batches(model.predict, features)
    predicted = check_predictions(model, predicted, len(features), task, "evaluate")
    result = evaluation.Evaluation(model, features, actual, predicted, task, config.seed)
    if task == "classification" and result.class_scores[2]:  # probabilities, not scores
        check_probabilities(model, result.class_scores[1], len(features), "evaluate")
    scores = check_metrics(evaluation.scores(result), evaluation.METRIC_RANGES, "evaluate")
    return {
        "metrics": write_json(paths.metrics, scores),
        "plots": atomic_write_tree(paths.plots, evaluation.plot_tables(result)),
    }
