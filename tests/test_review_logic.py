"""Routing (who gets reviewed first) and deciding (what annotators agreed on): the rules, case by case."""

from __future__ import annotations

import datetime as dt

import pytest

from curate.review.decide import decide
from curate.review.project import REMOVAL_ANSWERS, choice_result, chosen_answer, chosen_label, label_config
from curate.review.routing import Candidate, error_likelihood, route
from curate.taxonomy import EMOTIONS, REMOVAL_REASONS


def test_only_uncertain_or_flagged_samples_are_routed_and_known_ones_are_excluded() -> None:
    cands = [
        Candidate("sure", "happy", "happy", 0.97),
        Candidate("unsure", "happy", "happy", 0.6),
        Candidate("flagged", "sad", "sad", 0.95, label_issue=True, label_quality=0.05),
        Candidate("at-threshold", "sad", "sad", 0.9),
        Candidate("pending", "fear", "fear", 0.3),
    ]
    queue = route(cands, threshold=0.9, exclude={"pending"})
    assert [r.uid for r in queue] == ["flagged", "unsure"]
    assert queue[0].reason == "label_issue" and queue[1].reason == "low_confidence"
    both = route([Candidate("x", "sad", "happy", 0.5, label_issue=True, label_quality=0.1)], 0.9)
    assert both[0].reason == "low_confidence+label_issue"


def test_balanced_routing_puts_likely_errors_first_within_a_class_and_does_not_starve_rare_classes() -> None:
    # 30 happy samples, all likelier errors than the single disgust one, plus one fear sample.
    cands = [Candidate(f"h{i:02d}", "happy", "sad", 0.80 - i * 0.01) for i in range(30)]
    cands += [Candidate("d0", "disgust", "disgust", 0.85), Candidate("f0", "fear", "fear", 0.7)]
    queue = route(cands, threshold=0.9, limit=5, strategy="balanced")
    assert {"d0", "f0"} <= {r.uid for r in queue}, "a short budget must still reach the rare classes"
    assert {"d0", "f0"}.isdisjoint(r.uid for r in route(cands, threshold=0.9, limit=5)), "the default spends it on the likeliest errors"
    happy = [r.uid for r in route(cands, threshold=0.9, strategy="balanced") if r.group == "happy"]
    assert happy == [f"h{i:02d}" for i in range(30)], "within a class, the likeliest error comes first"
    # Within the first round the likelier error leads: happy (model disagrees at 0.80) before fear (agrees at 0.7) before disgust.
    assert [r.uid for r in queue[:3]] == ["h00", "f0", "d0"]


def test_each_routing_strategy_orders_its_own_candidates() -> None:
    cands = [
        Candidate("sure-ok", "happy", "happy", 0.97, label_quality=0.95),
        Candidate("unsure", "happy", "happy", 0.6, label_quality=0.6),
        Candidate("flag-mild", "sad", "happy", 0.95, label_issue=True, label_quality=0.3),
        Candidate("flag-bad", "sad", "happy", 0.95, label_issue=True, label_quality=0.05),
        Candidate("rare-unsure", "disgust", "disgust", 0.5, label_quality=0.5),
    ]
    uids = lambda strategy, **kw: [r.uid for r in route(cands, 0.9, strategy=strategy, **kw)]  # noqa: E731
    assert uids("confidence") == ["rare-unsure", "unsure"], "below the threshold only, lowest confidence first"
    assert uids("label_issues") == ["flag-bad", "flag-mild"], "flags only, worst label quality first"
    assert uids("likelihood") == ["flag-bad", "flag-mild", "rare-unsure", "unsure"], "no class dealing"
    assert [r.uid for r in route(cands, 0.9)] == uids("likelihood"), "likelihood is the default (bench/curation.py measured it best)"
    assert uids("balanced")[:2] == ["flag-bad", "rare-unsure"], "one per class first: sad's worst, then disgust (0.5) before happy (0.4)"
    assert sorted(uids("random")) == sorted(c.uid for c in cands), "random sends every face"
    assert uids("random", seed=1) != uids("random", seed=2), "the seed changes the order"
    assert [r.uid for r in route(list(reversed(cands)), 0.9, strategy="random", seed=3)] == uids("random", seed=3), \
        "the random order does not depend on the order samples are listed in"
    assert uids("likelihood", limit=2, exclude={"flag-bad"}) == ["flag-mild", "rare-unsure"]
    with pytest.raises(ValueError, match="unknown routing"):
        route(cands, 0.9, strategy="smart")


