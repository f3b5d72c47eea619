"""The eight canonical emotions and how every supported dataset spells them.

Every label that enters curate is mapped here, once, so the rest of the code
only ever sees canonical names. A dataset code that is not an emotion (AffectNet
8-10) maps to ``None``: such samples are kept but never trained on.
"""

from __future__ import annotations

from typing import Final

__all__ = [
    "EMOTIONS",
    "NUM_CLASSES",
    "REMOVAL_REASONS",
    "AFFECTNET",
    "AFFECTNET_NON_EMOTION",
    "FER2013",
    "FER2013_CLASSES",
    "RAFDB",
    "CKPLUS",
    "CKPLUS_CODES",
    "UnknownLabel",
    "canonical",
    "from_code",
    "index_of",
]

#: Canonical order. It equals AffectNet's codes 0-7, so AffectNet needs no remap.
EMOTIONS: Final[tuple[str, ...]] = (
    "neutral",
    "happy",
    "sad",
    "surprise",
    "fear",
    "disgust",
    "anger",
    "contempt",
)
NUM_CLASSES: Final[int] = len(EMOTIONS)
#: What a reviewer may answer instead of an emotion; such a face leaves the working set with this reason
#: (curate/review/project.py shows them as "not a face" and "unclear").
REMOVAL_REASONS: Final[tuple[str, ...]] = ("not_a_face", "unclear")

#: AffectNet expression codes (original release and the *_exp.npy release).
AFFECTNET: Final[dict[int, str | None]] = {
    0: "neutral",
    1: "happy",
    2: "sad",
    3: "surprise",
    4: "fear",
    5: "disgust",
    6: "anger",
    7: "contempt",
    8: None,  # None
    9: None,  # Uncertain
    10: None,  # No-Face
}
#: What AffectNet's non-emotion codes mean, for summaries.
AFFECTNET_NON_EMOTION: Final[dict[int, str]] = {8: "none", 9: "uncertain", 10: "no-face"}

#: fer2013.csv ``emotion`` column.
FER2013: Final[dict[int, str]] = {
    0: "anger",
    1: "disgust",
    2: "fear",
    3: "happy",
    4: "sad",
    5: "surprise",
    6: "neutral",
}
#: FER2013 has no contempt: the seven classes it can express, in canonical order.
FER2013_CLASSES: Final[tuple[str, ...]] = tuple(e for e in EMOTIONS if e != "contempt")

#: RAF-DB basic ``EmoLabel/list_patition_label.txt`` codes (1-based).
RAFDB: Final[dict[int, str]] = {
    1: "surprise",
    2: "fear",
    3: "disgust",
    4: "happy",
    5: "sad",
    6: "anger",
    7: "neutral",
}

#: CK+ ``Emotion/*_emotion.txt`` codes of the original release.
CKPLUS_CODES: Final[dict[int, str]] = {
    0: "neutral",
    1: "anger",
    2: "contempt",
    3: "disgust",
    4: "fear",
    5: "happy",
    6: "sad",
    7: "surprise",
}
#: CK+48 class-folder names.
CKPLUS: Final[dict[str, str]] = {
    "anger": "anger",
    "contempt": "contempt",
    "disgust": "disgust",
    "fear": "fear",
    "happy": "happy",
    "sadness": "sad",
    "surprise": "surprise",
    "neutral": "neutral",
}

_CODE_TABLES: Final[dict[str, dict[int, str | None]]] = {
    "affectnet": AFFECTNET,
    "fer2013": dict(FER2013),
    "rafdb": dict(RAFDB),
    "ckplus": dict(CKPLUS_CODES),
}

# Spellings seen in folder names, YOLO ``names`` lists and csv files of re-packs.
_SYNONYMS: Final[dict[str, str]] = {
    "neutral": "neutral",
    "neutrality": "neutral",
    "happy": "happy",
    "happiness": "happy",
    "happy face": "happy",
    "joy": "happy",
    "sad": "sad",
    "sadness": "sad",
    "surprise": "surprise",
    "surprised": "surprise",
    "fear": "fear",
    "fearful": "fear",
    "afraid": "fear",
    "disgust": "disgust",
    "disgusted": "disgust",
    "anger": "anger",
    "angry": "anger",
    "contempt": "contempt",
    "contemptuous": "contempt",
}


class UnknownLabel(ValueError):
    """A label or code that no mapping knows; the message names it."""


def canonical(name: str) -> str:
    """Map a spelled-out emotion (any case, synonyms, ``_``/``-``) to its canonical name."""
    key = name.strip().lower().replace("_", " ").replace("-", " ")
    key = " ".join(key.split())
    try:
        return _SYNONYMS[key]
    except KeyError:
        raise UnknownLabel(f"unknown emotion name {name!r}") from None


def from_code(dataset: str, code: int | str) -> str | None:
    """Map a dataset's numeric code to a canonical emotion (``None`` = not an emotion).

    Codes stored as strings (AffectNet's ``*_exp.npy`` sometimes holds ``'3'``)
    are cast first, because the datasets really ship them that way.
    """
    try:
        table = _CODE_TABLES[dataset]
    except KeyError:
        raise UnknownLabel(f"no code table for dataset {dataset!r}") from None
    try:
        number = int(float(code)) if isinstance(code, str) else int(code)
    except (TypeError, ValueError):
        raise UnknownLabel(f"{dataset} label code {code!r} is not a number") from None
    if isinstance(code, float) and code != number:
        raise UnknownLabel(f"{dataset} label code {code!r} is not an integer")
    if number not in table:
        raise UnknownLabel(f"{dataset} label code {number} is out of range {min(table)}-{max(table)}")
    return table[number]


def index_of(emotion: str) -> int:
    """Class index of a canonical emotion in :data:`EMOTIONS`."""
    try:
        return EMOTIONS.index(emotion)
    except ValueError:
        raise UnknownLabel(f"{emotion!r} is not a canonical emotion") from None
