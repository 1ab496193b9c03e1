"""The evaluate stage's scores. Classification in plain numpy (importing sklearn.metrics would
cost the evaluate stage a second of start-up for a few sums); classes keep their names: string
labels appear as they are in the metrics, the confusion plot and predictions. Regression
through sklearn.metrics, whose definitions (R², MAPE) are the ones people compare with."""

import csv
import io

import numpy as np


def _scores(actual: np.ndarray, predicted: np.ndarray, label) -> dict[str, float | int]:
    hits = predicted == label
    truth = actual == label
    true_positive = float(np.sum(hits & truth))
    predicted_count, actual_count = float(np.sum(hits)), int(np.sum(truth))
    precision = true_positive / predicted_count if predicted_count else 0.0
    recall = true_positive / actual_count if actual_count else 0.0
    total = precision + recall
    f1 = 2 * precision * recall / total if total else 0.0
    return {"f1": f1, "precision": precision, "recall": recall, "support": actual_count}


def classification_metrics(actual: np.ndarray, predicted: np.ndarray) -> dict:
    """Accuracy, macro-averaged precision, recall and F1, and the same per class by name."""
    classes = sorted(set(np.unique(actual).tolist()) | set(np.unique(predicted).tolist()), key=str)
    per_class = {str(label): _scores(actual, predicted, label) for label in classes}

    def macro(key: str) -> float:
        return float(np.mean([scores[key] for scores in per_class.values()]))

    return {
        "accuracy": float(np.mean(actual == predicted)),
        "f1_macro": macro("f1"),
        "precision_macro": macro("precision"),
        "recall_macro": macro("recall"),
        "n_test": int(actual.shape[0]),
        "per_class": per_class,
    }


def regression_metrics(actual: np.ndarray, predicted: np.ndarray) -> dict:
    """RMSE, MAE and R² in the target's units, and MAPE (a fraction, not a percentage) unless
    a target is zero, where it is undefined: it is then left out rather than reported as huge."""
    from sklearn import metrics

    scores = {
        "rmse": float(metrics.root_mean_squared_error(actual, predicted)),
        "mae": float(metrics.mean_absolute_error(actual, predicted)),
        "r2": float(metrics.r2_score(actual, predicted)),
        "n_test": int(actual.shape[0]),
    }
    if not np.any(actual == 0):
        scores["mape"] = float(metrics.mean_absolute_percentage_error(actual, predicted))
    return scores


def confusion_rows(actual: np.ndarray, predicted: np.ndarray) -> str:
    """One ``actual,predicted`` row per test row, as CSV: the input of DVC's confusion plot."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["actual", "predicted"])
    writer.writerows(zip(actual.tolist(), predicted.tolist(), strict=True))
    return out.getvalue()
