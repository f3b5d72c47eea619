"""One settings object, resolved as defaults < workflow YAML < environment < CLI options.

Why this order: a workflow file describes the loop for everyone who runs it, the
environment describes *this* machine (where the DB is, which Label Studio), and
an option typed on the command line is the most deliberate choice of all.

Environment names: ``CURATE_HOME``, ``CURATE_DB_URL``, ``LABEL_STUDIO_URL``,
``LABEL_STUDIO_API_KEY`` and ``CURATE_<FIELD>`` for every other field (for
example ``CURATE_BLUR_MAX=0.25``).
"""

from __future__ import annotations

import dataclasses
import os
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from curate.exceptions import CurateError
from curate.secrets import Secret, redact_url, register_url

__all__ = ["Settings", "load_settings", "SettingsError", "ENV_NAMES", "WORKFLOW_FORBIDDEN", "check_dataset_name"]

#: Settings a workflow file may not set: where the data goes and who is trusted with it.
WORKFLOW_FORBIDDEN = frozenset({"home", "db_url", "label_studio_url", "label_studio_api_key"})


class SettingsError(CurateError):
    """A setting that cannot be used; the message names the source and the key."""


def _default_home() -> Path:
    return Path(os.path.expanduser("~/.local/share/curate"))


@dataclass(frozen=True)
class Settings:
    """Everything a stage may need to know about where things live and which thresholds apply."""

    home: Path = field(default_factory=_default_home)
    db_url: str | None = None  # None -> SQLite file in ``home``
    label_studio_url: str | None = None
    label_studio_api_key: Secret | None = None
    dataset: str = "fer2013"
    blur_max: float = 0.3
    occlusion_max: float = 0.4
    review_threshold: float = 0.9
    workers: int = 0  # 0 -> all cores but one (see worker_count)
    batch_size: int = 64
    device: str = "auto"
    seed: int = 0
    #: Where each value came from: "default", "workflow:<path>", "env:<NAME>", "cli".
    origins: Mapping[str, str] = field(default_factory=dict, compare=False, repr=False)

    @property
    def database_url(self) -> str:
        """The SQLAlchemy URL actually used (SQLite in ``home`` unless ``db_url`` is set)."""
        return self.db_url or f"sqlite:///{self.home / 'curate.db'}"

    @property
    def worker_count(self) -> int:
        """Ingest's scoring processes: as set, else every core but one. Ingest has one writer (FiftyOne and SQL,
        in input order, for its resume rules), and the writer is what bounds it; a scoring process on every core
        leaves it contending for CPU. Measured on all 35,887 FER2013 faces on 2 cores: 1 worker 401 faces/s,
        2 workers 345 (bench/RESULTS.md)."""
        if self.workers > 0:
            return self.workers
        return max(1, (os.cpu_count() or 1) - 1)

    def public_dict(self) -> dict[str, Any]:
        """Settings safe to print: secrets masked, URL passwords hidden."""
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            if f.name == "origins":
                continue
            value = getattr(self, f.name)
            if isinstance(value, Secret):
                value = value.hint()
            elif isinstance(value, Path):
                value = str(value)
            elif isinstance(value, str) and "://" in value:
                value = redact_url(value)
            out[f.name] = value
        out["database_url"] = redact_url(self.database_url)
        return out


_FIELDS = {f.name: f for f in dataclasses.fields(Settings) if f.name != "origins"}
#: Environment variable of each field.
ENV_NAMES: dict[str, str] = {
    name: {
        "home": "CURATE_HOME",
        "db_url": "CURATE_DB_URL",
        "label_studio_url": "LABEL_STUDIO_URL",
        "label_studio_api_key": "LABEL_STUDIO_API_KEY",
    }.get(name, f"CURATE_{name.upper()}")
    for name in _FIELDS
}
_HINTS = typing.get_type_hints(Settings)


def _coerce(name: str, raw: Any, origin: str) -> Any:
    """Turn a YAML/env/CLI value into the field's type, or say which source gave a bad one."""
    hint = _HINTS[name]
    args = typing.get_args(hint)
    optional = type(None) in args
    target = next((a for a in args if a is not type(None)), hint) if args else hint
    if raw is None or (optional and isinstance(raw, str) and raw == ""):
        if optional:
            return None
        raise SettingsError(f"{origin}: {name} must not be empty")
    try:
        if target is Path:
            return Path(os.path.expanduser(str(raw)))
        if target is Secret:
            return raw if isinstance(raw, Secret) else Secret(str(raw))
        if target is bool:
            if isinstance(raw, bool):
                return raw
            return str(raw).strip().lower() in {"1", "true", "yes", "on"}
        if target in (int, float):
            if isinstance(raw, bool):
                raise ValueError("a boolean is not a number")
            return target(raw)
        return str(raw)
    except (TypeError, ValueError) as exc:
        raise SettingsError(f"{origin}: {name}={raw!r} is not a valid {target.__name__} ({exc})") from None


