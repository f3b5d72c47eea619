"""docker-compose.yml cannot run here (no engine): check its structure and its secret hygiene."""

from __future__ import annotations

import re

import yaml

from tests.helpers import REPO

COMPOSE = yaml.safe_load((REPO / "docker-compose.yml").read_text())
RAW = (REPO / "docker-compose.yml").read_text()


def test_services_and_images() -> None:
    services = COMPOSE["services"]
    assert set(services) == {"postgres", "label-studio", "mongo", "curate", "fiftyone-app", "ray-head", "ray-worker"}
    assert services["postgres"]["image"].startswith("postgres:")
    assert services["label-studio"]["image"].startswith("heartexlabs/label-studio:")
    assert services["mongo"]["image"].startswith("mongo:")
    assert services["curate"]["build"] == "." and (REPO / "Dockerfile").is_file()


def test_every_service_has_a_healthcheck_and_dependencies_wait_for_health() -> None:
    for name, service in COMPOSE["services"].items():
        assert "healthcheck" in service and service["healthcheck"]["test"], name
        for dep, cond in (service.get("depends_on") or {}).items():
            assert dep in COMPOSE["services"] and cond == {"condition": "service_healthy"}, (name, dep)


def test_ports_bind_loopback_only() -> None:
    ports = {name: s.get("ports", []) for name, s in COMPOSE["services"].items()}
    assert ports["label-studio"] == ["127.0.0.1:8080:8080"]
    assert ports["fiftyone-app"] == ["127.0.0.1:5151:5151"]
    assert all(p.startswith("127.0.0.1:") for plist in ports.values() for p in plist)


def test_label_studio_uses_postgres_and_serves_mounted_data_read_only() -> None:
    env = COMPOSE["services"]["label-studio"]["environment"]
    assert env["DJANGO_DB"] == "default" and env["POSTGRE_HOST"] == "postgres"
    assert env["LOCAL_FILES_SERVING_ENABLED"] == "true" and env["LOCAL_FILES_DOCUMENT_ROOT"] == "/data"
    assert any(v.endswith(":/data:ro") for v in COMPOSE["services"]["label-studio"]["volumes"])
    assert set(COMPOSE["volumes"]) >= {"pgdata", "labelstudio", "mongodata"}


def test_curate_worker_environment_names() -> None:
    env = COMPOSE["services"]["curate"]["environment"]
    assert {"CURATE_HOME", "CURATE_DB_URL", "LABEL_STUDIO_URL", "LABEL_STUDIO_API_KEY", "FIFTYONE_DATABASE_URI"} <= set(env)
    assert env["CURATE_DB_URL"].startswith("postgresql+psycopg://") and "@postgres:5432/" in env["CURATE_DB_URL"]
    assert COMPOSE["services"]["fiftyone-app"]["environment"]["FIFTYONE_DATABASE_URI"] == "mongodb://mongo:27017"


def test_secrets_come_only_from_env_file() -> None:
    referenced = set(re.findall(r"\$\{([A-Z_]+)", RAW))
    example = dict(line.split("=", 1) for line in (REPO / ".env.example").read_text().splitlines() if "=" in line and not line.startswith("#"))
    assert referenced <= set(example), referenced - set(example)
    secret_vars = re.compile(r"(PASSWORD|API_KEY|USER_TOKEN)$")
    for name, service in COMPOSE["services"].items():
        for var, value in (service.get("environment") or {}).items():
            if secret_vars.search(var):
                assert str(value).startswith("${"), f"{name}.{var} must come from .env"
            if var == "CURATE_DB_URL":
                assert "${POSTGRES_PASSWORD" in value
    assert ".env" in (REPO / ".gitignore").read_text().split()


def test_ray_cluster_runs_the_curate_image_and_the_worker_points_at_its_head() -> None:
    """Ray needs the same Ray and Python on every node, and the actors open image paths the driver names:
    head, workers and the curate driver share the image and the read-only data mount."""
    services = COMPOSE["services"]
    for name in ("ray-head", "ray-worker"):
        assert services[name]["image"] == services["curate"]["image"]
        assert "${CURATE_DATA_DIR:-./data}:/data:ro" in services[name]["volumes"] and not services[name].get("ports")
    assert "--head" in services["ray-head"]["command"] and "--address=ray-head:6379" in services["ray-worker"]["command"]
    assert services["curate"]["environment"]["RAY_ADDRESS"] == "ray-head:6379"
    assert "'.[ray]'" in (REPO / "Dockerfile").read_text()


def test_an_unchanged_env_example_cannot_start_the_stack() -> None:
    """Issue 31: `change-me` values passed the `${VAR:?}` check, so a copied .env.example gave everyone's credentials.
    Empty values fail it: compose refuses to start until each secret is set."""
    example = dict(line.split("=", 1) for line in (REPO / ".env.example").read_text().splitlines() if "=" in line and not line.startswith("#"))
    secrets = {name for name in example if re.search(r"(PASSWORD|API_KEY)$", name)}
    assert secrets >= {"POSTGRES_PASSWORD", "LABEL_STUDIO_DB_PASSWORD", "LABEL_STUDIO_PASSWORD", "LABEL_STUDIO_API_KEY"}
    assert all(example[name].strip() == "" for name in secrets), {n: example[n] for n in secrets if example[n].strip()}
    for name in secrets:  # every use of a secret is the refusing form
        uses = re.findall(r"\$\{" + name + r"(:?[?-]?)", RAW)
        assert uses and all(u == ":?" for u in uses), (name, uses)


def test_each_service_gets_only_the_secrets_it_uses() -> None:
    services = COMPOSE["services"]
    secret = re.compile(r"(PASSWORD|API_KEY|USER_TOKEN|DB_URL)")

    def secrets_of(name: str) -> set[str]:
        env = services[name].get("environment") or {}
        return {v for v in re.findall(r"\$\{([A-Z_]+)", " ".join(map(str, env.values()))) if secret.search(v)} | \
            {k for k in env if k == "CURATE_DB_URL"}

    assert secrets_of("fiftyone-app") == set() and secrets_of("ray-head") == set() and secrets_of("ray-worker") == set()
    assert secrets_of("label-studio") == {"LABEL_STUDIO_DB_PASSWORD", "LABEL_STUDIO_PASSWORD", "LABEL_STUDIO_API_KEY"}
    assert services["label-studio"]["environment"]["POSTGRE_USER"] == "labelstudio"  # not the ledger's role
    init = (REPO / "db" / "compose-init" / "10-labelstudio-db.sh").read_text()
    assert "CREATE ROLE labelstudio" in init and "OWNER labelstudio" in init and "POSTGRES_PASSWORD" not in init
