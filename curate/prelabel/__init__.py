"""Teacher training (with out-of-fold probabilities and calibration) and pre-labeling."""
