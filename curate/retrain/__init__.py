"""The retrain stage: balanced MobileNetV2 checkpoints from the ledger's current labels."""
