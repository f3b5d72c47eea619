"""The teacher in the stores (training from the ledger's labels, registration, out-of-fold probabilities) and pre-labeling."""