def test_error_likelihood_uses_the_best_evidence() -> None:
    assert error_likelihood(Candidate("a", "happy", "sad", 0.8)) == pytest.approx(0.8)  # model disagrees
    assert error_likelihood(Candidate("b", "happy", "happy", 0.8)) == pytest.approx(0.2)  # model agrees
    assert error_likelihood(Candidate("c", "happy", "happy", 0.8, label_quality=0.1)) == pytest.approx(0.9)  # out of fold wins
    assert error_likelihood(Candidate("d", None, "happy", 0.7)) == pytest.approx(0.3)  # unlabeled: uncertainty


def _ann(id_: int, who: str, label: str | None, minute: int, cancelled: bool = False) -> dict:
    return {"id": id_, "completed_by": {"id": hash(who) % 1000, "email": who}, "was_cancelled": cancelled,
            "result": choice_result(label) if label else [], "updated_at": dt.datetime(2026, 1, 1, 12, minute, tzinfo=dt.timezone.utc)}


def test_majority_wins_and_records_who_and_when() -> None:
    d = decide([_ann(1, "a@x", "sad", 1), _ann(2, "b@x", "sad", 5), _ann(3, "c@x", "fear", 9)])
    assert (d.state, d.label, d.votes, d.voters, d.annotation_id) == ("done", "sad", {"sad": 2, "fear": 1}, ("a@x", "b@x"), 2)
    assert d.agreement == pytest.approx(2 / 3) and d.decided_at.minute == 5


def test_a_tie_is_a_conflict_without_a_label() -> None:
    d = decide([_ann(1, "a@x", "sad", 1), _ann(2, "b@x", "fear", 2)])
    assert (d.state, d.label, d.agreement) == ("conflict", None, 0.5)


def test_skips_are_no_votes_and_an_all_skipped_task_is_skipped() -> None:
    assert decide([_ann(1, "a@x", None, 1, cancelled=True)]).state == "skipped"
    d = decide([_ann(1, "a@x", None, 1, cancelled=True), _ann(2, "b@x", "happy", 2)])
    assert (d.state, d.label, d.votes) == ("done", "happy", {"happy": 1})
    assert decide([]).state == "pending"


def test_each_annotator_counts_once_with_their_latest_answer() -> None:
    # a@x first said fear, then made a second annotation saying sad: only sad counts, so there is no tie with b@x.
    d = decide([_ann(1, "a@x", "fear", 1), _ann(2, "b@x", "sad", 2), _ann(3, "a@x", "sad", 3)])
    assert (d.state, d.label, d.votes) == ("done", "sad", {"sad": 2})


def test_the_signature_changes_exactly_when_an_annotation_changes() -> None:
    base = [_ann(1, "a@x", "sad", 1)]
    assert decide(base).signature == decide([_ann(1, "a@x", "sad", 1)]).signature
    assert decide(base).signature != decide([_ann(1, "a@x", "fear", 4)]).signature  # edited later
    assert decide(base).signature != decide(base + [_ann(2, "b@x", "sad", 2)]).signature


def test_label_config_offers_the_eight_emotions_and_two_ways_out_with_hotkeys() -> None:
    import xml.etree.ElementTree as ET

    root = ET.fromstring(label_config())
    choices = root.find("Choices")
    assert [c.get("value") for c in choices] == [*EMOTIONS, "not a face", "unclear"]
    assert [c.get("hotkey") for c in choices] == [str(i) for i in range(1, 9)] + ["9", "0"]
    assert root.find("Image").get("value") == "$image" and root.find("Header").get("value") == "$context"
    assert chosen_label(choice_result("fear")) == "fear"
    assert chosen_label([{"from_name": "emotion", "type": "choices", "value": {"choices": ["bogus"]}}]) is None
    assert (chosen_answer(choice_result("not a face")), chosen_answer(choice_result("unclear"))) == ("not_a_face", "unclear")
    assert chosen_label(choice_result("not a face")) is None, "a way out is no emotion"
    assert tuple(reason for _, reason in REMOVAL_ANSWERS.values()) == REMOVAL_REASONS, "the buttons answer in the taxonomy's words"


