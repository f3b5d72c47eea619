"""Human review against a real Label Studio server: push, reviewers simulated through the SDK, pull into
SQL and FiftyOne, a server given by URL, and the faults (bad token, unreachable, kill -9, restart, races)."""

from __future__ import annotations

import itertools
import os
import signal
import socket
import subprocess
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
import pytest

from tests import builders
from tests.helpers import free_port, ingest_unfiltered, last_json, run_cli, sql_rows, wait_for

_ids = itertools.count()


@dataclass
class ReviewSetup:
    name: str
    home: Path
    url: str  # ledger
    root: Path  # image root
    env: dict[str, str]
    labels: dict[str, str]  # uid -> dataset label
    model: dict[str, tuple[str, float]]  # uid -> (model label, confidence)
    issues: set[str]  # uids cleanlab flagged
    paths: dict[str, str]  # uid -> filepath

    @property
    def routed(self) -> set[str]:
        return {u for u, (_, c) in self.model.items() if c < 0.9} | self.issues


def _review_dataset(tmp_path: Path, extra=None, url: str | None = None) -> ReviewSetup:  # noqa: ANN001
    """28 synthetic faces ingested for real, with teacher predictions and two cleanlab flags stored the way
    `curate prelabel` and `curate errors` store them (training a teacher here would only cost time).
    The ledger is SQLite in the test's home unless ``url`` names another database."""
    from curate.models.manifest import from_dataset
    from curate.prelabel import records
    from curate.store import fo_store
    from curate.taxonomy import EMOTIONS

    built = builders.fer2013_folders(tmp_path / "images", per_class=2)
    if extra:
        extra(built.root)
    name, home, url = ingest_unfiltered(tmp_path, "fer2013", built.root, f"rv{os.getpid()}_{next(_ids)}", url)
    rows = sorted(from_dataset(name, url), key=lambda r: r.uid)
    n = len(rows)
    # Confidences 0.30 .. 0.975 in steps of 0.025; the model agrees with the dataset on even rows.
    conf = np.array([0.1 if os.path.islink(r.path) else 0.3 + 0.025 * i for i, r in enumerate(rows)])
    model = [r.label if i % 2 == 0 else EMOTIONS[(EMOTIONS.index(r.label) + 1) % 8] for i, r in enumerate(rows)]
    digest = "cd" * 32
    run_id, _ = records.prelabel_run(url, name, "resnet50", digest, {})
    rng = np.random.default_rng(0)
    records.store_prelabels(url, name, run_id, digest, [r.uid for r in rows], model, conf, rng.normal(size=(n, 8)), rng.normal(size=(n, 4)))
    records.finish_prelabel_run(url, run_id, {})
    issues = {rows[-1].uid, rows[-2].uid}  # confident rows: routed only because cleanlab flags them
    ds = fo_store.load_dataset(name, create=False)
    ds.set_values("label_issue", {r.uid: r.uid in issues for r in rows}, key_field="sample_uid")
    ds.set_values("label_quality", {r.uid: (0.02 if r.uid in issues else 0.6) for r in rows}, key_field="sample_uid")
    env = {"CURATE_HOME": str(home), "CURATE_DB_URL": url}
    return ReviewSetup(name, home, url, built.root, env, {r.uid: r.label for r in rows},
                       {r.uid: (m, float(c)) for r, m, c in zip(rows, model, conf)}, issues, {r.uid: r.path for r in rows})


def _served(tmp_path: Path, label_studio):  # noqa: ANN001, ANN202
    """A review dataset, a real Label Studio serving its images, and `curate ... --json` against both."""
    setup = _review_dataset(tmp_path)
    info = label_studio(setup.home, setup.root)
    return setup, info, lambda *args: last_json(run_cli(*args, "--json", env=setup.env))


def _sdk(info: dict):  # noqa: ANN202
    from label_studio_sdk import LabelStudio

    return LabelStudio(base_url=info["url"], api_key=info["token"])


def _project(ls, name: str) -> int:  # noqa: ANN001
    return next(p.id for p in ls.projects.list() if p.title == f"curate: {name}")


def _tasks(ls, project: int) -> list:  # noqa: ANN001
    return list(ls.tasks.list(project=project, fields="all"))


def _choice(label: str) -> list[dict]:
    return [{"from_name": "emotion", "to_name": "image", "type": "choices", "value": {"choices": [label]}}]



def _other(label: str, *avoid: str) -> str:
    from curate.taxonomy import EMOTIONS

    return next(e for e in EMOTIONS if e != label and e not in avoid)


