"""Job states for hydra's submitit launcher on clusters without SLURM accounting.

submitit polls `sacct` for the state of the jobs it submitted. Without accounting (no slurmdbd:
a laptop or CI cluster, `AccountingStorageType=accounting_storage/none`) every poll fails and
prints a "Bypassing sacct error ... status may be inaccurate" warning block, and a job that dies
without writing its result (cancelled, killed, node lost) is never seen to end, so the sweep
waits forever. Where `sacct` says accounting is disabled, this watcher asks `squeue` instead
(slurmctld keeps finished jobs for MinJobAge seconds) and reports a job squeue no longer knows
as finished, so submitit reads its result or says that it produced none.
"""

from __future__ import annotations

import functools
import logging
import subprocess
import time
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

log = logging.getLogger(__name__)

ACCOUNTING_DISABLED = "accounting storage is disabled"
GONE = "GONE"  # a job squeue no longer lists: not one of submitit's unfinished states, so it is done
# squeue states sacct never shows, as the state submitit knows (else it would take them as finished)
AS_SACCT = {
    "CONFIGURING": "RUNNING", "SIGNALING": "RUNNING", "RESIZING": "RUNNING", "STAGE_OUT": "COMPLETING",
    "REQUEUE_FED": "REQUEUED", "REQUEUE_HOLD": "REQUEUED", "RESV_DEL_HOLD": "PENDING",
}  # fmt: skip


def squeue_states(job_ids: set[str]) -> str:
    """`squeue` output for these jobs (and their array tasks) in sacct's `--parsable2` layout."""
    command = ["squeue", "--noheader", "--states=all", "--array", "--format=%i|%T|%N"]
    out = subprocess.run(
        [*command, f"--jobs={','.join(sorted(job_ids))}"], capture_output=True, text=True, timeout=60
    )
    if out.returncode != 0 and "Invalid job id" not in out.stderr:  # else: all of them are gone
        raise subprocess.CalledProcessError(out.returncode, out.args, out.stdout, out.stderr)
    rows = [line.split("|") for line in out.stdout.split()]
    return "\n".join(["JobID|State|NodeList", *(f"{j}|{AS_SACCT.get(st, st)}|{n}" for j, st, n in rows)])


@functools.cache
def accounting_disabled() -> bool:
    """Whether this cluster's `sacct` answers "accounting storage is disabled" (asked once)."""
    try:
        probe = subprocess.run(["sacct", "--noheader"], capture_output=True, text=True, timeout=60)
    except (subprocess.SubprocessError, OSError):
        return False
    return probe.returncode != 0 and ACCOUNTING_DISABLED in probe.stderr


def squeue_watcher_class() -> type:
    """submitit's SlurmInfoWatcher, asking squeue instead of sacct where accounting is off."""
    from submitit.slurm.slurm import SlurmInfoWatcher

    class SqueueFallbackWatcher(SlurmInfoWatcher):
        def update(self) -> None:
            if not accounting_disabled():
                return super().update()
            pending = self._registered - self._finished
            if not pending:
                return
            try:
                self._output = squeue_states({x.split("_")[0] for x in pending}).encode()
            except (subprocess.SubprocessError, OSError) as err:  # slurmctld busy: keep the last states
                log.warning("squeue failed (%s); job states may be stale", err)
            else:
                self._num_calls += 1
                info = self.read_info(self._output)
                gone = {job: {"JobID": job, "State": GONE, "NodeList": ""} for job in pending - set(info)}
                self._info_dict.update(info | gone)
            self._last_status_check = time.time()
            for job_id in self._registered - self._finished:
                if self.is_done(job_id, mode="cache"):
                    self._finished.add(job_id)

    return SqueueFallbackWatcher


class SubmititStatusCallback(Callback):
    """Before a sweep through the submitit SLURM launcher, install the squeue fallback watcher."""

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        if "submitit" not in str(config.hydra.launcher.get("_target_", "")):
            return
        from submitit.slurm.slurm import SlurmJob

        # The watcher is a class attribute shared by every SlurmJob: replacing it is submitit's
        # only hook for how states are read.
        SlurmJob.watcher = squeue_watcher_class()(delay_s=600)
        if accounting_disabled():
            log.info("SLURM accounting is off (no sacct records): submitit's job states come from squeue")