def test_not_a_face_or_unclear_wins_like_an_emotion_but_decides_no_label() -> None:
    d = decide([_ann(1, "a@x", "not a face", 1), _ann(2, "b@x", "not a face", 4), _ann(3, "c@x", "sad", 9)])
    assert (d.state, d.label, d.removal, d.voters, d.annotation_id) == ("done", None, "not_a_face", ("a@x", "b@x"), 2)
    assert d.votes == {"not_a_face": 2, "sad": 1}
    assert decide([_ann(1, "a@x", "unclear", 1)]).removal == "unclear"
    tied = decide([_ann(1, "a@x", "unclear", 1), _ann(2, "b@x", "happy", 2)])
    assert (tied.state, tied.label, tied.removal) == ("conflict", None, None)
    changed_mind = decide([_ann(1, "a@x", "not a face", 1), _ann(2, "a@x", "fear", 3)])
    assert (changed_mind.label, changed_mind.removal) == ("fear", None), "the annotator's latest answer counts"


def test_review_commands_explain_what_is_missing_in_one_line(curate_home) -> None:  # noqa: ANN001
    from curate.store.sql import ledger, session
    from tests.helpers import run_cli

    unknown = run_cli("review", "status", "--dataset", "nope", check=False)
    assert unknown.returncode == 2 and unknown.stderr.strip() == (
        "error: dataset 'nope' is not in the ledger; run `curate ingest ... --dataset nope` first")
    url = f"sqlite:///{curate_home / 'curate.db'}"
    session.upgrade(url)
    with session.session_scope(url) as db:
        ledger.get_or_create_dataset(db, "known")
    no_server = run_cli("review", "pull", "--dataset", "known", check=False)
    assert no_server.returncode == 2 and len(no_server.stderr.strip().splitlines()) == 1
    assert "the embedded Label Studio is not running: start it with `curate labelstudio serve" in no_server.stderr
    empty = run_cli("review", "status", "--dataset", "known", "--json")
    assert '"tasks": 0' in empty.stdout and '"human_changed_label": null' in empty.stdout
    bad = run_cli("review", "push", "--dataset", "known", "--annotators", "2", "--second-opinions", "sometimes", check=False)
    assert bad.returncode == 2 and bad.stderr.strip() == "error: --second-opinions 'sometimes' is not one of all, activelab"


def test_upload_opens_only_files_still_inside_the_image_root(tmp_path) -> None:  # noqa: ANN001
    """The time-of-check gap: a file or folder swapped for a symlink after screening is refused at open time."""
    import os

    import pytest

    from curate.exceptions import CurateError
    from curate.review.push import open_inside

    root, outside = tmp_path / "images", tmp_path / "secret"
    (root / "sub").mkdir(parents=True)
    outside.mkdir()
    (outside / "face.png").write_bytes(b"secret")
    (root / "sub" / "face.png").write_bytes(b"face")
    with open_inside(root / "sub" / "face.png", [root]) as fh:
        assert fh.read() == b"face"
    (root / "sub" / "face.png").unlink()
    os.symlink(outside / "face.png", root / "sub" / "face.png")  # the file became a link
    with pytest.raises(CurateError, match="not opened"):
        open_inside(root / "sub" / "face.png", [root])
    (root / "sub" / "face.png").unlink()
    (root / "sub").rmdir()
    os.symlink(outside, root / "sub")  # the folder became a link
    with pytest.raises(CurateError, match="outside the dataset's image roots"):
        open_inside(root / "sub" / "face.png", [root])


def test_project_titles_fit_label_studio_and_stay_distinct() -> None:
    from curate.review.project import TITLE_MAX, project_title

    assert project_title("fer2013") == "curate: fer2013"
    a, b = project_title("a_long_dataset_name_from_a_benchmark_run_number_one"), project_title("a_long_dataset_name_from_a_benchmark_run_number_two")
    assert len(a) <= TITLE_MAX and len(b) <= TITLE_MAX and a != b
    assert a == project_title("a_long_dataset_name_from_a_benchmark_run_number_one"), "found again by the same title"


