"""Which Label Studio to talk to, and the few calls curate makes to it.

Two servers are supported. A remote one is named by ``LABEL_STUDIO_URL`` and ``LABEL_STUDIO_API_KEY``;
curate cannot see its disk, so images are uploaded. The embedded one (``curate labelstudio serve``)
runs on this machine, so images under its local-files root are served in place, never copied.

Every failure to reach the server or to be accepted by it becomes one line naming the URL (never the
token), raised before anything is recorded as pushed.
"""

from __future__ import annotations

import datetime as dt
import json
import mimetypes
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Sequence

from curate.exceptions import CurateError
from curate.secrets import Secret

__all__ = ["ReviewServer", "LabelStudioError", "connect"]


class LabelStudioError(CurateError):
    """Label Studio could not be reached, refused the token, or refused a request."""


@dataclass(frozen=True)
class Endpoint:
    url: str
    token: Secret
    #: The embedded server's LOCAL_FILES_DOCUMENT_ROOT; None for a remote server (images are uploaded).
    files_root: Path | None


def resolve_endpoint(settings) -> Endpoint:  # noqa: ANN001 - curate.settings.Settings
    """A remote server when both URL and key are set, else the running embedded server."""
    if settings.label_studio_url or settings.label_studio_api_key:
        if not (settings.label_studio_url and settings.label_studio_api_key):
            missing = "LABEL_STUDIO_API_KEY" if settings.label_studio_url else "LABEL_STUDIO_URL"
            raise LabelStudioError(f"a remote Label Studio needs both LABEL_STUDIO_URL and LABEL_STUDIO_API_KEY; {missing} is not set")
        return Endpoint(settings.label_studio_url.rstrip("/"), settings.label_studio_api_key, None)
    from curate.review import server

    state = server.status(settings.home)
    if not state.get("running"):
        raise LabelStudioError("the embedded Label Studio is not running: start it with `curate labelstudio serve --data-root IMAGE_ROOT`, "
                               "or set LABEL_STUDIO_URL and LABEL_STUDIO_API_KEY for a remote server")
    creds = server.credentials(server.paths(settings.home))
    return Endpoint(state["url"], creds.token, Path(state["data_root"]))


def _explain(exc: BaseException) -> str:
    """The part of an SDK/httpx error a person can act on, without request headers."""
    status = getattr(exc, "status_code", None) or getattr(getattr(exc, "response", None), "status_code", None)
    if status in (401, 403):
        return f"the API token was refused (HTTP {status})"
    if status is not None:
        body = getattr(exc, "body", None)
        reasons = []
        if isinstance(body, dict):
            if body.get("detail"):
                reasons.append(str(body["detail"]))
            # Label Studio says *why* in validation_errors ({"path": ["... cannot be the same as ..."]}).
            for field_name, messages in (body.get("validation_errors") or {}).items():
                for message in messages if isinstance(messages, list) else [messages]:
                    reasons.append(f"{field_name}: {message}")
        reason = " ".join("; ".join(reasons).split())  # one line
        return f"HTTP {status}" + (f": {reason[:400]}" if reason else "")
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return f"cannot connect ({text})"


