"""Every dataset code maps to the canonical emotion its release documents (the tables are in curate/taxonomy.py)."""

import pytest

from curate import taxonomy as tx


def test_canonical_order_matches_affectnet_codes() -> None:
    assert tx.EMOTIONS == ("neutral", "happy", "sad", "surprise", "fear", "disgust", "anger", "contempt")
    for code in range(8):
        assert tx.from_code("affectnet", code) == tx.EMOTIONS[code]


@pytest.mark.parametrize("code", [8, 9, 10])
def test_affectnet_non_emotions_map_to_none(code: int) -> None:
    assert tx.from_code("affectnet", code) is None
    assert code in tx.AFFECTNET_NON_EMOTION


@pytest.mark.parametrize(
    "code,expected",
    [(0, "anger"), (1, "disgust"), (2, "fear"), (3, "happy"), (4, "sad"), (5, "surprise"), (6, "neutral")],
)
def test_fer2013_codes(code: int, expected: str) -> None:
    assert tx.from_code("fer2013", code) == expected


@pytest.mark.parametrize(
    "code,expected",
    [(1, "surprise"), (2, "fear"), (3, "disgust"), (4, "happy"), (5, "sad"), (6, "anger"), (7, "neutral")],
)
def test_rafdb_codes(code: int, expected: str) -> None:
    assert tx.from_code("rafdb", code) == expected


@pytest.mark.parametrize(
    "code,expected",
    [(0, "neutral"), (1, "anger"), (2, "contempt"), (3, "disgust"), (4, "fear"), (5, "happy"), (6, "sad"), (7, "surprise")],
)
def test_ckplus_codes(code: int, expected: str) -> None:
    assert tx.from_code("ckplus", code) == expected


def test_ckplus_folder_names_cover_ckplus48() -> None:
    folders = ["anger", "contempt", "disgust", "fear", "happy", "sadness", "surprise"]
    assert [tx.CKPLUS[f] for f in folders] == ["anger", "contempt", "disgust", "fear", "happy", "sad", "surprise"]


def test_fer2013_folder_names_and_synonyms() -> None:
    for folder, expected in {"angry": "anger", "disgust": "disgust", "fear": "fear", "happy": "happy",
                             "neutral": "neutral", "sad": "sad", "surprise": "surprise"}.items():
        assert tx.canonical(folder) == expected
    assert tx.canonical("  Happiness ") == "happy"
    assert tx.canonical("SADNESS") == "sad"


def test_codes_stored_as_strings_are_cast() -> None:
    assert tx.from_code("affectnet", "3") == "surprise"
    assert tx.from_code("affectnet", "6.0") == "anger"


@pytest.mark.parametrize("dataset,code", [("affectnet", 11), ("affectnet", -1), ("fer2013", 7), ("rafdb", 0), ("ckplus", 8), ("rafdb", "x")])
def test_out_of_range_codes_are_refused_with_the_code_named(dataset: str, code) -> None:  # noqa: ANN001
    with pytest.raises(tx.UnknownLabel, match=str(code)):
        tx.from_code(dataset, code)


def test_unknown_name_is_refused() -> None:
    with pytest.raises(tx.UnknownLabel, match="bored"):
        tx.canonical("bored")
    assert len(tx.FER2013_CLASSES) == 7 and "contempt" not in tx.FER2013_CLASSES
