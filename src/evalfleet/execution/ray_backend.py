"""The Ray backend: attempts run on long-lived worker actors of a Ray cluster.

The dispatcher, the journal and the exactly-once commit are the local ones (the driver alone
leases and writes); :class:`RayExecutor` only decides where an attempt runs:

- **General workers.** Tasks that ask for no node resource run on one async worker actor per
  node (each hosts many attempts at once; a Ray task per short run would cap throughput at a
  few hundred runs a second). An attempt goes to the worker with the fewest attempts in flight
  per CPU of its node.
- **Resource-shaped workers.** A task whose ``resources`` name ``gpu``, ``cpu`` or a resource
  some node declares (``docker``, ``api_key``, ...) runs on an actor created with exactly those
  resources (``num_gpus``, ``num_cpus``, custom resources), one attempt at a time, so Ray places
  it only on a node that declares them and the cluster's counts cap how many run at once. Such
  an actor is kept while attempts of its shape keep coming and released when idle.
- **Plan pools.** A resource the plan's ``resources`` declares (an API-key pool) is also a
  cluster-wide count the driver holds for the attempt, as it does locally.
- Workers rebuild agents, scorers and the sandbox provider from the plan JSON and the suite,
  shipped once per actor (the suite through Ray's object store), and return the attempt's
  outcome and their node id.
- **Failures.** A worker or node lost mid-attempt (actor died, worker crashed, node died,
  object lost), or a worker that does not answer within twice the task's time limit plus two
  minutes, is an :class:`~evalfleet.errors.InfraError` of that attempt: the dispatcher retries
  it by its policy and counts it as an infrastructure attempt, never as the agent's failure.
  The executor drops the dead actor and starts replacements on the nodes alive. Ray's own
  restarts are not used for correctness: a crashed driver is resumed from the journal.
- **Rate limits.** The plan's ``rate_limits`` are held by one named actor
  (``evalfleet-limits-<driver>``) on the driver's node that every worker asks before each
  model call (the same token buckets as locally, and a Retry-After pauses that provider for
  every worker).

``ray`` is imported only here and only when the backend is used (``import evalfleet`` never
imports it); install it with the ``ray`` extra.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import math
import os
import sys
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from evalfleet.agents.base import Agent, ModelGate, NoGate, Usage
from evalfleet.agents.registry import create_agent
from evalfleet.cost.prices import PriceTable
from evalfleet.errors import InfraError, SpecError
from evalfleet.execution.attempt import AttemptOutcome, run_attempt
from evalfleet.execution.executor import Executed
from evalfleet.execution.ratelimit import RateLimiter
from evalfleet.execution.resources import ResourcePool
from evalfleet.scoring.base import Scorer
from evalfleet.scoring.registry import create_scorer
from evalfleet.spec.plan import Plan, RateLimit
from evalfleet.spec.task import Suite, Task
from evalfleet.spec.trajectory import Trajectory

NAMESPACE = "evalfleet"
"""Ray namespace of the driver and its named actors."""

RAY_NAMES = {"gpu": "GPU", "cpu": "CPU"}
"""Task resource names that are Ray's built-in resources; any other name is a custom one."""


def _ray() -> Any:
    try:
        import ray
    except ImportError:
        raise SpecError("the ray backend needs Ray: pip install 'evalfleet[ray]'",
                        field="execution.backend") from None
    return ray


Shape = tuple[tuple[str, float], ...]

Submitted = tuple[int, str, int, str, int, bool]
"""An attempt sent to a worker: (key, task id, agent index, run id, attempt, queued)."""

Ended = tuple[int, "AttemptOutcome | None", str, str, int]
"""An attempt's end as a worker reports it: (key, outcome or None, worker, error, key of the
queued attempt started in its slot or -1)."""
"""Ray resources one attempt holds, by Ray name (``GPU``, ``CPU``, custom), sorted."""


def ray_shape(needs: Mapping[str, int], node_names: Iterable[str],
              pools: Iterable[str] = ()) -> Shape:
    """The part of a task's ``resources`` that Ray places: gpu and cpu, and every name some
    node declares, unless the plan declares it as a pool (a count the driver holds)."""
    declared, pooled = set(node_names), set(pools)
    out = []
    for name, n in needs.items():
        if not n:
            continue
        rname = RAY_NAMES.get(name.lower(), name)
        if rname in RAY_NAMES.values() or (rname in declared and name not in pooled):
            out.append((rname, float(n)))
    return tuple(sorted(out))


def actor_options(shape: Shape) -> dict[str, Any]:
    """Ray actor options holding ``shape`` (no CPU unless the task asks for it)."""
    res = dict(shape)
    opts: dict[str, Any] = {"num_cpus": res.pop("CPU", 0.0), "num_gpus": res.pop("GPU", 0.0)}
    if res:
        opts["resources"] = res
    return opts


