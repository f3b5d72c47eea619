"""Models that run from plain data: a manifest of (path, label, split, box) and torch/timm only.

Nothing here imports FiftyOne or SQL, so training and inference also run on a GPU machine
that has neither; ``curate.models.manifest.from_dataset`` is the one bridge to the stores.
"""