def _two_annotators(n: int, careless_right: float, seed: int = 0) -> tuple[dict, dict, dict]:
    """``n`` tasks answered by a careful annotator (always right) and a careless one (right ``careless_right`` of the
    time, else the next emotion), with a teacher that leans to the truth (0.47 against 0.08 for each other class)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    answers, probs, truth = {}, {}, {}
    for t in range(n):
        y = EMOTIONS[int(rng.integers(0, 7))]
        wrong = EMOTIONS[(EMOTIONS.index(y) + 1) % 7]
        answers[t] = {"careful@x": y, "careless@x": y if rng.random() < careless_right else wrong}
        p = np.full(8, 0.08)
        p[EMOTIONS.index(y)] = 0.44
        probs[t], truth[t] = p / p.sum(), y
    return answers, probs, truth


def test_crowdlab_decides_two_annotator_ties_from_the_teacher_and_ranks_the_careful_annotator_first() -> None:
    from curate.review.consensus import crowdlab

    answers, probs, truth = _two_annotators(60, careless_right=0.6)
    ties = [t for t, a in answers.items() if len(set(a.values())) > 1]
    assert len(ties) >= 15, "the careless annotator disagrees often enough to matter"
    answers[99], probs[99] = {"careful@x": "happy"}, probs[0]  # one answer: the majority's business, not CROWDLAB's
    found = crowdlab(answers, probs)
    assert all(found.labels[t] == truth[t] for t in ties), "every tie goes to the truth the teacher leans to"
    assert 99 not in found.labels and set(found.labels) == set(range(60))
    assert found.annotator_quality["careful@x"] > found.annotator_quality["careless@x"]
    assert found.annotator_tasks == {"careful@x": 61, "careless@x": 60}
    assert all(0.0 <= q <= 1.0 for q in found.quality.values())
    assert min(found.quality[t] for t in ties) < min(found.quality[t] for t in found.labels if t not in ties), "a tie is less sure"


def test_crowdlab_waits_for_two_annotators_on_one_face_and_ignores_non_emotions() -> None:
    import numpy as np

    from curate.review.consensus import crowdlab

    flat = np.full(8, 1 / 8)
    assert crowdlab({1: {"a@x": "sad"}, 2: {"b@x": "fear"}}, {1: flat, 2: flat}) is None, "no face answered twice yet"
    assert crowdlab({1: {"a@x": "sad", "b@x": "not_a_face"}}, {1: flat}) is None, "'not a face' is no emotion to weigh"


def test_activelab_spends_a_task_on_a_second_opinion_only_where_it_beats_a_new_face(capsys: pytest.CaptureFixture[str]) -> None:
    import numpy as np

    from curate.review.consensus import second_opinions

    def leaning(emotion: str, p: float) -> np.ndarray:
        return np.array([p if e == emotion else (1 - p) / 7 for e in EMOTIONS])

    answers = {1: {"a@x": "happy"}, 2: {"a@x": "sad"}, 3: {"a@x": "fear"}, 4: {"a@x": "unclear"}}
    probs = {1: leaning("happy", 0.9), 2: leaning("neutral", 0.9), 3: leaning("fear", 0.5), 4: leaning("fear", 0.2)}
    new = np.stack([leaning("anger", 0.6), leaning("surprise", 0.95)])
    picks = [second_opinions(answers, probs, new, budget) for budget in range(6)]
    assert picks[0] == [] and picks[1] == picks[2] == [2], "the answer the teacher contradicts first; then a new face it doubts"
    assert picks[3] == picks[4] == [2, 3] and picks[5] == [2, 3, 1], "the confident agreement last, after a confident new face"
    assert all(4 not in p for p in picks), "an 'unclear' answer is no emotion to second-guess"
    assert second_opinions(answers, probs, np.zeros((0, 8)), 2) == [2, 3], "with no new face, only answered ones compete"
    assert capsys.readouterr().out == "", "cleanlab's notes stay off stdout, where --json goes"


def test_a_mildly_flagged_face_goes_before_an_unflagged_one_the_model_doubts_and_flags_keep_their_priority_range() -> None:
    """The README's promise "the likeliest label errors (cleanlab flags) go first", on the case that separates it from
    ranking by error likelihood alone (issue 44): a flag with label quality 0.6 (likelihood 0.4) against an unflagged
    face whose teacher disagrees at confidence 0.8 (likelihood 0.8)."""
    mild_flag = Candidate("flagged", "sad", "sad", 0.85, label_issue=True, label_quality=0.6)
    doubted = Candidate("doubted", "happy", "neutral", 0.8)
    strong_flag = Candidate("strong", "fear", "surprise", 0.7, label_issue=True, label_quality=0.05)
    unsure = Candidate("unsure", "anger", "anger", 0.4)
    queue = route([doubted, unsure, mild_flag, strong_flag], threshold=0.9)
    assert [r.uid for r in queue] == ["strong", "flagged", "doubted", "unsure"]
    assert error_likelihood(doubted) > error_likelihood(mild_flag), "the order comes from the flag, not from the likelihood"
    flagged = [r for r in queue if "label_issue" in r.reason]
    others = [r for r in queue if "label_issue" not in r.reason]
    # The ranges Routed documents (its priority field's comment): label issues in [1, 2], the rest in [0, 1].
    assert all(1.0 <= r.priority <= 2.0 for r in flagged) and all(0.0 <= r.priority <= 1.0 for r in others)
    assert {r.uid: round(r.priority, 6) for r in flagged} == {"strong": 1.95, "flagged": 1.4}


def _three_annotators(n: int, seed: int = 0) -> tuple[dict, dict, dict]:
    """One always-right annotator, two careless ones right half the time (and wrong the same way when both are), a
    teacher leaning to the truth: the case CROWDLAB exists for, where a careless majority outvotes the careful one."""
    import numpy as np

    rng = np.random.default_rng(seed)
    answers, probs, truth = {}, {}, {}
    for t in range(n):
        y = EMOTIONS[t % 7]
        wrong = EMOTIONS[(EMOTIONS.index(y) + 1) % 7]
        careless = [y if rng.random() < 0.5 else wrong for _ in range(2)]
        answers[t] = {"careful@x": y, "careless1@x": careless[0], "careless2@x": careless[1]}
        p = np.full(8, 0.08)
        p[EMOTIONS.index(y)] = 0.3
        probs[t], truth[t] = p / p.sum(), y
    return answers, probs, truth


def test_crowdlab_overrules_a_careless_majority_with_the_careful_annotator() -> None:
    """Issue 44: with majority vote instead of CROWDLAB's best_quality consensus every outvoted task goes wrong."""
    from curate.review.consensus import crowdlab

    answers, probs, truth = _three_annotators(60)
    outvoted = [t for t, a in answers.items() if a["careless1@x"] == a["careless2@x"] != a["careful@x"]]
    assert len(outvoted) >= 8, "the careless pair outvotes the careful annotator often enough to matter"
    found = crowdlab(answers, probs)
    assert [found.labels[t] for t in outvoted] == [truth[t] for t in outvoted], "the careful annotator's answer wins"
    assert found.annotator_quality["careful@x"] > max(found.annotator_quality["careless1@x"], found.annotator_quality["careless2@x"])


