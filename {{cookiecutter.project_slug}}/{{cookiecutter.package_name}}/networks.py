"""Neural networks as scikit-learn estimators: a PyTorch module, trained by skorch.

``conf/model/torch_mlp.yaml`` names ``NetClassifier`` or ``NetRegressor`` and, as ``module``,
the network class (``MLP`` here, or one of yours) as a partial: the sizes of its input and
output come from the data, so ``fit`` passes ``n_inputs`` and ``n_outputs``.

The fitted estimator keeps what predicting needs and nothing that varies between identical
runs: the weights as numpy arrays, not skorch's net, whose history records each epoch's
duration. So the model file is the same bytes on every retrain, and on a mismatch verify names
the layer whose weights differ, and by how much. The machinery's determinism settings
(reproml.runtime.determinism) make the training itself repeatable: deterministic algorithms, one
thread, seeds from ``params.yaml``.
"""

from numbers import Integral, Real
from typing import Any, ClassVar

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.preprocessing import LabelEncoder
from sklearn.utils._param_validation import Interval


class MLP(torch.nn.Module):
    """A plain multilayer perceptron: Linear, ReLU (and dropout) per hidden layer."""

    def __init__(self, n_inputs: int, n_outputs: int, hidden_units=(64, 32), dropout=0.0):
        super().__init__()
        layers: list[torch.nn.Module] = []
        width = n_inputs
        for units in hidden_units:
            layers += [torch.nn.Linear(width, units), torch.nn.ReLU()]
            if dropout:
                layers.append(torch.nn.Dropout(dropout))
            width = units
        layers.append(torch.nn.Linear(width, n_outputs))
        self.layers = torch.nn.Sequential(*layers)

    def forward(self, features):
        return self.layers(features)


def _dense_float32(features: Any) -> np.ndarray:
    """What torch takes: a dense float32 array (one-hot encodings may arrive sparse)."""
    if hasattr(features, "toarray"):
        features = features.toarray()
    return np.ascontiguousarray(np.asarray(features, dtype=np.float32))


class _Net(BaseEstimator):
    """Shared by the classifier and the regressor: train with skorch, keep the weights."""

    # scikit-learn's own parameter validation: a wrong type or range names the key.
    _parameter_constraints: ClassVar[dict] = {
        "module": [callable],
        "max_epochs": [Interval(Integral, 1, None, closed="left")],
        "lr": [Interval(Real, 0, None, closed="neither")],
        "batch_size": [Interval(Integral, 1, None, closed="left")],
        "random_state": [Interval(Integral, 0, None, closed="left"), None],
    }

    def __init__(self, module=MLP, max_epochs=30, lr=0.01, batch_size=64, random_state=None):
        self.module = module
        self.max_epochs = max_epochs
        self.lr = lr
        self.batch_size = batch_size
        self.random_state = random_state

    def _fit_network(self, features: np.ndarray, target: np.ndarray, n_outputs: int, criterion):
        from skorch import NeuralNet

        if self.random_state is not None:
            torch.manual_seed(self.random_state)
        self.n_features_in_ = features.shape[1]
        self.n_outputs_ = n_outputs
        net = NeuralNet(
            self.module,
            module__n_inputs=self.n_features_in_,
            module__n_outputs=n_outputs,
            criterion=criterion,
            optimizer=torch.optim.Adam,
            lr=self.lr,
            max_epochs=self.max_epochs,
            batch_size=self.batch_size,
            iterator_train__shuffle=True,
            train_split=None,
            device="cpu",
            verbose=0,
        )
        net.fit(features, target)
        self.weights_ = {
            name: tensor.detach().cpu().numpy().copy()
            for name, tensor in net.module_.state_dict().items()
        }
        return self

    def _network(self) -> torch.nn.Module:
        network = self.module(n_inputs=self.n_features_in_, n_outputs=self.n_outputs_)
        network.load_state_dict({name: torch.from_numpy(w) for name, w in self.weights_.items()})
        return network.eval()

    def _forward(self, features: Any) -> np.ndarray:
        with torch.no_grad():
            return self._network()(torch.from_numpy(_dense_float32(features))).numpy()


class NetClassifier(ClassifierMixin, _Net):
    """Class labels of any type, encoded for the cross-entropy loss and decoded on predict."""

    def fit(self, features, target):
        self._validate_params()
        encoder = LabelEncoder().fit(target)
        self.classes_ = encoder.classes_
        encoded = encoder.transform(target).astype(np.int64)
        return self._fit_network(
            _dense_float32(features), encoded, len(self.classes_), torch.nn.CrossEntropyLoss
        )

    def predict_proba(self, features) -> np.ndarray:
        return torch.softmax(torch.from_numpy(self._forward(features)), dim=1).numpy()

    def predict(self, features) -> np.ndarray:
        return self.classes_[np.argmax(self._forward(features), axis=1)]


class NetRegressor(RegressorMixin, _Net):
    """A numeric target, standardised for training and restored on predict."""

    def fit(self, features, target):
        self._validate_params()
        target = np.asarray(target, dtype=np.float64)
        self.target_mean_, self.target_scale_ = float(target.mean()), float(target.std() or 1.0)
        scaled = ((target - self.target_mean_) / self.target_scale_).astype(np.float32)
        return self._fit_network(
            _dense_float32(features), scaled.reshape(-1, 1), 1, torch.nn.MSELoss
        )

    def predict(self, features) -> np.ndarray:
        scaled = self._forward(features)[:, 0].astype(np.float64)
        return scaled * self.target_scale_ + self.target_mean_
