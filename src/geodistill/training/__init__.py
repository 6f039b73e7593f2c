"""Training loops: orientation, localization baselines (baseline.py), checkpoints, devices, batches."""
