"""Where the embarrassingly parallel work runs (ingest's scoring, prelabel's inference): local worker
processes (default) or Ray.

Both engines see the same thing: an iterator of chunks goes in, ``(chunk, result)`` pairs come out
in completion order, with at most ``per_worker`` chunks in flight per worker, so memory stays flat
however large the dataset is and the caller stays the single writer to FiftyOne and SQL (the
ledger's idempotence and resume rules do not change with the engine).

Why Ray actors rather than Ray Data ``map_batches``: the driver must consume results as they
finish, in bounded batches, and must be able to stop and resume at any file; an actor per worker
that loads its network once (the quality net or the teacher), fed through ``ray.wait`` with a
bounded queue, is exactly that. Ray Data would add its own streaming executor, block sizing and object-store spilling
between the same two ends, for no gain in what is scored or how fast.
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import logging
import multiprocessing
import os
from typing import Any, Callable, Iterable, Iterator, TypeVar

from curate.exceptions import CurateError
from curate.secrets import hidden_from_environ

__all__ = ["ENGINES", "map_chunks", "preflight", "worker_pool"]

ENGINES = ("local", "ray")
T = TypeVar("T")


def _mp_context():  # noqa: ANN202
    # FiftyOne's client threads are running in this process: never fork it.
    return multiprocessing.get_context("forkserver" if "forkserver" in multiprocessing.get_all_start_methods() else "spawn")


def preflight(engine: str, ray_address: str | None = None) -> None:
    """Refuse an engine that cannot run before anything is written: an unknown name, Ray not installed, or a
    named Ray cluster that does not answer (each one line)."""
    if engine not in ENGINES:
        raise CurateError(f"--engine {engine!r} is not one of {', '.join(ENGINES)}")
    if engine == "ray":
        _import_ray()
        address = ray_address or os.environ.get("RAY_ADDRESS")
        if address:
            _reachable(address)


def _import_ray():  # noqa: ANN202
    try:
        import ray
    except ImportError:
        raise CurateError("--engine ray needs the ray package: pip install 'ray>=2.40' (or install curate with the [ray] extra)") from None
    return ray


@contextlib.contextmanager
def worker_pool(worker: type, init_args: tuple, *, engine: str = "local", workers: int = 1, ray_address: str | None = None,
                per_worker: int = 2, gpus_per_worker: float = 0) -> Iterator[Callable[[Iterable[T], Callable[[T], Any]], Iterator[tuple[T, Any]]]]:
    """Start ``workers`` copies of ``worker(*init_args)`` now, and give back ``map(chunks, payload)``, which runs
    ``worker.run(payload(chunk))`` for every chunk and yields (chunk, result) in completion order.

    Starting them before the first chunk exists is the point: a worker takes seconds to load its network,
    and the caller has its own seconds to wait (FiftyOne starting its database: ~5 s, mostly asleep), so the
    two overlap instead of adding up. ``worker`` is a class whose ``__init__`` loads what every call needs
    (once per process) and whose ``run`` does one chunk; it must be importable by the worker processes (a
    module-level class). A Ray actor asks for one CPU and ``gpus_per_worker`` GPUs (Ray then shows it only
    its own GPU)."""
    if engine == "local":
        with _local_pool(worker, init_args, workers) as pool:
            yield lambda chunks, payload: _local_map(pool, chunks, payload, per_worker * workers)
    elif engine == "ray":
        with _ray_actors(worker, init_args, workers, ray_address, gpus_per_worker) as (ray, actors):
            yield lambda chunks, payload: _ray_map(ray, actors, chunks, payload, per_worker)
    else:
        raise CurateError(f"engine {engine!r} is not one of {', '.join(ENGINES)}")


def map_chunks(chunks: Iterable[T], payload: Callable[[T], Any], worker: type, init_args: tuple, **pool_options: Any) -> Iterator[tuple[T, Any]]:
    """``worker_pool`` for a caller with nothing to do while its workers start: start them, map, stop them."""
    with worker_pool(worker, init_args, **pool_options) as mapper:
        yield from mapper(chunks, payload)


_local_worker: Any = None


def _local_init(worker: type, init_args: tuple) -> None:
    global _local_worker
    _local_worker = worker(*init_args)


def _local_run(item: Any) -> Any:
    return _local_worker.run(item)


def _local_ready() -> bool:
    return True


@contextlib.contextmanager
def _local_pool(worker: type, init_args: tuple, workers: int) -> Iterator[cf.ProcessPoolExecutor]:
    with cf.ProcessPoolExecutor(workers, mp_context=_mp_context(), initializer=_local_init, initargs=(worker, init_args)) as pool:
        with hidden_from_environ():  # workers (and a forkserver started now) keep the environment they start with
            for _ in range(workers):  # the pool starts a process per task submitted while none is idle: start them all now
                pool.submit(_local_ready)
        yield pool


def _local_map(pool: cf.ProcessPoolExecutor, chunks: Iterable[T], payload: Callable[[T], Any], bound: int) -> Iterator[tuple[T, Any]]:
    in_flight: dict[cf.Future, T] = {}
    for chunk in chunks:
        while len(in_flight) >= bound:
            finished, _ = cf.wait(in_flight, return_when=cf.FIRST_COMPLETED)
            for fut in finished:
                yield in_flight.pop(fut), fut.result()
        in_flight[pool.submit(_local_run, payload(chunk))] = chunk
    for fut in cf.as_completed(list(in_flight)):
        yield in_flight.pop(fut), fut.result()


@contextlib.contextmanager
def _ray_session(address: str | None, num_cpus: int) -> Iterator[Any]:
    """A connection to Ray: the cluster at ``address`` (or ``RAY_ADDRESS``), else a local Ray started here and
    shut down afterwards. A Ray the caller already initialised is used as it is."""
    ray = _import_ray()
    address = address or os.environ.get("RAY_ADDRESS")
    if address:
        _reachable(address)
    started = False
    with contextlib.ExitStack() as stack:
        if not ray.is_initialized():
            quiet = {"include_dashboard": False, "log_to_driver": False, "logging_level": logging.ERROR}
            try:
                if address:
                    ray.init(address=address, **quiet)
                else:
                    stack.enter_context(_token_auth())
                    with hidden_from_environ():  # the GCS server and raylet copy the environment, and workers copy theirs
                        ray.init(num_cpus=num_cpus, **quiet)
            except (ConnectionError, RuntimeError, ValueError) as exc:
                raise CurateError(f"Ray at {address or 'a local start'}: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") from None
            started = True
        try:
            yield ray
        finally:
            if started:
                ray.shutdown()


_RAY_AUTH = ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH")


@contextlib.contextmanager
def _token_auth() -> Iterator[None]:
    """Ray's token authentication for a local Ray started by curate, with a token made for this run.

    Why a token rather than a loopback bind: Ray (2.60) binds its gRPC servers to every interface and turns a
    127.0.0.1 node address into the routable one (``resolve_ip_for_localhost``), so no option keeps the ports
    off the network. With ``RAY_AUTH_MODE=token`` every call to them must carry the token; it lives in a 0600
    file in a 0700 folder of its own, is never in argv or the environment's values, and dies with the run."""
    import secrets as random_source
    import shutil
    import tempfile

    saved = {name: os.environ.get(name) for name in _RAY_AUTH}
    folder = tempfile.mkdtemp(prefix="curate-ray-")  # mode 0700
    token = os.path.join(folder, "auth_token")
    fd = os.open(token, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(random_source.token_hex(32))
    os.environ.pop("RAY_AUTH_TOKEN", None)
    os.environ.update(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN_PATH=token)
    _reload_ray_auth()
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        shutil.rmtree(folder, ignore_errors=True)
        _reload_ray_auth()


def _reload_ray_auth() -> None:
    """Make a Ray imported earlier in this process read the authentication variables again: it caches its config and
    the token at first use (what Ray's own ``ray get-auth-token`` and test helpers call after changing them)."""
    try:
        from ray._raylet import AuthenticationTokenLoader, Config
    except ImportError:  # a Ray without token authentication: ray.init will fail to start and say why
        return
    Config.initialize("")
    AuthenticationTokenLoader.instance().reset_cache()


def _reachable(address: str) -> None:
    """Fail in one line, at once, when a named cluster does not answer (ray.init would retry for minutes)."""
    import re
    import socket

    m = re.fullmatch(r"(?:ray://)?\[?([\w.\-:]+?)\]?:(\d+)", address.strip())
    if not m:  # "auto" or another form Ray understands: let Ray decide
        return
    try:
        socket.create_connection((m.group(1), int(m.group(2))), timeout=5).close()
    except OSError as exc:
        raise CurateError(f"Ray at {address}: cannot connect ({exc.strerror or type(exc).__name__}); is the head running "
                          f"(`ray start --head`) and is the address right?") from None


@contextlib.contextmanager
def _ray_actors(worker: type, init_args: tuple, workers: int, address: str | None, gpus: float) -> Iterator[tuple[Any, list]]:
    with _ray_session(address, max(workers, os.cpu_count() or 1)) as ray:
        remote = ray.remote(num_cpus=1, num_gpus=gpus)(worker)
        actors = [remote.remote(*init_args) for _ in range(workers)]  # asynchronous: they load while the caller goes on
        try:
            yield ray, actors
        finally:
            for actor in actors:
                ray.kill(actor)


def _ray_map(ray: Any, actors: list, chunks: Iterable[T], payload: Callable[[T], Any], per_worker: int) -> Iterator[tuple[T, Any]]:
    free = [a for a in actors for _ in range(per_worker)]
    in_flight: dict[Any, tuple[T, Any]] = {}

    def collect() -> tuple[T, Any]:
        (ref,), _ = ray.wait(list(in_flight), num_returns=1)
        chunk, actor = in_flight.pop(ref)
        free.append(actor)
        try:
            return chunk, ray.get(ref)
        except ray.exceptions.RayError as exc:
            raise CurateError(f"a Ray worker failed: {str(exc).strip().splitlines()[-1][:300]}") from None

    for chunk in chunks:
        if not free:
            yield collect()
        actor = free.pop()
        in_flight[actor.run.remote(payload(chunk))] = (chunk, actor)
    while in_flight:
        yield collect()
