"""Classification metrics in plain numpy: importing sklearn.metrics would cost the evaluate
stage a second of start-up for four sums."""

import numpy as np


def classification_metrics(actual: np.ndarray, predicted: np.ndarray) -> dict[str, float | int]:
    """Accuracy and macro-averaged precision, recall and F1 over the classes seen."""
    classes = np.union1d(actual, predicted)
    precisions, recalls, f1s = [], [], []
    for label in classes.tolist():
        true_positive = float(np.sum((predicted == label) & (actual == label)))
        predicted_count = float(np.sum(predicted == label))
        actual_count = float(np.sum(actual == label))
        precision = true_positive / predicted_count if predicted_count else 0.0
        recall = true_positive / actual_count if actual_count else 0.0
        total = precision + recall
        precisions.append(precision)
        recalls.append(recall)
        f1s.append(2 * precision * recall / total if total else 0.0)
    return {
        "accuracy": float(np.mean(actual == predicted)),
        "f1_macro": float(np.mean(f1s)),
        "precision_macro": float(np.mean(precisions)),
        "recall_macro": float(np.mean(recalls)),
        "n_test": int(actual.shape[0]),
    }


def confusion_rows(actual: np.ndarray, predicted: np.ndarray) -> str:
    """One ``actual,predicted`` line per test row: the input of DVC's confusion template."""
    lines = ["actual,predicted"]
    lines += [f"{a},{p}" for a, p in zip(actual.tolist(), predicted.tolist(), strict=True)]
    return "\n".join(lines) + "\n"
