"""What the team's stages import: the launcher that pins the environment, errors, atomic
writes, hashing, the model file and its record, the environment check, determinism settings,
the stage runner, the params freshness check and verification. It never imports the team's
package or the tools, and dvc.yaml lists this folder as one dependency of every stage."""