def fits(shape: Shape, node: Mapping[str, float]) -> int:
    """How many attempts of ``shape`` a node with resources ``node`` holds at once."""
    if not shape:
        return 0
    return min(math.floor(node.get(k, 0.0) / n + 1e-9) for k, n in shape)


# ---------------------------------------------------------------------------------- workers


class RayGate:
    """The workers' :class:`~evalfleet.agents.ModelGate`: every request asks the cluster's
    limiter actor; an unreachable limiter is an infrastructure error of the attempt."""

    def __init__(self, limiter: Any) -> None:
        self.limiter = limiter

    async def acquire(self, key: str, tokens: int) -> None:
        try:
            await self.limiter.acquire.remote(key, tokens)
        except Exception as exc:  # a RayError: the limiter's node or process is gone
            raise InfraError(f"the cluster's rate limiter is unreachable: "
                             f"{type(exc).__name__}") from None

    def settle(self, key: str, estimated: int, actual: int) -> None:
        self.limiter.settle.remote(key, estimated, actual)

    def pause(self, key: str, seconds: float) -> None:
        self.limiter.pause.remote(key, seconds)


class LimiterActor:
    """The plan's rate limits for the whole cluster (one named actor): the local
    :class:`~evalfleet.execution.ratelimit.RateLimiter` behind async methods."""

    def __init__(self, limits: dict[str, dict[str, float | None]]) -> None:
        self.limiter = RateLimiter({k: RateLimit(**v) for k, v in limits.items()})

    async def acquire(self, key: str, tokens: int) -> None:
        await self.limiter.acquire(key, tokens)

    async def settle(self, key: str, estimated: int, actual: int) -> None:
        self.limiter.settle(key, estimated, actual)

    async def pause(self, key: str, seconds: float) -> None:
        self.limiter.pause(key, seconds)


