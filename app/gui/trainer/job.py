"""A fine-tuning job: ``lungsam train`` subprocesses run one after the other with QProcess.

The GUI never trains in-process: each step is a child process that prints JSON-lines events
(:mod:`trainer.training.events`) on stdout, read here without blocking the event loop (QProcess
signals), so annotation continues during training. stderr lines go to the log.

Cancel sends SIGTERM and, if the child is still there after :attr:`TrainJob.KILL_AFTER_MS`,
SIGKILL; the job then reports ``cancelled`` and starts no further step. A step fails when its
process exits non-zero or is killed; the reason is the ``failed`` event's when there is one,
else the tail of stderr or the way the process ended (a SIGKILL from the kernel's OOM killer
looks like "killed by signal 9").
"""

from __future__ import annotations

import json
import re
import shutil
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, QProcess, QTimer, Signal

from engine.errors import LungSamError

PROGRESS_BAR = re.compile(r"^\s*\d+%\|")
"""tqdm lines on stderr (the CLI's own bar): the pane shows the same progress from events."""


@dataclass
class JobStep:
    """One subprocess. ``args`` is called when the step starts (it may read what earlier steps
    wrote, e.g. Stage 1's summary) and returns the program arguments; raising
    :class:`LungSamError` fails the job with that message."""

    name: str
    args: Callable[[], list[str]]
    out: Path | None = None


@dataclass
class JobResult:
    ok: bool
    cancelled: bool = False
    reason: str = ""
    step: str = ""
    events: list[dict[str, Any]] = field(default_factory=list)  # the last step's events


