"""A real single-node SLURM cluster for tests (Debian's slurmctld, slurmd and munge; needs root).

`with LocalSlurm(state_dir) as cluster:` installs the packages if missing (SlurmUnavailable when it
cannot), writes a munge key and a
slurm.conf with two partitions (`cpu`, `gpu`, the names profiles/slurm uses) on this machine, starts
munged, slurmctld and slurmd in the foreground as children, waits until the node is idle (responding,
not `idle*`), and on exit stops exactly those processes by pid and removes every file it created (the
munge key, slurm.conf and their folders when they were not there before). Nothing outlives the `with`
block.
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


class SlurmUnavailable(RuntimeError):
    """SLURM's packages are missing and cannot be installed here; the message says why."""


def install_packages() -> None:
    if all(shutil.which(tool) for tool in ("slurmctld", "slurmd", "sbatch", "munged")):
        return
    if shutil.which("apt-get") is None:
        raise SlurmUnavailable(f"SLURM is not installed and there is no apt-get to install {' '.join(PACKAGES)}")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "-q", *PACKAGES]
    if subprocess.run(install, env=env, capture_output=True).returncode == 0:
        return
    update = subprocess.run(["apt-get", "update", "-q"], env=env, capture_output=True, text=True)
    retry = subprocess.run(install, env=env, capture_output=True, text=True)
    if retry.returncode != 0:
        last = (retry.stderr or update.stderr or retry.stdout).strip().splitlines()[-1:] or ["no output"]
        raise SlurmUnavailable(f"apt-get install {' '.join(PACKAGES)} failed: {last[0]}")


# sinfo's state suffixes: * not responding, ~ powered off, # powering up, ! / % powering down, $ reserved
# for maintenance, @ pending reboot, ^ rebooting, - planned. Any of them means "not ready for jobs yet".
def node_ready(sinfo_states: str) -> bool:
    """True when `sinfo -h -o %T` lists at least one node and every node is plainly `idle`."""
    states = [line.strip() for line in sinfo_states.splitlines() if line.strip()]
    return bool(states) and all(state == "idle" for state in states)


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
        self.created: list[Path] = []  # files and folders outside state_dir that we made, removed on exit
        self.munge_dir: Path | None = None

    def __enter__(self) -> LocalSlurm:
        # Debian's munge package writes a key when it is installed: a key that was not there before is ours
        key_existed = MUNGE_KEY.exists()
        install_packages()
        if not key_existed and MUNGE_KEY.exists():
            self.created.append(MUNGE_KEY)
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
        if self.munge_dir is not None:
            shutil.rmtree(self.munge_dir, ignore_errors=True)
        if self._saved_conf is not None:
            SLURM_CONF.write_text(self._saved_conf)
        for path in reversed(self.created):  # files before the folders that held them
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)
        self.created.clear()

    def _create_parent(self, path: Path) -> None:
        """mkdir -p path.parent, remembering every folder this made."""
        missing = [p for p in reversed(path.parents) if not p.exists()]
        for folder in missing:
            folder.mkdir()
            self.created.append(folder)

    def _start(self, name: str, cmd: list[str], **kwargs) -> None:
        log = open(self.state_dir / f"{name}.out", "ab")
        self.procs.append(subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, **kwargs))

    def _start_munge(self) -> None:
        self._write_munge_key()
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

    def _write_munge_key(self) -> None:
        """A fresh key when there is none (then removed on exit); an existing key is used and kept."""
        if not MUNGE_KEY.exists():
            self._create_parent(MUNGE_KEY)
            MUNGE_KEY.write_bytes(os.urandom(1024))
            self.created.append(MUNGE_KEY)

    def _write_conf(self) -> None:
        if SLURM_CONF.exists():
            self._saved_conf = SLURM_CONF.read_text()
        else:
            self._create_parent(SLURM_CONF)
            self.created.append(SLURM_CONF)
        conf = slurm_conf(self.host, os.cpu_count() or 1, total_memory_mb() - 1024, self.state_dir)
        SLURM_CONF.write_text(conf + f"AuthInfo=socket={self.socket}\n")

    def _wait_idle(self) -> None:
        def idle() -> bool:
            return node_ready(subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True).stdout)

        self._wait(idle, "an idle (responding) SLURM node")

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
