"""The training recipe's knobs, kept free of torch so the command line can show them in ``--help`` fast.

These dataclasses are the single place a training default lives: ``curate teacher train``,
``curate retrain`` and the workflow stages ``teacher`` and ``retrain`` all derive their options from
them (curate/stages). The recipe for 48 px grey faces is documented in curate/models/train.py.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from curate.options import option

__all__ = ["OOF_MODES", "BALANCE_MODES", "TeacherPlan", "TrainConfig", "RetrainConfig"]

OOF_MODES = ("cross", "linear", "none")
BALANCE_MODES = ("oversample", "undersample", "class-weights", "none")  # curate/models/balance.py draws them


@dataclass
class TrainConfig:
    arch: str = option("resnet50", "Any timm architecture.")
    weights: str | None = option(None, "Local weights file or hub name (default: from scratch).")
    image_size: int = option(48, "Input size in px.", minimum=16)
    random_crop: int = option(0, "Train on random windows of this many px inside the face (0: the whole face); "
                                 "inference sees the centre window.", minimum=0)
    augment: str = option("full", "Training augmentation: full (flip, rotation, random window, brightness, noise, erasing) "
                                   "or light (flip and random window: learns sooner on a short schedule).", choices=("full", "light"))
    stem_stride: int | None = option(None, "Stem down-sampling 1, 2 or 4 (default: the recipe's for the arch and size).",
                                     minimum=1, maximum=4)
    epochs: int = option(10, "Epochs (per fold model for the teacher).", minimum=1)
    batch_size: int = option(64, "Images per step.", minimum=1, setting="batch_size")
    lr: float = option(2e-3, "Peak learning rate (linear warm-up, then cosine decay).", minimum=0.0)
    weight_decay: float = option(0.05, "AdamW weight decay.", minimum=0.0)
    optimizer: str = option("adamw", "adamw or sgd.", choices=("adamw", "sgd"))
    warmup_epochs: float = option(1.0, "Epochs of linear learning-rate warm-up.", minimum=0.0)
    label_smoothing: float = option(0.1, "Label smoothing of the cross-entropy.", minimum=0.0, maximum=1.0)
    ema_decay: float = option(0.998, "Decay of the weight average that is evaluated and saved (0: off).", minimum=0.0, maximum=1.0)
    tta_flip: bool = option(True, "Average predictions over the face and its mirror image.")
    seed: int = option(0, "Seed of every random choice (resume replays the same epochs).", setting="seed")
    workers: int = option(0, "DataLoader worker processes.", minimum=0, cli=False)
    device: str = option("auto", "auto, cpu or cuda[:N].", setting="device")
    max_steps_per_epoch: int | None = option(None, "Cap steps per epoch (smoke runs).", minimum=1)
    state_every: float = option(0.0, "Seconds between writes of the resume state (0: after every epoch); it is also written at "
                                      "the end, so a kill loses at most this much training.", minimum=0.0)
    keep_epochs: bool = option(True, "Keep a checkpoint per epoch (registered with its metrics); off: best and last only, for "
                                     "big models whose per-epoch files would fill the disk.")
    nproc: int = option(1, "Training processes on this machine, data parallel (gloo on CPU, one GPU each with NCCL); "
                           "checkpoints and registration happen once.", minimum=1)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def resolved_stem_stride(self) -> int | None:
        from curate.models.factory import default_stem_stride

        return self.stem_stride if self.stem_stride is not None else default_stem_stride(self.arch, self.image_size)

    def preprocess(self):  # noqa: ANN201 - curate.models.preprocess.Preprocess
        from curate.models.preprocess import Preprocess

        return Preprocess(image_size=self.image_size, tta_flip=self.tta_flip, crop=self.random_crop)

    def build_model(self, num_classes: int):  # noqa: ANN201
        from curate.models.factory import create_model

        return create_model(self.arch, num_classes, self.weights, stem_stride=self.resolved_stem_stride())


@dataclass
class RetrainConfig(TrainConfig):
    arch: str = option("mobilenetv2_100", "Any timm architecture.")
    balance: str = option("oversample", "oversample, undersample, class-weights or none.",
                          choices=BALANCE_MODES)
    distill: bool = option(False, "Distil from the teacher (loss (1 - kd_weight) * CE + kd_weight * KD at kd_temperature).")
    kd_temperature: float = option(2.0, "Distillation temperature.", minimum=0.1)
    kd_weight: float = option(0.3, "Weight of the distillation term.", minimum=0.0, maximum=1.0)
    # The teacher's fold models turn it off: their epochs are only ranked against each other (the best is kept), and the
    # teacher's own validation and test metrics use the mirror image anyway; on the CPU teacher that halves the
    # validation, about a tenth of every epoch (curate/models/members.py).
    val_tta: bool = option(True, "Validate each epoch with tta_flip's mirror-image average.", cli=False)


@dataclass(kw_only=True)  # keyword-only: mixed into option classes whose own fields have no defaults
class TeacherPlan:
    """What only the teacher does on top of TrainConfig: how its out-of-fold probabilities are made.

    The one home of these defaults for `curate teacher train`, the workflow's teacher stage and
    ``python -m curate.models.from_manifest teacher``."""

    folds: int = option(2, "K fold models (cross) or CV folds (linear).", minimum=2)
    oof: str = option("cross", "cross (the K fold models are the teacher), linear (needs --weights) or none.", choices=OOF_MODES)
    parallel_folds: int = option(0, "Fold models trained at once, each in its own process with its share of the cores "
                                    "(0: automatic: on a CPU one per core when each trains on 2,000+ faces, else one at a time).",
                                 minimum=0)