class TrainJob(QObject):
    """Runs :class:`JobStep`s in sequence; emits every event, log line and the final result."""

    KILL_AFTER_MS = 3000
    event = Signal(dict)  # a parsed JSON event (with "step_name" added)
    log = Signal(str)
    step_started = Signal(str)
    finished = Signal(object)  # JobResult

    def __init__(self, steps: list[JobStep], program: list[str], env: dict[str, str] | None = None,
                 nice: int = 5, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.steps = list(steps)
        self.program = list(program)  # e.g. [python, -m, app.cli]
        self.env = env
        self.nice = nice
        self.process: QProcess | None = None
        self.index = -1
        self.cancelled = False
        self.done = False
        self.result: JobResult | None = None
        self._stdout = b""
        self._stderr_tail: deque[str] = deque(maxlen=20)
        self._events: list[dict[str, Any]] = []
        self._kill_timer = QTimer(self, singleShot=True, interval=self.KILL_AFTER_MS)
        self._kill_timer.timeout.connect(self._kill)

    @property
    def running(self) -> bool:
        return self.index >= 0 and not self.done

    @property
    def current_step(self) -> str:
        return self.steps[self.index].name if 0 <= self.index < len(self.steps) else ""

    def pid(self) -> int | None:
        if self.process is None or self.process.state() == QProcess.ProcessState.NotRunning:
            return None
        return int(self.process.processId())

    # -- control ---------------------------------------------------------------------------
    def start(self) -> None:
        if self.index >= 0:
            raise RuntimeError("a TrainJob runs once")
        self._next()

    def cancel(self) -> None:
        """SIGTERM now, SIGKILL after KILL_AFTER_MS; ``finished`` reports cancelled."""
        if self.done:
            return
        self.cancelled = True
        if self.process is not None and self.process.state() != QProcess.ProcessState.NotRunning:
            self.log.emit("cancelling: SIGTERM sent to the trainer")
            self.process.terminate()
            self._kill_timer.start()
        else:
            self._finish(JobResult(False, True, "cancelled", self.current_step))

    def stop(self, wait_ms: int = 5000) -> None:
        """Cancel and wait for the child (window closing): nothing outlives the GUI."""
        if self.done or self.process is None:
            self.cancel()
            return
        self.cancel()
        if not self.process.waitForFinished(self.KILL_AFTER_MS):
            self.process.kill()
            self.process.waitForFinished(max(0, wait_ms - self.KILL_AFTER_MS))

    # -- steps -----------------------------------------------------------------------------
    def _next(self) -> None:
        self.index += 1
        if self.index >= len(self.steps):
            self._finish(JobResult(True, False, "", self.steps[-1].name if self.steps else "", self._events))
            return
        step = self.steps[self.index]
        try:
            args = step.args()
        except LungSamError as exc:
            self._finish(JobResult(False, False, str(exc), step.name))
            return
        self._events = []
        self._stdout = b""
        self._stderr_tail.clear()
        process = QProcess(self)
        if self.env is not None:
            from PySide6.QtCore import QProcessEnvironment

            env = QProcessEnvironment()
            for key, value in self.env.items():
                env.insert(key, value)
            process.setProcessEnvironment(env)
        program, arguments = self.program[0], self.program[1:] + args
        nice = shutil.which("nice") if self.nice else None
        if nice:  # nice execs the trainer: the pid we signal is the trainer's own
            program, arguments = nice, ["-n", str(self.nice), program, *arguments]
        process.readyReadStandardOutput.connect(self._read_stdout)
        process.readyReadStandardError.connect(self._read_stderr)
        process.finished.connect(self._process_finished)
        process.errorOccurred.connect(self._process_error)
        self.process = process
        self.step_started.emit(step.name)
        self.log.emit(f"$ {' '.join(self.program[1:] + args)}")
        process.start(program, arguments)

    def _read_stdout(self) -> None:
        if self.process is None:
            return
        self._stdout += bytes(self.process.readAllStandardOutput())
        *lines, self._stdout = self._stdout.split(b"\n")
        for raw in lines:
            self._line(raw.decode("utf-8", "replace").strip())

    def _line(self, line: str) -> None:
        if not line:
            return
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            record = None
        if not isinstance(record, dict) or "event" not in record:
            self.log.emit(line)
            return
        record["step_name"] = self.current_step
        self._events.append(record)
        self.event.emit(record)

    def _read_stderr(self) -> None:
        if self.process is None:
            return
        text = bytes(self.process.readAllStandardError()).decode("utf-8", "replace")
        for line in text.replace("\r", "\n").splitlines():
            if line.strip() and not PROGRESS_BAR.match(line):
                self._stderr_tail.append(line.rstrip())
                self.log.emit(line.rstrip())

    def _process_error(self, error: QProcess.ProcessError) -> None:
        if error == QProcess.ProcessError.FailedToStart:
            self._finish(JobResult(False, self.cancelled, f"the trainer could not be started ({self.program[0]})",
                                   self.current_step, self._events))

    def _process_finished(self, code: int, status: QProcess.ExitStatus) -> None:
        self._kill_timer.stop()
        self._read_stdout()
        if self._stdout.strip():
            self._line(self._stdout.decode("utf-8", "replace").strip())
            self._stdout = b""
        if self.done:
            return
        if self.cancelled:
            self._finish(JobResult(False, True, "cancelled", self.current_step, self._events))
            return
        crashed = status == QProcess.ExitStatus.CrashExit
        finished = any(e["event"] == "done" for e in self._events)
        if code == 0 and not crashed and finished:
            self._next()
            return
        self._finish(JobResult(False, False, self.failure_reason(code, crashed), self.current_step, self._events))

    def failure_reason(self, code: int, crashed: bool) -> str:
        """The trainer's own words when it said why; else stderr's last line; else how it ended."""
        failed = [e for e in self._events if e["event"] == "failed"]
        if failed and failed[-1].get("reason"):
            return str(failed[-1]["reason"])
        if crashed:
            return "the training process was killed (signal; out of memory?)"
        errors = [line for line in self._stderr_tail if "Error" in line or "error" in line]
        if errors:
            return errors[-1]
        if self._stderr_tail:
            return self._stderr_tail[-1]
        return f"the training process ended with exit code {code}"

    def _kill(self) -> None:
        if self.process is not None and self.process.state() != QProcess.ProcessState.NotRunning:
            self.log.emit("the trainer did not stop in time: SIGKILL")
            self.process.kill()

    def _finish(self, result: JobResult) -> None:
        if self.done:
            return
        self.done = True
        self.result = result
        self.finished.emit(result)
