"""A real single-node SLURM cluster for tests (Debian's slurmctld, slurmd and munge; needs root).

`with LocalSlurm(state_dir) as cluster:` installs the packages if missing, writes a munge key and a
slurm.conf with two partitions (`cpu`, `gpu`, the names profiles/slurm uses) on this machine, starts
munged, slurmctld and slurmd in the foreground as children, waits until the node is idle, and on exit
stops exactly those processes by pid. Nothing outlives the `with` block.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

PACKAGES = ["slurmctld", "slurmd", "slurm-client", "munge"]
MUNGE_KEY = Path("/etc/munge/munge.key")
SLURM_CONF = Path("/etc/slurm/slurm.conf")


def install_packages() -> None:
    if all(shutil.which(tool) for tool in ("slurmctld", "slurmd", "sbatch", "munged")):
        return
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "-q", *PACKAGES]
    if subprocess.run(install, env=env, capture_output=True).returncode != 0:
        subprocess.run(["apt-get", "update", "-q"], env=env, check=True, capture_output=True)
        subprocess.run(install, env=env, check=True, capture_output=True)


def slurm_conf(host: str, cpus: int, memory_mb: int, state_dir: Path) -> str:
    return f"""ClusterName=local
SlurmctldHost={host}
SlurmUser=root
AuthType=auth/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
MinJobAge=600
ReturnToService=2
StateSaveLocation={state_dir}/slurmctld
SlurmdSpoolDir={state_dir}/slurmd
SlurmctldPidFile={state_dir}/slurmctld.pid
SlurmdPidFile={state_dir}/slurmd.pid
SlurmctldLogFile={state_dir}/slurmctld.log
SlurmdLogFile={state_dir}/slurmd.log
NodeName={host} CPUs={cpus} RealMemory={memory_mb} State=UNKNOWN
PartitionName=cpu Nodes=ALL Default=YES MaxTime=INFINITE State=UP
PartitionName=gpu Nodes=ALL MaxTime=INFINITE State=UP
"""


def total_memory_mb() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) // 1024
    raise RuntimeError("no MemTotal in /proc/meminfo")


class LocalSlurm:
    def __init__(self, state_dir: Path):
        self.state_dir = Path(state_dir)
        self.host = socket.gethostname()
        self.procs: list[subprocess.Popen] = []
        self._saved_conf: str | None = None

    def __enter__(self) -> "LocalSlurm":
        install_packages()
        for sub in ("slurmctld", "slurmd"):
            (self.state_dir / sub).mkdir(parents=True, exist_ok=True)
        # outside state_dir: the munge user must reach it (pytest's tmp folders are root-only)
        self.munge_dir = Path(tempfile.mkdtemp(prefix="atommem-munge-"))
        try:
            self._start_munge()
            self._write_conf()
            self._start("slurmctld", ["slurmctld", "-D", "-i"])
            self._start("slurmd", ["slurmd", "-D"])
            self._wait_idle()
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, *exc) -> None:
        for proc in reversed(self.procs):
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
        self.procs.clear()
        shutil.rmtree(self.munge_dir, ignore_errors=True)
        if self._saved_conf is not None:
            SLURM_CONF.write_text(self._saved_conf)
        elif SLURM_CONF.exists():
            SLURM_CONF.unlink()

    def _start(self, name: str, cmd: list[str], **kwargs) -> None:
        log = open(self.state_dir / f"{name}.out", "ab")
        self.procs.append(subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, **kwargs))

    def _start_munge(self) -> None:
        if not MUNGE_KEY.exists():
            MUNGE_KEY.parent.mkdir(parents=True, exist_ok=True)
            MUNGE_KEY.write_bytes(os.urandom(1024))
        shutil.chown(MUNGE_KEY, "munge", "munge")
        MUNGE_KEY.chmod(0o400)
        socket_dir = self.munge_dir
        shutil.chown(socket_dir, "munge", "munge")
        self.socket = socket_dir / "munge.socket"
        # our own socket, so a munged someone else runs is left alone; slurm finds it via slurm.conf
        self._start(
            "munged",
            ["munged", "-F", "--force", f"--socket={self.socket}",
             f"--pid-file={socket_dir / 'munged.pid'}", f"--seed-file={socket_dir / 'munged.seed'}",
             f"--log-file={socket_dir / 'munged.log'}"],
            user="munge",
        )
        self._wait(lambda: self.socket.exists(), "munged socket")

    def _write_conf(self) -> None:
        if SLURM_CONF.exists():
            self._saved_conf = SLURM_CONF.read_text()
        SLURM_CONF.parent.mkdir(parents=True, exist_ok=True)
        conf = slurm_conf(self.host, os.cpu_count() or 1, total_memory_mb() - 1024, self.state_dir)
        SLURM_CONF.write_text(conf + f"AuthInfo=socket={self.socket}\n")

    def _wait_idle(self) -> None:
        def idle() -> bool:
            out = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True).stdout
            return "idle" in out

        self._wait(idle, "an idle SLURM node")

    def _wait(self, ready, what: str, timeout: float = 60) -> None:
        deadline = time.time() + timeout
        while time.time() < deadline:
            for proc in self.procs:
                if proc.poll() is not None:
                    raise RuntimeError(f"{proc.args[0]} exited with {proc.returncode}; see {self.state_dir}")
            if ready():
                return
            time.sleep(0.5)
        raise TimeoutError(f"no {what} after {timeout} s; logs in {self.state_dir}")


def daemons_running() -> list[str]:
    """Names of SLURM daemons already running here (another cluster would clash with ours)."""
    out = subprocess.run(["ps", "-eo", "comm"], capture_output=True, text=True).stdout.split()
    return sorted({name for name in out if name in ("slurmctld", "slurmd")})