@pytest.mark.slow  # ~90 s: every review path on a real server; CI runs it (.ci/run)
def test_push_review_pull_end_to_end_on_the_embedded_server(tmp_path: Path, label_studio, ledger_db: str) -> None:  # noqa: ANN001, PLR0915
    setup = _review_dataset(tmp_path, url=ledger_db)
    # The server serves exactly the dataset's image root, as the README's review round does
    # (Label Studio refuses a storage equal to its document root: curate must add them below it).
    info = label_studio(setup.home, setup.root)
    outputs: list[str] = []

    def cli(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        proc = run_cli(*args, env=setup.env, check=check)
        outputs.extend([proc.stdout, proc.stderr])
        return proc

    first = last_json(cli("review", "push", "--dataset", setup.name, "--limit", "10", "--annotators", "3", "--json"))
    assert first["pushed"] == 10 and first["project_created"] and first["images"] == {"local_files": 10, "upload": 0}
    assert len(first["by_class"]) == 7, "ten places over seven classes: every class gets one"
    ls = _sdk(info)
    project = _project(ls, setup.name)
    assert ls.projects.get(id=project).maximum_annotations == 3
    tasks = _tasks(ls, project)
    pushed = {t.data["sample_id"]: t for t in tasks}
    assert len(tasks) == 10 and set(pushed) <= setup.routed
    assert setup.issues <= set(pushed), "the likeliest errors (cleanlab flags) go first"
    # Each task carries the dataset label, the model's guess as a pre-annotation, and an image the server really serves.
    for uid, task in pushed.items():
        label, confidence = setup.model[uid]
        assert task.data["dataset_label"] == setup.labels[uid]
        (prediction,) = task.predictions
        assert prediction.result == _choice(label) and prediction.score == pytest.approx(confidence)
        assert prediction.model_version == "resnet50@cdcdcdcdcdcd"
        image = httpx.get(info["url"] + task.data["image"], headers={"Authorization": f"Token {info['token']}"})
        assert image.status_code == 200 and image.content == Path(setup.paths[uid]).read_bytes()
    assert sorted(sql_rows(setup.url, "SELECT ls_task_id FROM review_tasks WHERE state='pending'")) == sorted((t.id,) for t in tasks)

    rest = last_json(cli("review", "push", "--dataset", setup.name, "--json"))
    again = last_json(cli("review", "push", "--dataset", setup.name, "--json"))
    assert rest["pushed"] == len(setup.routed) - 10 and rest["already_in_review"] == 10
    assert again["pushed"] == 0 and again["left_in_queue"] == 0
    tasks = _tasks(ls, project)
    assert sorted(t.data["sample_id"] for t in tasks) == sorted(setup.routed), "every routed sample exactly once"

    # Reviewers: accept, change, skip, two disagree, three with a 2-1 majority.
    bob = ls.users.create(email="bob@curate.test", username="bob")
    carol = ls.users.create(email="carol@curate.test", username="carol")
    by_uid = {t.data["sample_id"]: t for t in tasks}
    accept, change, skip, tie, majority = sorted(by_uid)[:5]
    ls.annotations.create(id=by_uid[accept].id, result=_choice(setup.model[accept][0]))
    changed_to = _other(setup.labels[change], setup.model[change][0])
    ls.annotations.create(id=by_uid[change].id, result=_choice(changed_to))
    ls.annotations.create(id=by_uid[skip].id, result=[], was_cancelled=True)
    ls.annotations.create(id=by_uid[tie].id, result=_choice("sad"))
    ls.annotations.create(id=by_uid[tie].id, result=_choice("fear"), completed_by=bob.id)
    ls.annotations.create(id=by_uid[majority].id, result=_choice("surprise"), completed_by=bob.id)
    ls.annotations.create(id=by_uid[majority].id, result=_choice("surprise"), completed_by=carol.id)
    ls.annotations.create(id=by_uid[majority].id, result=_choice("anger"))
    # The teacher's out-of-fold view of the two shared faces: CROWDLAB weighs it with the annotators (curate/review/consensus.py).
    from curate.store import fo_store
    from curate.taxonomy import EMOTIONS

    leaning = {tie: "fear", majority: "surprise"}
    fo_store.load_dataset(setup.name, create=False).set_values(
        "prelabel_oof", {u: [0.72 if e == label else 0.04 for e in EMOTIONS] for u, label in leaning.items()}, key_field="sample_uid")

    pulled = last_json(cli("review", "pull", "--dataset", setup.name, "--json"))
    assert (pulled["changed"], pulled["done"], pulled["skipped"], pulled["conflict"], pulled["new_human_labels"]) == (5, 3, 1, 1, 4)
    assert pulled["decided_by_crowdlab"] == 1 and set(pulled["annotator_quality"]) == {"admin@curate.local", "bob@curate.test", "carol@curate.test"}
    events = {uid: row for uid, *row in sql_rows(setup.url, """
        SELECT s.uid, e.label, e.actor, e.previous_label, e.ls_task_id, e.ls_annotation_id, e.ls_project_id
        FROM label_events e JOIN samples s ON s.id = e.sample_id WHERE e.source = 'human'""")}
    assert set(events) == {accept, change, majority, tie}
    assert events[accept][:4] == [setup.model[accept][0], "admin@curate.local", setup.labels[accept], by_uid[accept].id]
    assert events[change][:2] == [changed_to, "admin@curate.local"] and events[change][2] == setup.labels[change]
    assert events[majority][:2] == ["surprise", "bob@curate.test,carol@curate.test"]
    assert events[tie][:3] == ["fear", "crowdlab:admin@curate.local,bob@curate.test", setup.labels[tie]], \
        "the 1-1 tie goes to the answer the teacher leans to, and says who decided it"
    assert all(e[5] == project and e[3] and (e[4] or u == tie) for u, e in events.items()), "Label Studio ids are recorded"
    states = dict(sql_rows(setup.url, "SELECT s.uid, t.state FROM review_tasks t JOIN samples s ON s.id = t.sample_id"))
    assert (states[accept], states[skip], states[tie]) == ("done", "skipped", "done")
    current = dict(sql_rows(setup.url, "SELECT s.uid, c.label FROM current_labels c JOIN samples s ON s.id = c.sample_id WHERE c.source='human'"))
    assert current == {accept: setup.model[accept][0], change: changed_to, majority: "surprise", tie: "fear"}

    ds = fo_store.load_dataset(setup.name, create=False)
    ds.reload()
    view = {s.sample_uid: s for s in ds.select_by("sample_uid", [accept, change, skip, tie, majority])}
    assert view[change].label.label == changed_to and view[change].reviewed is True
    assert view[majority].review_agreement == pytest.approx(2 / 3)
    assert view[tie].review_conflict is True and view[tie].review_status == "conflict", "a tie CROWDLAB decided stays in sight"
    assert view[tie].reviewed is True and view[skip].review_status == "skipped"
    decided = {accept: setup.model[accept][0], change: changed_to, majority: "surprise", tie: "fear"}
    assert set(ds.load_saved_view("relabeled").values("sample_uid")) == {u for u, label in decided.items() if label != setup.labels[u]}

    # Pulling again changes nothing; an edited annotation becomes a new event and keeps the old one.
    before = sql_rows(setup.url, "SELECT COUNT(*) FROM label_events")[0][0]
    assert pulled["incremental_since"] is None and pulled["listed"] == len(setup.routed), "the first pull lists everything"
    quiet = last_json(cli("review", "pull", "--dataset", setup.name, "--json"))
    assert quiet["changed"] == 0 and quiet["incremental_since"] and quiet["listed"] < len(setup.routed), "later pulls list only recent tasks"
    assert sql_rows(setup.url, "SELECT COUNT(*) FROM label_events")[0][0] == before
    edited_to = _other(changed_to, setup.labels[change])
    annotation = ls.tasks.get(id=by_uid[change].id).annotations[0]
    ls.annotations.update(id=annotation["id"], result=_choice(edited_to))
    edit = last_json(cli("review", "pull", "--dataset", setup.name, "--json"))
    assert (edit["changed"], edit["new_human_labels"]) == (1, 1)
    history = sql_rows(setup.url, f"""SELECT e.label, e.previous_label FROM label_events e JOIN samples s ON s.id = e.sample_id
                                  WHERE s.uid = '{change}' AND e.source = 'human' ORDER BY e.id""")
    assert history == [(changed_to, setup.labels[change]), (edited_to, changed_to)]
    ds.reload()
    assert ds.select_by("sample_uid", [change]).first().label.label == edited_to

    # A task deleted in Label Studio is noticed by a full listing, and leaves the queue as cancelled.
    untouched = sorted(by_uid)[-1]
    ls.tasks.delete(id=by_uid[untouched].id)
    assert last_json(cli("review", "pull", "--dataset", setup.name, "--json"))["deleted_on_server"] == 0
    full = last_json(cli("review", "pull", "--dataset", setup.name, "--full", "--json"))
    assert (full["listed"], full["deleted_on_server"], full["changed"]) == (len(setup.routed) - 1, 1, 0)
    assert sql_rows(setup.url, f"SELECT t.state FROM review_tasks t JOIN samples s ON s.id = t.sample_id WHERE s.uid = '{untouched}'") == [("cancelled",)]

    status = last_json(cli("review", "status", "--dataset", setup.name, "--json"))
    assert (status["tasks"], status["done"], status["skipped"], status["conflict"], status["cancelled"]) == (len(setup.routed), 3, 1, 1, 1)
    assert status["pending"] == len(setup.routed) - 6
    decided[change] = edited_to
    assert status["human_changed_label"] == pytest.approx(sum(decided[u] != setup.labels[u] for u in decided) / 4, abs=1e-4)
    assert status["agreement_with_model"] == pytest.approx(sum(decided[u] == setup.model[u][0] for u in decided) / 4, abs=1e-4)
    assert set(status["annotator_quality"]) == {"admin@curate.local", "bob@curate.test", "carol@curate.test"}
    assert status["multi_annotated"] == 2 and status["annotator_agreement"] == pytest.approx((0.5 + 2 / 3) / 2, abs=1e-4)
    assert sum(c["done"] for c in status["per_class"].values()) == 3

    # FiftyOne 1.22 deletes a dataset whose saved view mentions "_state" once the view is re-saved: ours must stay.
    assert fo_store.fo().load_dataset(setup.name).persistent is True
    for text in outputs + [(setup.home / "label-studio" / "server.log").read_text(errors="replace")]:
        assert info["token"] not in text


@pytest.mark.slow  # ~45 s on a real server; CI runs it (.ci/run)
def test_not_a_face_and_unclear_take_a_face_out_of_the_working_set_on_record_and_a_changed_mind_brings_it_back(
        tmp_path: Path, label_studio) -> None:  # noqa: ANN001
    import sqlalchemy

    from curate.models.manifest import from_dataset
    from curate.store import fo_store

    setup, info, cli = _served(tmp_path, label_studio)
    assert cli("review", "push", "--dataset", setup.name, "--limit", "4")["pushed"] == 4
    ls = _sdk(info)
    project = _project(ls, setup.name)
    config = ls.projects.get(id=project).label_config
    assert 'value="not a face" hotkey="9"' in config and 'value="unclear" hotkey="0"' in config
    by_uid = {t.data["sample_id"]: t for t in _tasks(ls, project)}
    not_face, unclear, happy, _ = sorted(by_uid)
    ls.annotations.create(id=by_uid[not_face].id, result=_choice("not a face"))
    ls.annotations.create(id=by_uid[unclear].id, result=_choice("unclear"))
    ls.annotations.create(id=by_uid[happy].id, result=_choice("happy"))
    curated_before = {r.uid for r in from_dataset(setup.name, setup.url)}
    assert {not_face, unclear} <= curated_before

    pulled = cli("review", "pull", "--dataset", setup.name)
    assert (pulled["done"], pulled["new_human_labels"], pulled["removed"]) == (3, 1, {"not_a_face": 1, "unclear": 1})
    rows = sql_rows(setup.url, """SELECT s.uid, r.removed, r.reason, r.actor, r.ls_task_id FROM review_removals r
                                  JOIN samples s ON s.id = r.sample_id ORDER BY r.id""")
    assert sorted(rows) == sorted([(not_face, 1, "not_a_face", "admin@curate.local", by_uid[not_face].id),
                                   (unclear, 1, "unclear", "admin@curate.local", by_uid[unclear].id)])
    assert sql_rows(setup.url, "SELECT COUNT(*) FROM label_events WHERE source = 'human'") == [(1,)], "a way out is no label"
    ds = fo_store.load_dataset(setup.name, create=False)
    ds.reload()
    assert ds.load_saved_view("not_a_face").values("sample_uid") == [not_face]
    assert ds.load_saved_view("unclear").values("sample_uid") == [unclear]
    assert {r.uid for r in from_dataset(setup.name, setup.url)} == curated_before - {not_face, unclear}, \
        "training, errors and the next push read the curated view: both faces are out of it"
    assert set(ds.load_saved_view("curated").values("sample_uid")).isdisjoint({not_face, unclear})
    status = cli("review", "status", "--dataset", setup.name)
    assert status["removed_by_review"] == {"not_a_face": 1, "unclear": 1} and status["done"] == 3
    page = Path(cli("report", "--dataset", setup.name)["report"]).read_text()
    assert 'Reviewers took 1 faces out of the working set as\n"not a face" and 1 as "unclear"' in page
    with pytest.raises(sqlalchemy.exc.IntegrityError, match="append-only"):
        sql_rows(setup.url, "UPDATE review_removals SET reason = 'unclear'")

    # The reviewer changes their mind: the face comes back with its new label, and the removal stays on record.
    annotation = ls.tasks.get(id=by_uid[not_face].id).annotations[0]
    ls.annotations.update(id=annotation["id"], result=_choice("sad"))
    again = cli("review", "pull", "--dataset", setup.name)
    assert (again["returned_to_working_set"], again["new_human_labels"], again["removed"]) == (1, 1, {"not_a_face": 0, "unclear": 0})
    assert sql_rows(setup.url, f"""SELECT r.removed FROM review_removals r JOIN samples s ON s.id = r.sample_id
                                   WHERE s.uid = '{not_face}' ORDER BY r.id""") == [(1,), (0,)]
    assert not_face in {r.uid for r in from_dataset(setup.name, setup.url)} and unclear not in {r.uid for r in from_dataset(setup.name, setup.url)}
    ds.reload()
    assert ds.load_saved_view("not_a_face").values("sample_uid") == []
    assert cli("review", "status", "--dataset", setup.name)["removed_by_review"] == {"not_a_face": 0, "unclear": 1}


@pytest.mark.slow  # ~40 s on a real server; CI runs it (.ci/run)
def test_activelab_reopens_the_answered_face_the_teacher_doubts_for_a_second_annotator_in_place_of_a_new_face(
        tmp_path: Path, label_studio) -> None:  # noqa: ANN001
    from curate.store import fo_store
    from curate.taxonomy import EMOTIONS

    setup, info, cli = _served(tmp_path, label_studio)
    push = ("review", "push", "--dataset", setup.name, "--annotators", "2", "--second-opinions", "activelab")
    first = cli(*push, "--limit", "4")
    assert (first["pushed"], first["reopened"], first["second_opinions"]) == (4, 0, "activelab")
    ls = _sdk(info)
    project = _project(ls, setup.name)
    assert ls.projects.get(id=project).maximum_annotations == 1, "each new face asks one person"
    by_uid = {t.data["sample_id"]: t for t in _tasks(ls, project)}
    # The teacher's out-of-fold view: sure of every routed face; the first reviewer agrees with it on all but one face.
    sure = {uid: EMOTIONS[i % 7] for i, uid in enumerate(sorted(setup.routed))}
    fo_store.load_dataset(setup.name, create=False).set_values(
        "prelabel_oof", {u: [0.93 if e == label else 0.01 for e in EMOTIONS] for u, label in sure.items()}, key_field="sample_uid")
    doubted, *agreed = sorted(by_uid)
    ls.annotations.create(id=by_uid[doubted].id, result=_choice(_other(sure[doubted])))
    for uid in agreed:
        ls.annotations.create(id=by_uid[uid].id, result=_choice(sure[uid]))
    assert cli("review", "pull", "--dataset", setup.name)["done"] == 4

    second = cli(*push, "--limit", "3")
    assert second["reopened_tasks"] == [by_uid[doubted].id], "only the answer the teacher doubts is worth a second look"
    assert second["pushed"] == 2, "the reopened task took a new face's place within --limit"
    task = ls.tasks.get(id=by_uid[doubted].id)
    assert (task.overlap, task.is_labeled) == (2, False), "back in the labeling queue of whoever has not answered it"
    assert all(ls.tasks.get(id=by_uid[u].id).overlap == 1 for u in agreed)
    states = dict(sql_rows(setup.url, "SELECT s.uid, t.state FROM review_tasks t JOIN samples s ON s.id = t.sample_id"))
    assert states[doubted] == "pending" and all(states[u] == "done" for u in agreed)

    bob = ls.users.create(email="bob@curate.test", username="bob")
    ls.annotations.create(id=by_uid[doubted].id, result=_choice(sure[doubted]), completed_by=bob.id)
    pulled = cli("review", "pull", "--dataset", setup.name)
    assert pulled["changed"] == 1 and pulled["decided_by_crowdlab"] == 1, "the 1-1 tie is CROWDLAB's to decide"
    decided = sql_rows(setup.url, f"""SELECT c.label FROM current_labels c JOIN samples s ON s.id = c.sample_id WHERE s.uid = '{doubted}'""")
    assert decided == [(sure[doubted],)]
    third = cli(*push, "--limit", "1")
    assert by_uid[doubted].id not in third["reopened_tasks"] and third["reopened"] + third["pushed"] == 1, \
        "a face two people answered has all the --annotators it asked for"


@pytest.mark.slow  # ~35 s; CI runs it (.ci/run)
def test_a_server_given_by_url_gets_uploads_and_paths_outside_the_root_are_refused(tmp_path: Path, label_studio) -> None:  # noqa: ANN001
    setup = _review_dataset(tmp_path)
    # An ingested face swapped for a link out of the image root afterwards (ingest itself rejects such links): push
    # re-checks the real path and refuses it, so nothing outside the root is ever uploaded.
    link_uid = sorted(setup.routed)[0]
    private = builders.write_image(tmp_path / "outside" / "private.png", builders.face(999))
    Path(setup.paths[link_uid]).unlink()
    Path(setup.paths[link_uid]).symlink_to(private)
    # A server this curate only knows by URL: its own home, serving none of these images as local files.
    server_home = tmp_path / "elsewhere"
    (tmp_path / "elsewhere-files").mkdir()
    info = label_studio(server_home, tmp_path / "elsewhere-files")
    env = {**setup.env, "LABEL_STUDIO_URL": info["url"], "LABEL_STUDIO_API_KEY": info["token"]}

    # Pushed by a workflow stage, as `curate run` does in the loop.
    workflow = tmp_path / "review.yaml"
    workflow.write_text(f"name: review-{setup.name}\nstages:\n  - stage: review_pull\n    dataset: {setup.name}\n"
                        f"  - stage: review_push\n    dataset: {setup.name}\n    batch_size: 7\n")
    pushed = run_cli("run", str(workflow), "--json", env=env)
    stages = last_json(pushed)["stages"]
    assert stages["1:review_pull"]["summary"]["project"] is None, "nothing to pull before the first push"
    s = stages["2:review_push"]["summary"]
    assert s["server"] == info["url"] and s["images"]["local_files"] == 0 and s["images"]["upload"] == s["pushed"]
    assert s["refused"] == [{"path": setup.paths[link_uid], "reason": "outside_image_root"}]
    assert s["pushed"] == len(setup.routed) - 1
    ls = _sdk(info)
    tasks = _tasks(ls, _project(ls, setup.name))
    assert link_uid not in {t.data["sample_id"] for t in tasks}
    for task in tasks[:3]:
        assert task.data["image"].startswith("/data/upload/")
        image = httpx.get(info["url"] + task.data["image"], headers={"Authorization": f"Token {info['token']}"})
        assert image.content == Path(setup.paths[task.data["sample_id"]]).read_bytes()
    ls.annotations.create(id=tasks[0].id, result=_choice("contempt"))
    pulled = last_json(run_cli("review", "pull", "--dataset", setup.name, "--json", env=env))
    assert pulled["new_human_labels"] == 1
    assert sql_rows(setup.url, "SELECT label, actor FROM label_events WHERE source='human'") == [("contempt", "admin@curate.local")]
    for text in (pushed.stdout, pushed.stderr):
        assert info["token"] not in text

    # Issue 15: a request the server refuses carries the server's own reason in the one line. Label Studio
    # refuses a local-files storage equal to its document root; the user must read why, not a bare "HTTP 400".
    from curate.review.client import Endpoint, LabelStudioError, ReviewServer
    from curate.secrets import Secret

    server = ReviewServer(Endpoint(info["url"], Secret(info["token"]), tmp_path / "elsewhere-files"))
    with pytest.raises(LabelStudioError) as refused:
        server.ensure_local_storage(_project(ls, setup.name), (tmp_path / "elsewhere-files").resolve())
    message = str(refused.value)
    assert "\n" not in message and "HTTP 400" in message and "cannot be the same" in message, message
    assert info["token"] not in message


@pytest.mark.slow  # ~30 s; CI runs it (.ci/run)
def test_bad_token_or_no_server_is_one_line_naming_the_url_and_records_nothing(tmp_path: Path, label_studio) -> None:  # noqa: ANN001
    setup = _review_dataset(tmp_path)
    info = label_studio(setup.home, setup.root)
    wrong = "f" * 40
    bad = run_cli("review", "push", "--dataset", setup.name, env={**setup.env, "LABEL_STUDIO_URL": info["url"], "LABEL_STUDIO_API_KEY": wrong},
                  check=False)
    assert bad.returncode == 2
    assert bad.stderr.strip().splitlines() == [f"error: Label Studio at {info['url']}: checking the API token: the API token was refused (HTTP 401)"]
    dead = f"http://127.0.0.1:{free_port()}"
    gone = run_cli("review", "pull", "--dataset", setup.name, env={**setup.env, "LABEL_STUDIO_URL": dead, "LABEL_STUDIO_API_KEY": info["token"]},
                   check=False)
    assert gone.returncode == 2 and len(gone.stderr.strip().splitlines()) == 1
    assert gone.stderr.startswith(f"error: Label Studio at {dead}: checking the API token: cannot connect")
    half = run_cli("review", "push", "--dataset", setup.name, env={**setup.env, "LABEL_STUDIO_URL": info["url"]}, check=False)
    assert half.returncode == 2 and "LABEL_STUDIO_API_KEY is not set" in half.stderr
    for proc in (bad, gone, half):
        assert wrong not in proc.stdout + proc.stderr and info["token"] not in proc.stdout + proc.stderr
    assert sql_rows(setup.url, "SELECT COUNT(*) FROM review_tasks") == [(0,)]
    assert list(_sdk(info).projects.list()) == []


@pytest.mark.slow  # ~60 s: kill and racing pulls on a real server; CI runs it
def test_kill_during_push_restart_and_racing_pulls_lose_and_duplicate_nothing(tmp_path: Path, label_studio, ledger_db: str) -> None:  # noqa: ANN001
    setup = _review_dataset(tmp_path, url=ledger_db)
    info = label_studio(setup.home, setup.root)
    ls = _sdk(info)
    exe = Path(os.sys.executable).parent / "curate"
    proc = subprocess.Popen([str(exe), "review", "push", "--dataset", setup.name, "--batch-size", "1"], env={**os.environ, **setup.env},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)

    def some_tasks() -> bool:
        projects = [p for p in ls.projects.list() if p.title == f"curate: {setup.name}"]
        return bool(projects) and projects[0].task_number >= 3

    assert wait_for(some_tasks, timeout=120, interval=0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    project = _project(ls, setup.name)
    on_server = {t.data["sample_id"] for t in _tasks(ls, project)}
    assert 3 <= len(on_server) < len(setup.routed), f"kill landed at {len(on_server)}/{len(setup.routed)}: not mid-way"
    # The window a kill can hit: a task the server confirmed but the ledger never recorded.
    recorded = {u for (u,) in sql_rows(setup.url, "SELECT s.uid FROM review_tasks t JOIN samples s ON s.id = t.sample_id")}
    orphan = sorted(setup.routed - on_server)[0]
    # Its data is the server's, editable by anyone with the project's token: over-long or foreign values must not
    # reach the ledger (on PostgreSQL a 300-character label broke every later pull).
    ls.projects.import_tasks(id=project, request=[{"data": {"image": "/data/local-files/?d=x.png", "sample_id": orphan, "reason": "r" * 500,
                                                            "dataset_label": "x" * 300, "model_label": "not-an-emotion"}}])

    resumed = last_json(run_cli("review", "push", "--dataset", setup.name, "--json", env=setup.env))
    assert resumed["adopted_from_interrupted_push"] == len(on_server - recorded) + 1
    adopted = sql_rows(setup.url, "SELECT t.reason, r.label_at_push, r.model_label FROM review_tasks t JOIN samples s ON s.id = t.sample_id "
                                  "LEFT JOIN review_results r ON r.review_task_id = t.id WHERE s.uid = :u", u=orphan)
    assert adopted == [("adopted", None, None)], adopted
    tasks = _tasks(ls, project)
    assert sorted(t.data["sample_id"] for t in tasks) == sorted(setup.routed), "nothing lost, nothing twice"
    assert sql_rows(setup.url, "SELECT COUNT(*), COUNT(DISTINCT sample_id), COUNT(DISTINCT ls_task_id) FROM review_tasks") == [(len(tasks),) * 3]

    # Reviews happen, then the server restarts before anyone pulls.
    for task in tasks[:4]:
        ls.annotations.create(id=task.id, result=_choice("neutral"))
    from curate.review import server

    server.stop(setup.home)
    info = label_studio(setup.home, setup.root)
    # Two pulls at once: each decision is recorded exactly once.
    racers = [subprocess.Popen([str(exe), "review", "pull", "--dataset", setup.name, "--json"], env={**os.environ, **setup.env},
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    results = [r.communicate(timeout=300) for r in racers]
    assert [r.returncode for r in racers] == [0, 0], results
    assert sql_rows(setup.url, "SELECT COUNT(*), COUNT(DISTINCT sample_id) FROM label_events WHERE source='human'") == [(4, 4)]
    assert sql_rows(setup.url, "SELECT COUNT(*) FROM review_tasks WHERE state='done'") == [(4,)]


@pytest.mark.slow  # ~40 s (Chromium); CI runs it (.ci/run)
def test_a_reviewer_sees_the_face_the_ten_choices_and_the_models_guess_and_key_9_says_not_a_face(tmp_path: Path, label_studio) -> None:  # noqa: ANN001
    """Headless Chromium logs in through the real login form and opens a pushed task, as a reviewer would."""
    import json

    from curate.taxonomy import EMOTIONS
    from tests.helpers import headless_chromium

    chromium, sync_playwright = headless_chromium()
    from tests.helpers import REPO

    setup = _review_dataset(tmp_path)
    info = label_studio(setup.home, setup.root)
    run_cli("review", "push", "--dataset", setup.name, "--limit", "3", env=setup.env)
    ls = _sdk(info)
    project = _project(ls, setup.name)
    task, other = _tasks(ls, project)[:2]
    uid = task.data["sample_id"]
    model_label, confidence = setup.model[uid]
    creds = json.loads((setup.home / "label-studio" / "credentials.json").read_text())
    shot = REPO / "artifacts" / "review-labeling-ui.png"
    shot.parent.mkdir(exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.goto(f"{info['url']}/user/login/")
            page.fill("input[name=email]", creds["username"])
            page.fill("input[name=password]", creds["password"])
            page.click("button[type=submit]")
            page.wait_for_url(lambda u: "/user/login" not in u, timeout=60_000)
            page.goto(f"{info['url']}/projects/{project}/data?task={task.id}")
            page.get_by_text(f"Dataset label: {setup.labels[uid]}").wait_for(timeout=90_000)
            image = page.locator(f"img[src*='{task.data['image'].split('=', 1)[1]}']").last
            page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=image.element_handle(), timeout=60_000)
            natural = image.evaluate("img => [img.naturalWidth, img.naturalHeight]")
            choices = page.evaluate("""() => Array.from(document.querySelectorAll('input[type=radio]'))
                .map(i => [(i.closest('label') || i.parentElement).innerText.trim(), i.checked])
                .filter(([text]) => text.length > 0 && !['comfortable', 'compact'].includes(text))""")
            header = page.get_by_text("Dataset label:").inner_text()
            page.screenshot(path=str(shot))
            # The reviewer disagrees with the model: hotkey of another emotion, then Submit.
            chosen = next(e for e in EMOTIONS if e not in (model_label, setup.labels[uid]))
            page.keyboard.press(str(EMOTIONS.index(chosen) + 1))
            page.get_by_role("button", name="Submit").click()
            assert wait_for(lambda: ls.tasks.get(id=task.id).total_annotations == 1, timeout=60)
            # The next face is no face for this reviewer: key 9, then Submit.
            page.goto(f"{info['url']}/projects/{project}/data?task={other.id}")
            page.get_by_text(f"Dataset label: {setup.labels[other.data['sample_id']]}").wait_for(timeout=90_000)
            face = page.locator(f"img[src*='{other.data['image'].split('=', 1)[1]}']").last
            page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=face.element_handle(), timeout=60_000)
            page.keyboard.press("9")
            page.wait_for_function("""() => Array.from(document.querySelectorAll('input[type=radio]')).some(
                i => i.checked && (i.closest('label') || i.parentElement).innerText.trim().startsWith('not a face'))""", timeout=30_000)
            page.get_by_role("button", name="Submit").click()
            assert wait_for(lambda: ls.tasks.get(id=other.id).total_annotations == 1, timeout=60)
        finally:
            browser.close()
    assert natural == [48, 48], "the face itself was served and decoded, not a broken-image icon"
    assert [text.split("[")[0].strip() for text, _ in choices] == [*EMOTIONS, "not a face", "unclear"]
    assert [text.split("[")[0].strip() for text, checked in choices if checked] == [model_label], "the model's guess is pre-selected"
    assert f"Model: {model_label} ({100 * confidence:.0f} %)" in header
    # What the reviewer submitted in the UI reaches the ledger.
    pulled = last_json(run_cli("review", "pull", "--dataset", setup.name, "--json", env=setup.env))
    assert (pulled["new_human_labels"], pulled["removed"]["not_a_face"]) == (1, 1)
    assert sql_rows(setup.url, "SELECT s.uid, r.reason FROM review_removals r JOIN samples s ON s.id = r.sample_id") == [
        (other.data["sample_id"], "not_a_face")]
    assert sql_rows(setup.url, "SELECT s.uid, e.label, e.actor, e.previous_label FROM label_events e JOIN samples s ON s.id = e.sample_id "
                           "WHERE e.source = 'human'") == [(uid, chosen, creds["username"], setup.labels[uid])]


def test_the_readme_review_round_runs_verbatim(tmp_path: Path, label_studio_template: Path) -> None:
    """Docs as tests (issue 15): the README's typical round, each line run by a shell exactly as written,
    with only the image root bound to a generated dataset; a documented command that breaks fails here."""
    import shutil

    from tests.helpers import REPO

    readme = (REPO / "README.md").read_text()
    block = readme.split("A typical round:", 1)[1].split("```", 2)[1]
    lines = [line for line in block.splitlines() if line.strip()]
    assert lines[0].startswith("curate labelstudio serve --data-root ~/data/fer2013") and len(lines) == 3
    setup = _review_dataset(tmp_path)
    shutil.copytree(label_studio_template, setup.home / "label-studio", ignore=shutil.ignore_patterns("server.json", "server.log"))
    with socket.socket() as probe:
        if probe.connect_ex(("127.0.0.1", 8080)) == 0:
            pytest.fail("port 8080 (the documented default) is busy on this machine")
    bin_dir = str(Path(os.sys.executable).parent)
    env = {**os.environ, **setup.env, "CURATE_DATASET": setup.name, "PATH": f"{bin_dir}:{os.environ['PATH']}"}
    outputs = []
    try:
        for number, line in enumerate(lines):
            if number == 2:  # "then review at the URL": a person changes one label, as the push line's comment says
                import json

                token = json.loads((setup.home / "label-studio" / "credentials.json").read_text())["token"]
                ls = _sdk({"url": "http://127.0.0.1:8080", "token": token})
                first = _tasks(ls, _project(ls, setup.name))[0]
                reviewed_uid = first.data["sample_id"]
                new_label = _other(setup.labels[reviewed_uid], setup.model[reviewed_uid][0])
                ls.annotations.create(id=first.id, result=_choice(new_label))
            shell = line.replace("~/data/fer2013", str(setup.root))
            proc = subprocess.run(["bash", "-c", shell], capture_output=True, text=True, env=env, timeout=300)
            outputs.append(proc.stdout + proc.stderr)
            assert proc.returncode == 0 and "Traceback" not in proc.stderr, f"README line failed: {line}\n{proc.stdout}{proc.stderr}"
    finally:
        subprocess.run(["bash", "-c", "curate labelstudio stop"], capture_output=True, env=env, timeout=60)
    assert "Label Studio started: http://127.0.0.1:8080" in outputs[0] and "credentials.json" in outputs[0]
    n = len(setup.routed)
    assert f"pushed {n} tasks" in outputs[1]
    # pull, then status: the one reviewed task is decided and its label changed, in the printed lines and in the ledger
    assert f"listed {n} tasks" in outputs[2] and "1 new human labels, 1 of them changing the label" in outputs[2], outputs[2]
    assert f"{n} review tasks: {n - 1} pending, 1 done, 0 skipped, 0 tied" in outputs[2], outputs[2]
    human = sql_rows(setup.url, "SELECT e.label FROM label_events e JOIN samples s ON s.id = e.sample_id "
                                "WHERE e.source = 'human' AND s.uid = :uid", uid=reviewed_uid)
    assert human == [(new_label,)]


@pytest.mark.slow  # ~40 s: a real server and 78 answers; CI runs it (.ci/run)
def test_pull_lets_crowdlab_overrule_a_careless_majority_and_records_it_in_sql(tmp_path: Path, label_studio) -> None:  # noqa: ANN001
    """Issue 44: three people answer every face: one careful, two careless ones right half the time who, when both are
    wrong, are wrong the same way. Where the careless pair outvotes the careful one, the pull must keep the careful
    answer (CROWDLAB's best_quality consensus weighs each annotator by estimated quality; a majority vote would not),
    and the label event must say CROWDLAB decided it."""
    from curate.store import fo_store
    from curate.taxonomy import EMOTIONS

    setup, info, cli = _served(tmp_path, label_studio)
    cli("review", "push", "--dataset", setup.name, "--annotators", "3")
    ls = _sdk(info)
    tasks = _tasks(ls, _project(ls, setup.name))
    bob = ls.users.create(email="bob@curate.test", username="bob")
    carol = ls.users.create(email="carol@curate.test", username="carol")
    rng = np.random.default_rng(3)
    truth, outvoted = {}, []
    for task in tasks:
        uid = task.data["sample_id"]
        right = truth[uid] = setup.labels[uid]
        wrong = _other(right)
        careless = [right if rng.random() < 0.5 else wrong for _ in range(2)]
        ls.annotations.create(id=task.id, result=_choice(right))
        ls.annotations.create(id=task.id, result=_choice(careless[0]), completed_by=bob.id)
        ls.annotations.create(id=task.id, result=_choice(careless[1]), completed_by=carol.id)
        if careless == [wrong, wrong]:
            outvoted.append(uid)
    assert len(outvoted) >= 4, "the careless pair outvotes the careful annotator on enough faces to matter"
    # The teacher's out-of-fold view leans to the truth, as a teacher better than chance does.
    fo_store.load_dataset(setup.name, create=False).set_values(
        "prelabel_oof", {u: [0.3 if e == label else 0.1 for e in EMOTIONS] for u, label in truth.items()}, key_field="sample_uid")

    pulled = cli("review", "pull", "--dataset", setup.name)
    quality = pulled["annotator_quality"]
    assert quality["admin@curate.local"] > max(quality["bob@curate.test"], quality["carol@curate.test"])
    events = {uid: (label, actor) for uid, label, actor in sql_rows(setup.url, """
        SELECT s.uid, e.label, e.actor FROM label_events e JOIN samples s ON s.id = e.sample_id WHERE e.source = 'human'""")}
    for uid in outvoted:
        label, actor = events[uid]
        assert label == truth[uid], f"{uid}: the careless majority's {label!r} was kept over the careful {truth[uid]!r}"
        assert actor.startswith("crowdlab:") and "admin@curate.local" in actor