class AttemptWorker:
    """A worker actor: the plan's agents and scorers rebuilt from their specs, the suite, a
    sandbox provider on its node; runs many attempts at once in its event loop."""

    def __init__(self, plan_json: str, tasks: dict[str, str], sandbox: str, hidden: list[str],
                 prices: PriceTable, variables: dict[str, str], limiter: Any,
                 sys_path: list[str]) -> None:
        import ray

        for p in sys_path:  # the driver's import path (python agents next to the plan)
            if p not in sys.path and os.path.isdir(p):
                sys.path.append(p)
        self.node = str(ray.get_runtime_context().get_node_id())
        self.worker = _label(self.node)
        self.error = ""
        self.agents: list[Agent] = []
        self.scorers: dict[str, Scorer] = {}
        try:
            from evalfleet.sandbox import get_provider

            self.plan = Plan.model_validate_json(plan_json)
            # task JSON by id, each validated when first run here: a worker pays for the
            # tasks it runs, not for the whole suite before its first attempt
            self.tasks = tasks
            self.parsed: dict[str, Task] = {}
            self.provider = get_provider(sandbox, hidden_paths=hidden)
            self.agents = [create_agent(spec) for spec in self.plan.agents]
            for agent in self.agents:
                limit: Any = getattr(agent, "limit_threads", None)
                if limit is not None:
                    limit(self.plan.execution.max_in_flight)
        except Exception as exc:
            self.error = f"{type(exc).__name__}: {exc}"[:1000]
        self.prices = prices
        self.variables = variables
        self.gate: ModelGate = RayGate(limiter) if limiter is not None else NoGate()

    async def ready(self) -> tuple[str, str]:
        """(node id, error building the plan or ``""``)."""
        return self.node, self.error

    async def attempt(self, task_id: str, agent_index: int, run_id: str,
                      attempt: int) -> tuple[AttemptOutcome, str]:
        """Run one attempt; its outcome and this worker's label."""
        if self.error:
            return _infra(f"the worker on node {self.node[:16]} cannot run the plan: "
                          f"{self.error}", time.time()), self.worker
        task = self.parsed.get(task_id)
        if task is None:
            if len(self.parsed) >= 10_000:
                self.parsed.clear()
            task = self.parsed[task_id] = Task.model_validate_json(self.tasks[task_id])
        key = task.scorer.model_dump_json()
        scorer = self.scorers.get(key)
        if scorer is None:
            scorer = self.scorers[key] = create_scorer(task.scorer)
        out = await run_attempt(task=task, spec=self.plan.agents[agent_index],
                                agent=self.agents[agent_index], scorer=scorer,
                                provider=self.provider, prices=self.prices, gate=self.gate,
                                run_id=run_id, attempt=attempt, variables=self.variables)
        return out, self.worker

    # Attempts travel in batches: ``submit`` starts a list of attempts and returns at once;
    # ``collect`` returns the ones ended since the last call (waiting for one if none has).
    # One Ray call per attempt costs the driver about a millisecond of CPU, which at a few
    # hundred attempts a second is the driver's whole budget; batches cost it per call.
    #
    # An attempt submitted as *queued* waits here and starts only when one of this worker's
    # running attempts ends, in its slot: the next run is already here when a slot frees, so
    # no slot idles for the round trip to the driver and back (the driver decides which
    # attempts may start at once; see RayExecutor.prefetch). The end of the attempt whose
    # slot a queued one took carries that one's key, so the driver's count of running
    # attempts stays exact.

    def _setup(self) -> None:
        if not hasattr(self, "_running"):
            self._running: dict[int, asyncio.Task[None]] = {}
            self._queue: deque[Submitted] = deque()
            self._ended: list[Ended] = []
            self._wake = asyncio.Event()

    async def submit(self, batch: list[Submitted]) -> None:
        """Start attempts ``(key, task id, agent index, run id, attempt, queued)``; a queued
        one waits for a running one to end."""
        self._setup()
        for item in batch:
            if item[5]:
                self._queue.append(item)
            else:
                self._start(item)

    def _start(self, item: Submitted) -> None:
        key, task_id, agent_index, run_id, attempt, _ = item
        self._running[key] = asyncio.get_running_loop().create_task(
            self._one(key, task_id, agent_index, run_id, attempt))

    def _promote(self) -> int:
        """Start the oldest queued attempt in a slot that just freed; its key, or -1."""
        if not self._queue:
            return -1
        item = self._queue.popleft()
        self._start(item)
        return item[0]

    async def _one(self, key: int, task_id: str, agent_index: int, run_id: str,
                   attempt: int) -> None:
        out: AttemptOutcome | None = None
        error = ""
        try:
            out, _ = await self.attempt(task_id, agent_index, run_id, attempt)
        except asyncio.CancelledError:  # the driver stopped waiting for it
            error = "cancelled"
        except Exception as exc:  # an evalfleet bug: the driver records an infra attempt
            error = f"{type(exc).__name__}: {exc}"[:1000]
        finally:
            self._running.pop(key, None)
            # the slot goes to a queued attempt at once, ended or cancelled alike
            self._ended.append((key, out, self.worker, error, self._promote()))
            self._wake.set()

    async def collect(self, wait_s: float, gather_s: float = 0.002) -> list[Ended]:
        """The attempts ended since the last call ``(key, outcome or None, worker, error,
        key of the queued attempt started in its slot or -1)``; waits up to ``wait_s`` for
        one, then ``gather_s`` for more to come along."""
        self._setup()
        if not self._ended:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), wait_s)
            if self._ended and gather_s > 0:
                await asyncio.sleep(gather_s)
        self._wake.clear()
        out, self._ended = self._ended, []
        return out

    async def cancel(self, keys: list[int]) -> None:
        """Cancel attempts the driver stopped waiting for: queued ones never start, running
        ones end (their slot goes to a queued attempt)."""
        self._setup()
        drop = set(keys)
        self._queue = deque(item for item in self._queue if item[0] not in drop)
        for key in keys:
            t = self._running.get(key)
            if t is not None:
                t.cancel()

    async def close(self) -> None:
        """Close the agents (HTTP clients, thread pools)."""
        for agent in self.agents:
            closer: Any = getattr(agent, "aclose", None)
            if closer is not None:
                await closer()


def _infra(message: str, started: float, event: str = "worker_lost") -> AttemptOutcome:
    """The outcome of an attempt the infrastructure ended."""
    traj = Trajectory()
    traj.add(event, message=message)
    traj.add("error", error_kind="infra_error", message=message)
    return AttemptOutcome(score=None, error=InfraError(message), usage=Usage(), trajectory=traj,
                          sandbox="", started_at=started, duration_s=time.time() - started)


# ----------------------------------------------------------------------------------- driver


@dataclass(eq=False)
class _Actor:
    handle: Any
    node: str = ""
    weight: float = 1.0
    inflight: int = 0
    """Attempts submitted and not ended (running or queued there)."""
    started: int = 0
    """Slots of the worker running an attempt of ours, as the driver last heard."""
    queued: set[int] = field(default_factory=set)
    """Keys submitted as queued that have not started yet, as the driver last heard."""
    dead: bool = False
    linger: asyncio.TimerHandle | None = None
    waiting: dict[int, asyncio.Future[Executed]] = field(default_factory=dict)
    """Attempts submitted and not collected, by key."""
    outbox: list[Submitted] = field(default_factory=list)
    """Attempts to submit at the next flush (this pass of the event loop)."""
    collector: asyncio.Task[None] | None = None


