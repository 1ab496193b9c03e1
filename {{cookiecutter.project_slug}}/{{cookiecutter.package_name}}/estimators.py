"""The team's own estimators. A class here is trained from a YAML file alone:
conf/model/<name>.yaml with ``_target_: <package>.estimators.<Class>`` and its parameters.

Follow scikit-learn's conventions (``__init__`` only stores its arguments, ``fit`` returns
self, fitted state ends in ``_``), so parameters can be checked and the model pickled. This
module is imported by models.py, so it is a code dependency of train and verify: editing it
retrains, as it should.
"""
