"""One run per configuration digest, even when two processes race for it: a lease on the run.

A process that works on a run holds its lease: tags naming its host and pid (``rose.lease.host``,
``rose.lease.pid``) and a heartbeat (``rose.lease.heartbeat``, Unix seconds) that a daemon thread refreshes
every ``timeout / 6`` seconds. A RUNNING run is *live* while its heartbeat is younger than the timeout
(``ROSE_LEASE_TIMEOUT``, default 60 s) and, on this host, its process exists; otherwise it counts as crashed.
A live run is never adopted or deleted by another process.

Claiming a digest (:func:`claim`) uses only what every MLflow store offers (create, tag, search, delete runs),
so it works on SQLite and on a tracking server alike:

1. a finished run with the stage and digest exists: reuse it;
2. a live run exists: wait (polling) until it finishes (reuse it) or its lease goes stale;
3. otherwise create our own run with the digest and a lease, and look again: the oldest live run (by start
   time, then run id) wins. The apparent winner looks once more after a short pause, since a run created just
   before its own may become visible late (the pause: :func:`settle_s`). A loser deletes its run and goes back
   to 1;
4. the winner takes over the newest crashed run of the digest, if there is one (its lease is rewritten first,
   then the claim run is deleted), so that what the crashed process finished is kept; else it keeps its run.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)

HOST_TAG = "rose.lease.host"
PID_TAG = "rose.lease.pid"
HEARTBEAT_TAG = "rose.lease.heartbeat"
OWNER_TAG = "rose.lease.owner"
SETTLE_S = 1.0  # the longest pause before the apparent winner looks again (see settle_s)
SETTLE_MIN_S = 0.2
SETTLE_FACTOR = 5
POLL_S = 2.0  # how often a waiting process looks at the winner

HOST = socket.gethostname()


def wait_s() -> float:
    """Seconds a claim waits for a live twin before it gives up (``ROSE_CLAIM_WAIT``, default 6 hours): a twin
    whose process hangs while its heartbeat thread still beats must not hold every other claimer for ever."""
    return float(os.environ.get("ROSE_CLAIM_WAIT", str(6 * 3600)))


def timeout_s() -> float:
    """Seconds without a heartbeat after which a RUNNING run counts as crashed (``ROSE_LEASE_TIMEOUT``)."""
    return float(os.environ.get("ROSE_LEASE_TIMEOUT", "60"))


def lease_tags(owner: str) -> dict[str, str]:
    return {HOST_TAG: HOST, PID_TAG: str(os.getpid()), HEARTBEAT_TAG: f"{time.time():.3f}", OWNER_TAG: owner}


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def is_live(run: Any, now: float | None = None) -> bool:
    """Whether a live process holds ``run``'s lease (RUNNING, fresh heartbeat, its process alive on this host)."""
    if run.info.status != "RUNNING":
        return False
    tags = run.data.tags
    try:
        beat = float(tags[HEARTBEAT_TAG])
    except (KeyError, ValueError):  # a run from before leases, or not rose's: nobody vouches for it
        return False
    if tags.get(HOST_TAG) == HOST and tags.get(PID_TAG, "").isdigit() and not _pid_alive(int(tags[PID_TAG])):
        return False
    return (now or time.time()) - beat <= timeout_s()


_HELD: set[Lease] = set()  # the leases this process holds now (see :func:`fail_held`)


class Lease:
    """The heartbeat of one run, refreshed from a daemon thread until :meth:`release`."""

    def __init__(self, run_id: str, owner: str):
        import mlflow

        self.run_id, self.owner = run_id, owner
        self._client = mlflow.MlflowClient()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name=f"rose-lease-{run_id[:8]}", daemon=True)

    def start(self) -> Lease:
        self._thread.start()
        _HELD.add(self)
        return self

    def _beat(self) -> None:
        interval = max(0.2, timeout_s() / 6)
        while not self._stop.wait(interval):
            try:
                self._client.set_tag(self.run_id, HEARTBEAT_TAG, f"{time.time():.3f}")
            except Exception as exc:  # noqa: BLE001 - a store hiccup: the next beat tries again
                log.warning("lease heartbeat of run %s not written: %s", self.run_id, str(exc).splitlines()[0])

    def move(self, run_id: str) -> None:
        """Hold ``run_id`` instead (taking over a crashed run): its lease tags are written first."""
        for key, value in lease_tags(self.owner).items():
            self._client.set_tag(run_id, key, value)
        self._client.update_run(run_id, status="RUNNING")
        self.run_id = run_id

    def release(self) -> None:
        self._stop.set()
        _HELD.discard(self)
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout=10)


def fail_held(reason: str) -> list[str]:
    """End every run this process holds FAILED with ``reason`` and free its lease (a unit past its time limit,
    just before its worker exits); returns the run ids. A later claim of the digest takes the run over."""
    import mlflow

    client = mlflow.MlflowClient()
    failed = []
    for lease in list(_HELD):
        lease._stop.set()
        _HELD.discard(lease)
        try:
            client.set_tag(lease.run_id, "rose.error", reason[:4000])  # rose.tracking.ERROR_TAG
            client.set_terminated(lease.run_id, "FAILED")
            failed.append(lease.run_id)
        except Exception as exc:  # noqa: BLE001 - the store may be what hangs: the stale heartbeat frees it then
            log.warning("could not end run %s: %s", lease.run_id, str(exc).splitlines()[0])
    return failed