class ReviewServer:
    """A connected Label Studio: projects, storages, tasks and uploads, with one-line errors."""

    def __init__(self, endpoint: Endpoint) -> None:
        import httpx
        from label_studio_sdk import LabelStudio

        self.endpoint = endpoint
        self.url = endpoint.url
        self._sdk = LabelStudio(base_url=endpoint.url, api_key=endpoint.token.reveal(), timeout=60)
        self._http = httpx.Client(base_url=endpoint.url, headers={"Authorization": f"Token {endpoint.token.reveal()}"}, timeout=120)

    def call(self, what: str, fn, *args: Any, **kwargs: Any) -> Any:  # noqa: ANN001
        """Run one request; any transport or API failure becomes a LabelStudioError naming the URL."""
        import httpx
        from label_studio_sdk.core.api_error import ApiError

        try:
            return fn(*args, **kwargs)
        except (ApiError, httpx.HTTPError, OSError) as exc:
            raise LabelStudioError(f"Label Studio at {self.url}: {what}: {_explain(exc)}") from None

    def whoami(self) -> dict[str, Any]:
        me = self.call("checking the API token", self._sdk.users.whoami)
        return {"id": me.id, "email": me.email}

    def server_time(self) -> dt.datetime:
        """The server's clock (HTTP Date header, whole seconds): task update times are on this clock, not ours."""
        from email.utils import parsedate_to_datetime

        resp = self.call("reading the server time", self._http.get, "/health")
        self._raise_for(resp, "reading the server time")
        return parsedate_to_datetime(resp.headers["date"])

    def users(self) -> dict[int, str]:
        """user id -> e-mail: task listings name annotators by id only."""
        return {u.id: u.email for u in self.call("listing users", lambda: list(self._sdk.users.list()))}

    # -- projects and storage -------------------------------------------------------------
    def find_project(self, title: str) -> int | None:
        for project in self.call("listing projects", lambda: list(self._sdk.projects.list(title=title))):
            if project.title == title:
                return project.id
        return None

    def create_project(self, title: str, label_config: str, description: str) -> int:
        return self.call("creating the project", self._sdk.projects.create, title=title, label_config=label_config,
                         description=description, show_skip_button=True, maximum_annotations=1).id

    def ensure_label_config(self, project: int, label_config: str) -> bool:
        """Bring an existing project's labeling interface up to this curate's (a project made by an older curate lacks
        the "not a face" and "unclear" buttons). Label Studio accepts a config that only adds choices. True: updated."""
        current = self.call("reading the project", self._sdk.projects.get, id=project).label_config
        if (current or "").strip() == label_config.strip():
            return False
        self.call("updating the labeling interface", self._sdk.projects.update, id=project, label_config=label_config)
        return True

    def set_overlap(self, project: int, annotators: int) -> None:
        """How many people label each task (Label Studio's ``maximum_annotations``). Only when it changes: Label Studio
        then resets every task's own overlap, which would close the tasks a push reopened for a second opinion."""
        current = self.call("reading the project", self._sdk.projects.get, id=project).maximum_annotations
        if current != annotators:
            self.call("setting annotators per task", self._sdk.projects.update, id=project, maximum_annotations=annotators)

    def reopen_task(self, task: int, annotators: int) -> None:
        """Ask one task for ``annotators`` people in all: it goes back into the labeling queue of everyone who has not
        answered it yet (Label Studio serves a task until that many distinct people answered it)."""
        self.call(f"reopening task {task}", self._sdk.tasks.update, id=str(task), overlap=annotators, is_labeled=False)

    def ensure_local_storage(self, project: int, folder: Path) -> None:
        """A local-files storage covering ``folder``: without one the server answers 404 for its images.

        It is never synced (regex matches nothing): tasks are imported by curate, with their sample ids."""
        existing = self.call("listing storages", self._sdk.import_storage.local.list, project=project)
        if any(Path(s.path) == folder for s in existing):
            return
        self.call(f"adding a local-files storage for {folder}", self._sdk.import_storage.local.create, project=project, path=str(folder),
                  use_blob_urls=True, regex_filter="^$", title=f"curate: {folder.name}")

    # -- tasks ----------------------------------------------------------------------------
    def iter_tasks(self, project: int, updated_after: dt.datetime | None = None) -> Iterator[Any]:
        """Every task with its annotations (or only those updated after a time, by the server's clock), page by page.

        Label Studio bumps a task's ``updated_at`` whenever one of its annotations is saved."""
        query = None
        if updated_after is not None:
            stamp = updated_after.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
            query = json.dumps({"filters": {"conjunction": "and", "items": [
                {"filter": "filter:tasks:updated_at", "operator": "greater", "type": "Datetime", "value": stamp}]}})
        pager = self.call("listing tasks", self._sdk.tasks.list, project=project, fields="all", page_size=200, query=query)
        iterator = iter(pager)
        while True:
            task = self.call("listing tasks", next, iterator, None)
            if task is None:
                return
            yield task

    def import_tasks(self, project: int, tasks: Sequence[dict[str, Any]]) -> list[int]:
        """Create tasks (with inline predictions) in one request; returns their ids in request order."""
        result = self.call("importing tasks", self._sdk.projects.import_tasks, id=project, request=list(tasks), return_task_ids=True)
        ids = list(result.task_ids or [])
        if len(ids) != len(tasks):
            raise LabelStudioError(f"Label Studio at {self.url}: importing tasks: asked for {len(tasks)}, confirmed {len(ids)}")
        return ids

    def upload(self, project: int, files: dict[str, Path], open_file=None) -> dict[str, str]:  # noqa: ANN001
        """Upload images without creating tasks; returns key -> URL the server serves them under.

        Each file is sent under the name ``<key><suffix>``, so the server's stored name (``<uuid>-<name>``)
        maps back to its key. ``open_file(path)`` lets the caller check what it actually opened."""
        handles = []
        try:
            parts = []
            for key, path in files.items():
                fh = (open_file or (lambda p: open(p, "rb")))(path)  # noqa: SIM115 - closed in finally
                handles.append(fh)
                parts.append((f"file_{len(parts)}", (f"{key}{path.suffix.lower()}", fh, mimetypes.guess_type(path.name)[0] or "image/png")))
            resp = self.call("uploading images", self._http.post, f"/api/projects/{project}/import", params={"commit_to_project": "false"},
                             files=parts)
        finally:
            for fh in handles:
                fh.close()
        self._raise_for(resp, "uploading images")
        ids = resp.json().get("file_upload_ids") or []
        listed = self.call("listing uploads", self._http.get, f"/api/projects/{project}/file-uploads", params={"ids": json.dumps(ids)})
        self._raise_for(listed, "listing uploads")
        urls: dict[str, str] = {}
        for item in listed.json():
            stored = os.path.basename(item["file"])
            key = os.path.splitext(stored.split("-", 1)[-1])[0]
            urls[key] = f"/data/{item['file']}"
        missing = set(files) - set(urls)
        if missing:
            raise LabelStudioError(f"Label Studio at {self.url}: uploading images: {len(missing)} uploads not confirmed")
        return urls

    def _raise_for(self, resp, what: str) -> None:  # noqa: ANN001
        if resp.status_code in (401, 403):
            raise LabelStudioError(f"Label Studio at {self.url}: {what}: the API token was refused (HTTP {resp.status_code})")
        if resp.status_code >= 400:
            raise LabelStudioError(f"Label Studio at {self.url}: {what}: HTTP {resp.status_code}")

    def close(self) -> None:
        self._http.close()


def connect(settings) -> ReviewServer:  # noqa: ANN001
    """Resolve, connect and check the token with one cheap request."""
    server = ReviewServer(resolve_endpoint(settings))
    server.whoami()
    return server