def test_malformed_task_data_and_answers_from_label_studio_count_as_nothing_instead_of_raising(monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 42: one Label Studio account could stop every pull and push: a task whose data is ``{"sample_id": ["x"]}``
    made orphan adoption raise (unhashable), an answer of ``[["happy"]]`` made ``chosen_answer`` raise, and the pull rolled
    back every time. Malformed values from the server are now no sample and no answer; the rest goes on."""
    from types import SimpleNamespace

    import curate.review.records as records
    from curate.review.push import adopt_orphans

    def region(value: object) -> dict:
        return {"from_name": "emotion", "to_name": "image", "type": "choices", "value": value}

    for result in ([region({"choices": [["happy"]]})], [region({"choices": "happy"})], [region(["happy"])], ["happy"], {"a": 1},
                   [region({"choices": [{"x": 1}]})], [region({"choices": ["happy", "sad"]})]):
        assert chosen_answer(result) is None, result
    assert chosen_answer([region({"choices": [["happy"]]}), region({"choices": ["sad"]})]) == "sad", "a good region still counts"
    # The ledger side of adoption, as an empty ledger that knows one face "x" (the server data is what is under test).
    monkeypatch.setattr(records, "known_tasks", lambda db, dataset_id, project: {})
    monkeypatch.setattr(records, "sample_ids", lambda db, dataset_id: {"x": 7})
    monkeypatch.setattr(records, "record_pushed", lambda db, dataset_id, project, orphans: [t.uid for t in orphans])
    tasks = [SimpleNamespace(id=1, data={"sample_id": ["x"]}, predictions=[]), SimpleNamespace(id=2, data=["x"], predictions=[]),
             SimpleNamespace(id=3, data={"sample_id": {"a": 1}}, predictions=[]), SimpleNamespace(id=4, data={"sample_id": "x"}, predictions=[])]
    assert adopt_orphans(tasks, None, 1, 1) == ["x"], "the well-formed orphan is still adopted"
