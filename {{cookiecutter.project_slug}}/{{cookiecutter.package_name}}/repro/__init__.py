"""The reproducibility machinery: launcher, verification, rebuild, provenance, registry,
records and report. A team normally leaves this subpackage alone; its own code (data,
features, models, metrics, stages) lives one level up."""
