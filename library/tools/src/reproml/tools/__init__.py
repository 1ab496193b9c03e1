"""What no stage imports: the command line (``reproml``, which the make targets
call) and what it drives: settings, git, params composition, data intake, locking, rebuild,
field rebuilds, notes, provenance, signing, tags, the registry, remotes, gc guards, plots
rendered offline and the report. Editing a tool retrains nothing."""