def check_dataset_name(name: str | None, origin: str) -> str:
    """``name`` if it is a safe dataset name, else a one-line error naming where it came from.

    Dataset names become folder names (reports, media, checkpoints): nothing that could leave CURATE_HOME
    (``../x``, ``/abs/path``). Every entry checks it: settings, a command's ``--dataset``, a workflow stage's ``dataset:``."""
    import re

    if name is None or not re.fullmatch(r"[A-Za-z0-9._-]{1,100}", name) or name in (".", ".."):
        raise SettingsError(f"{origin}: dataset={name!r} must be 1-100 of A-Z a-z 0-9 . _ - (not . or ..)")
    return name


def _validate(s: Settings) -> None:
    register_url(s.db_url)  # its password is masked in every output and log line from now on
    check_dataset_name(s.dataset, s.origins.get("dataset", "default"))
    for name in ("blur_max", "occlusion_max", "review_threshold"):
        value = getattr(s, name)
        if not 0.0 <= value <= 1.0:
            raise SettingsError(f"{s.origins.get(name, 'default')}: {name}={value} must lie in [0, 1]")
    if s.device not in {"auto", "cpu", "cuda"} and not s.device.startswith("cuda:"):
        raise SettingsError(f"{s.origins.get('device')}: device={s.device!r} must be auto, cpu or cuda[:N]")


def read_yaml_mapping(path: Path) -> dict[str, Any]:
    """A workflow file's top-level mapping, or a one-line error naming the file."""
    import yaml

    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except OSError as exc:
        raise SettingsError(f"{path}: cannot read workflow ({exc.strerror})") from None
    except yaml.YAMLError as exc:
        raise SettingsError(f"{path}: not valid YAML ({str(exc).splitlines()[0]})") from None
    if not isinstance(doc, dict):
        raise SettingsError(f"{path}: a workflow must be a mapping")
    return doc


def read_workflow_settings(path: Path) -> dict[str, Any]:
    """The ``settings:`` mapping of a workflow YAML (empty when it has none)."""
    doc = read_yaml_mapping(path)
    section = doc.get("settings") or {}
    if not isinstance(section, dict):
        raise SettingsError(f"{path}: 'settings' must be a mapping")
    return section


def load_settings(
    workflow: Path | None = None,
    cli: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
) -> Settings:
    """Resolve settings. ``cli`` holds only options the user actually passed (``None`` = not given)."""
    env = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    origins: dict[str, str] = {name: "default" for name in _FIELDS}

    layers: list[tuple[str, Mapping[str, Any]]] = []
    if workflow is not None:
        section = read_workflow_settings(workflow)
        unknown = sorted(set(section) - set(_FIELDS))
        if unknown:
            raise SettingsError(f"{workflow}: unknown setting(s) {', '.join(unknown)}")
        if "label_studio_api_key" in section:
            raise SettingsError(f"{workflow}: secrets do not belong in a workflow file; set LABEL_STUDIO_API_KEY")
        # Where the ledger, the home and the review server are is this machine's business (environment or options): a
        # workflow file someone hands you must not point your ledger, and the labels in it, at a server of theirs.
        redirects = sorted(set(section) & WORKFLOW_FORBIDDEN)
        if redirects:
            raise SettingsError(f"{workflow}: {', '.join(redirects)} cannot be set in a workflow file (it would move where your data "
                                f"goes); set {', '.join(ENV_NAMES[n] for n in redirects)} in the environment or pass an option")
        layers.append((f"workflow:{workflow}", section))
    layers.append(("env", {name: env[var] for name, var in ENV_NAMES.items() if var in env}))
    if cli:
        unknown = sorted(set(cli) - set(_FIELDS))
        if unknown:
            raise SettingsError(f"command line: unknown setting(s) {', '.join(unknown)}")
        layers.append(("cli", {k: v for k, v in cli.items() if v is not None}))

    for origin, layer in layers:
        for name, raw in layer.items():
            label = f"env:{ENV_NAMES[name]}" if origin == "env" else origin
            values[name] = _coerce(name, raw, label)
            origins[name] = label

    settings = Settings(**values, origins=types.MappingProxyType(origins))
    _validate(settings)
    _make_private(settings.home)
    return settings


def _make_private(home: Path) -> None:
    """CURATE_HOME holds the ledger, Label Studio's credentials and database, reports and media: only its owner may
    enter it (0700). A home made before this rule, or by hand, is tightened here; a new one is made 0700 by its first
    writer (the SQLite ledger, curate/store/sql/session.py), so a command refused at its options creates nothing.
    A home someone else owns is left as it is."""
    try:
        st = home.stat()
        if st.st_uid == os.getuid() and st.st_mode & 0o077:
            os.chmod(home, 0o700)
    except OSError:
        pass