@dataclass
class Claim:
    """What :func:`claim` decided: reuse ``finished``, or work on ``run_id`` (``adopted``: a crashed run)."""

    finished: Any = None
    run_id: str | None = None
    adopted: bool = False
    lease: Lease | None = None


def _search(experiment_id: str, stage: str, digest: str) -> list:
    import mlflow

    query = f"tags.`rose.stage` = '{stage}' and tags.`rose.digest` = '{digest}'"  # rose's own names: no quotes
    return mlflow.MlflowClient().search_runs([experiment_id], query, max_results=1000)


def _order(run: Any) -> tuple:
    return run.info.start_time or 0, run.info.run_id


def _finished(runs: list) -> Any:
    done = [r for r in runs if r.info.status == "FINISHED"]
    return max(done, key=_order) if done else None


def settle_s(round_trip_s: float) -> float:
    """How long the apparent winner pauses before it looks again: a rival's run created just before its own stays
    invisible about as long as creating a run and searching the store take, which this process just measured
    (``round_trip_s``); five times that, at least 0.2 s and at most :data:`SETTLE_S` (1 s). ``ROSE_LEASE_SETTLE``
    (seconds) fixes it instead. On a local SQLite store the pause is the 0.2 s floor, where a fixed second cost
    a study one second per run it claimed."""
    fixed = os.environ.get("ROSE_LEASE_SETTLE", "")
    if fixed:
        return float(fixed)
    return min(SETTLE_S, max(SETTLE_MIN_S, SETTLE_FACTOR * round_trip_s))


def _won(experiment_id: str, stage: str, digest: str, mine: str, created_s: float) -> bool:
    """Whether ``mine`` is the oldest live run of the digest, looked at twice; ``created_s``: the seconds creating
    ``mine`` took (with the first search, what the pause is scaled by)."""
    for look in range(2):
        began = time.monotonic()
        runs = _search(experiment_id, stage, digest)
        if _finished(runs):
            return False
        contenders = sorted((r for r in runs if r.info.run_id == mine or is_live(r)), key=_order)
        if not contenders or contenders[0].info.run_id != mine:
            return False
        if look == 0:
            time.sleep(settle_s(created_s + time.monotonic() - began))
    return True


def claim(experiment_id: str, stage: str, digest: str, tags: dict[str, str], name: str) -> Claim:
    """Reuse the finished run of ``stage`` with ``digest``, or become the one process working on it.

    Blocks while another live process works on the digest. The returned lease (when working) must be released
    when the run ends (``rose.tracking.run(..., lease=claim.lease)`` does it).
    """
    from rose.launcher import new_run

    waiting_on, since = None, time.monotonic()
    while True:
        runs = _search(experiment_id, stage, digest)
        if done := _finished(runs):
            return Claim(finished=done)
        live = sorted((r for r in runs if is_live(r)), key=_order)
        if live:
            if waiting_on != live[0].info.run_id:
                waiting_on, since = live[0].info.run_id, time.monotonic()
                t = live[0].data.tags
                log.info("run %s (%s, pid %s) is working on the same configuration: waiting for it to finish",
                         waiting_on, t.get(HOST_TAG), t.get(PID_TAG))  # fmt: skip
            if time.monotonic() - since > wait_s():
                from rose.errors import RoseError

                t = live[0].data.tags
                raise RoseError(f"run {waiting_on} ({t.get(HOST_TAG)}, pid {t.get(PID_TAG)}) has worked on the same "
                                f"configuration for over {wait_s():.0f} s (ROSE_CLAIM_WAIT) while this one waited: "
                                "stop it if it hangs, or wait longer")  # fmt: skip
            time.sleep(POLL_S)
            continue
        owner, began = uuid.uuid4().hex, time.monotonic()
        mine = new_run(experiment_id, {**tags, **lease_tags(owner)}, name)
        created_s = time.monotonic() - began
        lease = Lease(mine.info.run_id, owner).start()
        try:
            won = _won(experiment_id, stage, digest, mine.info.run_id, created_s)
        except BaseException:
            lease.release()
            _drop(mine)
            raise
        if not won:
            lease.release()
            _drop(mine)
            continue
        crashed = [r for r in runs if r.info.status != "FINISHED" and not is_live(r)]
        if not crashed:
            return Claim(run_id=mine.info.run_id, lease=lease)
        stopped = max(crashed, key=_order)
        lease.move(stopped.info.run_id)
        _drop(mine)
        return Claim(run_id=stopped.info.run_id, adopted=True, lease=lease)


def _drop(run: Any) -> None:
    """Delete a claim run that lost, or give it back when it is the run ``mlflow run`` started."""
    import mlflow

    from rose.launcher import give_back

    if not give_back(run.info.run_id, run.data.tags):
        mlflow.MlflowClient().delete_run(run.info.run_id)


def hold_new(experiment_id: str, tags: dict[str, str], name: str) -> Claim:
    """A new run under a lease, with no contest (the caller wants a fresh run whatever exists)."""
    from rose.launcher import new_run

    owner = uuid.uuid4().hex
    run = new_run(experiment_id, {**tags, **lease_tags(owner)}, name)
    return Claim(run_id=run.info.run_id, lease=Lease(run.info.run_id, owner).start())
