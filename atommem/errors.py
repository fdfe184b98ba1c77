"""Errors caused by the user's input (a config key, a data file, a flag). The CLI prints these as one
readable line and exits 2; anything else is a bug and keeps its traceback."""


class InputError(ValueError):
    """Bad input; the message names the file, field or flag."""


class WriteError(OSError):
    """An output or checkpoint could not be written (disk full, file size limit, quota, read-only); the
    message names the path and the cause. What was there before is left as it was. The CLI prints it as
    one line and exits with WRITE_FAILED."""


class Preempted(Exception):
    """Training stopped on SIGTERM or SIGUSR1 after its current step and wrote a checkpoint (the message
    names it); the CLI exits with PREEMPTED and a rerun resumes from that checkpoint."""


# exit statuses besides 0, 1 (a bug: traceback) and 2 (InputError); sysexits.h names
WRITE_FAILED = 74  # EX_IOERR: an output could not be written; rerun once there is room (it resumes)
PREEMPTED = 75  # EX_TEMPFAIL: stopped by a signal with a checkpoint written; requeue it (it resumes)