@dataclass(eq=False)
class _ShapeGroup:
    """Actors holding one resource shape, one attempt each; idle ones are released after a
    moment without demand so other shapes can have their resources."""

    shape: Shape
    capacity: int
    idle: list[_Actor] = field(default_factory=list)
    count: int = 0
    waiters: deque[asyncio.Future[None]] = field(default_factory=deque)


class RayExecutor:
    """Runs attempts on a Ray cluster (see the module's documentation).

    Build it, :meth:`start` it (connects, checks resources, starts the limiter and the general
    workers), give it to the :class:`~evalfleet.execution.dispatcher.Dispatcher`, and
    :meth:`close` it at the end.
    """

    def __init__(self, *, plan: Plan, suite: Suite, sandbox: str, hidden_paths: Sequence[str],
                 prices: PriceTable, variables: Mapping[str, str], owner: str,
                 address: str | None = None, say: Callable[[str], None] | None = None,
                 linger_s: float = 2.0, refresh_s: float = 10.0,
                 ready_s: float = 600.0) -> None:
        self.plan = plan
        self.suite = suite
        self.sandbox = sandbox
        self.hidden = [str(p) for p in hidden_paths]
        self.prices = prices
        self.variables = dict(variables)
        self.owner = owner
        self.address = address if address is not None else os.environ.get("RAY_ADDRESS") or None
        self.say = say or (lambda _: None)
        self.linger_s = linger_s
        self.refresh_s = refresh_s
        self.ready_s = ready_s
        """How long a new worker may take to start (placement, imports, the plan)."""
        self.lost = 0
        """Attempts a lost worker or node ended (infrastructure errors)."""
        self._ray: Any = None
        self._own = False
        self._limiter: Any = None
        self._suite_ref: Any = None
        self._general: dict[str, _Actor] = {}  # node id -> its general worker
        self._starting: set[str] = set()  # nodes whose general worker is starting
        self._groups: dict[Shape, _ShapeGroup] = {}
        self._shapes: dict[str, Shape] = {}  # task id -> its shape (tasks with resources)
        self._node_names: set[str] = set()
        self._pools = {k for k in plan.resources}
        self._pool: ResourcePool | None = None
        self._pool_loop: asyncio.AbstractEventLoop | None = None
        self._last_refresh = 0.0
        self._refreshing: asyncio.Task[None] | None = None
        self._all: list[_Actor] = []
        self._keys = itertools.count()
        self._arrived: list[tuple[tuple[str, Any, float], Any]] = []
        self.slots = plan.execution.max_in_flight
        """Attempts that may run at once on the general workers (the plan's cap)."""
        self.prefetch = max(1, self.slots // 4)
        """Attempts the dispatcher may hand over beyond the cap: they wait on a general
        worker and start there as soon as one of its running attempts ends (without the
        round trip to the driver), so at most ``slots`` run at once."""
        self._started = 0  # general workers' slots running our attempts, as last heard

    # -- start and stop

    def start(self) -> None:
        """Connect to the cluster (or start a local one), check every task's resources fit
        some node, start the limiter and one general worker per node."""
        ray = self._ray = _ray()
        t0 = time.monotonic()
        if ray.is_initialized():
            self.say("ray: using the Ray runtime already initialised in this process")
        elif self.address:
            self.say(f"ray: connecting to the cluster at {self.address} ...")
            _check_reachable(self.address)  # ray.init retries a dead address for minutes
            try:
                ray.init(address=self.address, namespace=NAMESPACE, log_to_driver=False,
                         logging_level=logging.WARNING)
            except (ConnectionError, RuntimeError, ValueError) as exc:
                raise SpecError(f"cannot connect to the Ray cluster at {self.address}: "
                                f"{str(exc).splitlines()[0] if str(exc) else exc!r}",
                                field="--ray-address") from None
            self._own = True
        else:
            cpus = os.cpu_count() or 1
            self.say(f"ray: starting a local Ray runtime ({cpus} CPUs) ...")
            ray.init(num_cpus=cpus, include_dashboard=False, namespace=NAMESPACE,
                     log_to_driver=False, logging_level=logging.WARNING)
            self._own = True
        try:
            nodes = self._alive_nodes()
            self.say(f"ray: {len(nodes)} node(s) alive after {time.monotonic() - t0:.1f}s: "
                     + ", ".join(f"{n['NodeID'][:8]} {_brief(n['Resources'])}" for n in nodes))
            self._check(nodes)
            self._start_limiter()
            self._suite_ref = ray.put({t.id: t.model_dump_json() for t in self.suite.tasks})
            self._wait_general_ready(self._refresh_general(nodes))
            late = len(self._starting)
            self.say(f"ray: {len(self._general)} general worker(s) ready after "
                     f"{time.monotonic() - t0:.1f}s" + (f" ({late} more join as they start)"
                                                        if late else ""))
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        """Stop the workers and the limiter; disconnect from (or stop) the Ray runtime this
        executor started."""
        ray = self._ray
        if ray is None:
            return
        for actor in [*self._all, *([_Actor(self._limiter)] if self._limiter else [])]:
            with contextlib.suppress(Exception):
                ray.kill(actor.handle)
        self._all.clear()
        self._general.clear()
        self._groups.clear()
        self._limiter = None
        if self._own:
            ray.shutdown()
            self._own = False
        self._ray = None

    def _alive_nodes(self) -> list[dict[str, Any]]:
        nodes = [n for n in self._ray.nodes() if n.get("Alive")]
        for n in nodes:
            self._node_names.update(n.get("Resources", {}))
        return nodes

    def _check(self, nodes: list[dict[str, Any]]) -> None:
        """Every task's resources fit some node (Ray's) or the plan's pools; SpecError if not."""
        self._node_names.update(*(n["Resources"] for n in nodes))
        seen: dict[tuple[tuple[str, int], ...], Shape] = {}
        for task in self.suite.tasks:
            if not task.resources:
                continue
            key = tuple(sorted(task.resources.items()))
            shape = seen.get(key)
            if shape is None:
                for name, n in task.resources.items():
                    rname = RAY_NAMES.get(name.lower(), name)
                    if n and name not in self._pools and rname not in self._node_names \
                            and rname not in RAY_NAMES.values():
                        raise SpecError(f"task {task.id} needs {n} {name}, which no node of the "
                                        f"Ray cluster declares and the plan's resources do not "
                                        f"provide", field="resources")
                    if n and name in self._pools and n > self.plan.resources[name]:
                        raise SpecError(f"task {task.id} needs {n} {name} but the plan provides "
                                        f"{self.plan.resources[name]}", field="resources")
                shape = ray_shape(task.resources, self._node_names, self._pools)
                capacity = sum(fits(shape, n["Resources"]) for n in nodes) if shape else 0
                if shape and capacity == 0:
                    raise SpecError(
                        f"task {task.id} needs {_brief(dict(shape))}, which no node of the Ray "
                        f"cluster has (nodes: "
                        + "; ".join(_brief(n['Resources']) for n in nodes) + ")",
                        field="resources")
                if shape and shape not in self._groups:
                    self._groups[shape] = _ShapeGroup(
                        shape, min(capacity, self.plan.execution.max_in_flight))
                seen[key] = shape
            if shape:
                self._shapes[task.id] = shape

    def _start_limiter(self) -> None:
        if not self.plan.rate_limits:
            return
        ray = self._ray
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        here = ray.get_runtime_context().get_node_id()
        name = f"evalfleet-limits-{self.owner}"
        cls = ray.remote(LimiterActor)
        self._limiter = cls.options(
            name=name, namespace=NAMESPACE, num_cpus=0, max_restarts=-1,
            max_concurrency=10_000,
            scheduling_strategy=NodeAffinitySchedulingStrategy(here, soft=True),
        ).remote({k: v.model_dump() for k, v in self.plan.rate_limits.items()})
        self.say(f"ray: cluster-wide rate limits in actor {name} for "
                 + ", ".join(sorted(self.plan.rate_limits)))

    def _new_worker(self, **options: Any) -> Any:
        ray = self._ray
        cls = ray.remote(AttemptWorker)
        return cls.options(max_restarts=0, max_task_retries=0,
                           max_concurrency=self.plan.execution.max_in_flight + 16,
                           **options).remote(
            self.plan.model_dump_json(), self._suite_ref, self.sandbox, self.hidden,
            self.prices, self.variables, self._limiter,
            [p for p in sys.path if p and os.path.isdir(p)])

    def _refresh_general(self, nodes: list[dict[str, Any]]) -> list[tuple[str, Any, float]]:
        """Start a general worker on every alive node with CPUs that has none; returns the
        (node id, handle, CPUs) started (not yet known ready)."""
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        alive = {n["NodeID"] for n in nodes}
        for node, actor in list(self._general.items()):
            if node not in alive:
                self._retire(actor)
                del self._general[node]
        started = []
        for n in nodes:
            node = n["NodeID"]
            cpus = float(n["Resources"].get("CPU", 0.0))
            if cpus <= 0 or node in self._general or node in self._starting:
                continue
            handle = self._new_worker(
                num_cpus=0,
                scheduling_strategy=NodeAffinitySchedulingStrategy(node, soft=False))
            self._starting.add(node)
            started.append((node, handle, cpus))
        return started

    def _wait_general_ready(self, pending: list[tuple[str, Any, float]]) -> None:
        ray = self._ray
        if not pending:
            raise SpecError("the Ray cluster has no node with CPUs for the workers",
                            field="--ray-address")
        # the dispatch starts once every worker is ready, or one is and the others had a minute
        # more (a node that is slow to start a process); those still starting join later
        refs = [h.ready.remote() for _, h, _ in pending]
        first, _ = ray.wait(refs, num_returns=1, timeout=self.ready_s)
        if not first:
            raise SpecError(f"no Ray worker started within {self.ready_s:g}s",
                            field="execution.backend")
        first, _ = ray.wait(refs, num_returns=len(refs), timeout=60.0)
        for ref, item in zip(refs, pending, strict=True):
            if ref in first:
                try:
                    _, error = ray.get(ref)
                except Exception as exc:
                    raise SpecError(f"the Ray worker on node {item[0][:16]} did not start: "
                                    f"{_first_line(exc)}", field="execution.backend") from None
                if error:
                    raise SpecError(f"the Ray worker on node {item[0][:16]} cannot run the "
                                    f"plan: {error}", field="execution.backend")
                self._adopt(item, error)
            else:
                ref.future().add_done_callback(
                    lambda f, item=item: self._arrived.append((item, f)))

    def _adopt(self, item: tuple[str, Any, float], error: str) -> None:
        """A general worker started: in rotation, or (with an error) stopped."""
        node, handle, cpus = item
        self._starting.discard(node)
        if error:
            self.say(f"ray: the worker on node {node[:8]} cannot run the plan: {error}")
            with contextlib.suppress(Exception):
                self._ray.kill(handle)
            return
        actor = _Actor(handle, node, max(cpus, 1.0))
        self._general[node] = actor
        self._all.append(actor)

    def _adopt_arrived(self) -> None:
        """Workers of the start whose readiness arrived (on Ray's thread) since the last call."""
        while self._arrived:
            item, fut = self._arrived.pop()
            try:
                _, error = fut.result()
            except Exception as exc:
                error = f"did not start: {_first_line(exc)}"
            self._adopt(item, error)

    async def _refresh(self) -> None:
        """In the background: forget general workers of dead nodes, start workers on nodes
        without one (new nodes, or a worker that died on a live node)."""
        try:
            nodes = await asyncio.to_thread(self._alive_nodes)
            for node, handle, cpus in self._refresh_general(nodes):
                try:
                    _, error = await asyncio.wait_for(
                        asyncio.wrap_future(handle.ready.remote().future()), 600)
                except Exception:
                    error = "did not start"
                self._starting.discard(node)
                if error:
                    with contextlib.suppress(Exception):
                        self._ray.kill(handle)
                    continue
                actor = _Actor(handle, node, max(cpus, 1.0))
                self._general[node] = actor
                self._all.append(actor)
                self.say(f"ray: worker started on node {node[:8]}")
        finally:
            self._last_refresh = time.monotonic()
            self._refreshing = None

    def _kick_refresh(self, now: bool = False) -> None:
        if self._refreshing is not None:
            return
        if now or time.monotonic() - self._last_refresh >= self.refresh_s:
            self._last_refresh = time.monotonic()
            self._refreshing = asyncio.get_running_loop().create_task(self._refresh())

    # -- attempts

    def _plan_pool(self) -> ResourcePool:
        loop = asyncio.get_running_loop()
        if self._pool is None or self._pool_loop is not loop:  # one per event loop (round)
            self._pool = ResourcePool(self.plan.resources)
            self._pool_loop = loop
        return self._pool

    async def _take(self, group: _ShapeGroup) -> _Actor:
        loop = asyncio.get_running_loop()
        while True:
            while group.idle:
                actor = group.idle.pop()
                if actor.linger is not None:
                    actor.linger.cancel()
                    actor.linger = None
                if not actor.dead:
                    return actor
            if group.count < group.capacity:
                group.count += 1
                handle = self._new_worker(**actor_options(group.shape))
                actor = _Actor(handle)
                self._all.append(actor)
                try:
                    node, error = await asyncio.wait_for(
                        asyncio.wrap_future(handle.ready.remote().future()), self.ready_s)
                except TimeoutError:
                    self._drop(group, actor)  # no node can host it now (a node was lost)
                    raise InfraError(f"no node of the Ray cluster could start a worker for "
                                     f"{_brief(dict(group.shape))} within {self.ready_s:g}s"
                                     ) from None
                except BaseException as exc:
                    self._drop(group, actor)
                    if isinstance(exc, Exception):
                        raise InfraError(f"a Ray worker for {_brief(dict(group.shape))} did not "
                                         f"start: {_first_line(exc)}") from None
                    raise
                if error:
                    self._drop(group, actor)
                    raise InfraError(f"a Ray worker for {_brief(dict(group.shape))} cannot run "
                                     f"the plan: {error}")
                actor.node = node
                return actor
            fut: asyncio.Future[None] = loop.create_future()
            group.waiters.append(fut)
            try:
                await fut
            finally:
                with contextlib.suppress(ValueError):
                    group.waiters.remove(fut)

    def _drop(self, group: _ShapeGroup, actor: _Actor) -> None:
        actor.dead = True
        group.count -= 1
        with contextlib.suppress(ValueError):
            self._all.remove(actor)
        with contextlib.suppress(Exception):
            self._ray.kill(actor.handle)
        self._wake(group)

    def _wake(self, group: _ShapeGroup) -> None:
        while group.waiters:
            fut = group.waiters.popleft()
            if not fut.done():
                fut.set_result(None)
                return

    def _give(self, group: _ShapeGroup, actor: _Actor) -> None:
        if actor.dead:
            self._drop(group, actor)
            return
        group.idle.append(actor)
        if group.waiters:
            self._wake(group)
            return

        def release() -> None:
            if actor in group.idle and not group.waiters:
                group.idle.remove(actor)
                self._drop(group, actor)

        actor.linger = asyncio.get_running_loop().call_later(self.linger_s, release)

    def _pick_general(self) -> tuple[_Actor, bool] | None:
        """The general worker for the next attempt, and whether it waits there (queued):
        started at once on the worker with the fewest running per CPU while fewer than
        ``slots`` run, else queued on the one with the fewest waiting per CPU."""
        live = [a for a in self._general.values() if not a.dead]
        if not live:
            return None
        if self._started < self.slots:
            return min(live, key=lambda a: a.started / a.weight), False
        return min(live, key=lambda a: (len(a.queued) / a.weight, a.inflight / a.weight)), True

    async def run(self, task: Task, agent_index: int, run_id: str, attempt: int) -> Executed:
        started = time.time()
        if self._arrived:
            self._adopt_arrived()
        self._kick_refresh()
        shape = self._shapes.get(task.id)
        pool_needs = {k: n for k, n in task.resources.items() if k in self._pools}
        pool = self._plan_pool()
        await pool.acquire(pool_needs)
        try:
            group = self._groups[shape] if shape else None
            queued = False
            if group is not None:
                try:
                    actor = await self._take(group)
                except InfraError as exc:
                    return Executed(_infra(str(exc), started), "")
            else:
                picked = self._pick_general()
                if picked is None:
                    self._kick_refresh(now=True)
                    return Executed(_infra("no live Ray worker (every node was lost)", started,
                                           "no_worker"), "")
                actor, queued = picked
            actor.inflight += 1
            try:
                return await self._call(actor, task, agent_index, run_id, attempt, started,
                                        queued=group is None and queued)
            finally:
                actor.inflight -= 1
                if group is not None:
                    self._give(group, actor)
        finally:
            await pool.release(pool_needs)

    async def _call(self, actor: _Actor, task: Task, agent_index: int, run_id: str,
                    attempt: int, started: float, *, queued: bool = False) -> Executed:
        """Submit the attempt to ``actor`` (with the others of this pass of the event loop),
        to start at once or to wait there for a slot (``queued``), and wait for the collector
        to bring its outcome back."""
        loop = asyncio.get_running_loop()
        key = next(self._keys)
        fut: asyncio.Future[Executed] = loop.create_future()
        actor.waiting[key] = fut
        if not actor.outbox:
            loop.call_soon(self._flush, actor)
        actor.outbox.append((key, task.id, agent_index, run_id, attempt, queued))
        if queued:
            actor.queued.add(key)
        else:
            actor.started += 1
            self._started += 1
        if actor.collector is None or actor.collector.done():
            actor.collector = loop.create_task(self._collect(actor))
        deadline = 2 * task.limits.timeout_s + 120.0
        try:
            return await asyncio.wait_for(fut, deadline)
        except TimeoutError:
            self.lost += 1
            return Executed(_infra(f"no answer from the Ray worker on node {actor.node[:16]} "
                                   f"within {deadline:g}s", started), _label(actor.node))
        finally:
            if actor.waiting.pop(key, None) is not None and not actor.dead:
                # timed out or cancelled: stop it there (a queued one never starts; a running
                # one's end still reports its slot)
                actor.queued.discard(key)
                with contextlib.suppress(Exception):
                    actor.handle.cancel.remote([key])

    def _flush(self, actor: _Actor) -> None:
        batch, actor.outbox = actor.outbox, []
        if not batch or actor.dead:
            for key, *_ in batch:
                self._fail(actor, key, "the Ray worker was lost before the attempt started")
            return
        ref = actor.handle.submit.remote(batch)
        loop = asyncio.get_running_loop()

        def submitted(f: Any) -> None:
            exc = f.exception()
            if exc is not None:
                loop.call_soon_threadsafe(self._submit_failed, actor, batch, exc)

        ref.future().add_done_callback(submitted)

    def _submit_failed(self, actor: _Actor, batch: list[Submitted],
                       exc: BaseException) -> None:
        if self._is_loss(exc):
            self._lose(actor, exc)
            return
        for key, *_ in batch:
            self._fail(actor, key, f"the Ray worker on node {actor.node[:16]} refused the "
                                   f"attempt: {type(exc).__name__}: {_first_line(exc)}")

    async def _collect(self, actor: _Actor) -> None:
        """While attempts of ``actor`` are out: fetch the ended ones and deliver them."""
        while actor.waiting and not actor.dead:
            try:
                ended = await asyncio.wrap_future(actor.handle.collect.remote(0.5).future())
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if self._is_loss(exc):
                    self._lose(actor, exc)
                    return
                await asyncio.sleep(0.1)  # a collect that failed for another reason: again
                continue
            for key, out, worker, error, promoted in ended:
                # the slot's count: handed to the queued attempt, or free again
                if promoted >= 0:
                    actor.queued.discard(promoted)
                else:
                    self._free_slot(actor)
                fut = actor.waiting.pop(key, None)
                if fut is None or fut.done():
                    continue
                if out is None:
                    out = _infra(f"the Ray worker on node {actor.node[:16]} failed the attempt: "
                                 f"{error}", time.time(), "worker_error")
                fut.set_result(Executed(out, worker))

    def _retire(self, actor: _Actor) -> None:
        """``actor`` is gone or going: its slots no longer count as running."""
        actor.dead = True
        self._started -= actor.started
        actor.started = 0
        actor.queued.clear()

    def _free_slot(self, actor: _Actor) -> None:
        if actor.started > 0 and not actor.dead:
            actor.started -= 1
            self._started -= 1

    def _is_loss(self, exc: BaseException) -> bool:
        ex = self._ray.exceptions
        return isinstance(exc, ex.RayActorError | ex.WorkerCrashedError | ex.NodeDiedError
                          | ex.ObjectLostError)

    def _lose(self, actor: _Actor, exc: BaseException) -> None:
        """``actor`` (its process or node) is gone: every attempt out there is an infra
        attempt; start replacements where the cluster has room."""
        if actor.dead and not actor.waiting:
            return
        self._retire(actor)
        if self._general.get(actor.node) is actor:
            del self._general[actor.node]
        message = (f"the Ray worker on node {actor.node[:16]} was lost during the attempt: "
                   f"{type(exc).__name__}: {_first_line(exc)}")[:2000]
        for key in list(actor.waiting):
            self._fail(actor, key, message)
        self._kick_refresh(now=True)

    def _fail(self, actor: _Actor, key: int, message: str) -> None:
        fut = actor.waiting.pop(key, None)
        if fut is not None and not fut.done():
            self.lost += 1
            fut.set_result(Executed(_infra(message, time.time()), _label(actor.node)))


def _check_reachable(address: str, timeout_s: float = 10.0) -> None:
    """A ``HOST:PORT`` (or ``ray://HOST:PORT``) address must accept a TCP connection; other
    forms (``auto``, ``local``) are left to Ray. SpecError if nothing listens there."""
    import socket

    host, sep, port = address.removeprefix("ray://").rpartition(":")
    if not sep or not port.isdigit() or not host:
        return
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout_s):
            return
    except OSError as exc:
        raise SpecError(f"cannot connect to the Ray cluster at {address}: "
                        f"{exc.strerror or exc}", field="--ray-address") from None


def _label(node: str) -> str:
    """The ``worker`` column of a run a Ray worker ran: ``ray:`` and the node id's start."""
    return f"ray:{node[:16]}" if node else "ray"


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:500] if text else type(exc).__name__


def _brief(resources: Mapping[str, float]) -> str:
    """``CPU 2, GPU 1, docker 1``: a node's resources without Ray's internal ones."""
    shown = [f"{k} {v:g}" for k, v in sorted(resources.items())
             if not k.startswith("node:") and k not in ("memory", "object_store_memory")
             and not k.startswith("accelerator_type")]
    return "{" + ", ".join(shown) + "}"
