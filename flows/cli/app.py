"""The ``flowrl`` command line.

Every command exits with one of :class:`ExitCode`, so a CI job can tell "the training failed"
from "the command was wrong" from "the server was down".  Every user error (a bad skill file, a
bad store URL, ...) is one line on stderr; tracebacks are for bugs only (set ``FLOWRL_DEBUG=1``
to see them anyway).  Prefect is imported only by the commands that run flows, so ``flowrl plan``
stays instant.
"""

from __future__ import annotations

import os
import sys
from enum import IntEnum

import typer
from rich.console import Console

from flowrl_core.errors import FlowRLError, UnreachableError


class ExitCode(IntEnum):
    """What a ``flowrl`` exit status means (the README's table)."""

    OK = 0  # the work ran and succeeded
    FAILED = 1  # the work ran and failed: a skill did not train, a triggered run ended Failed/Crashed
    BAD_INPUT = 2  # refused before anything ran: bad file, setting, store, name or usage
    UNREACHABLE = 3  # infrastructure could not be reached: no Prefect API, store unreachable
    INTERNAL = 4  # a bug in flowrl (the message says how to get the traceback)
    INTERRUPTED = 130  # Ctrl-C

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  context_settings={"help_option_names": ["-h", "--help"]},  # inherited by every command
                  help="Train a library of RL skills as a Prefect DAG.")


def _console(stderr: bool = False) -> Console:
    """A terminal gets rich's usual fit-to-width output; a pipe or file gets no width limit, so
    ``flowrl status | cat`` or a CI log never cuts a skill name (COLUMNS still wins when set)."""
    stream = sys.stderr if stderr else sys.stdout
    wide = not stream.isatty() and not os.environ.get("COLUMNS")
    return Console(stderr=stderr, width=UNLIMITED if wide else None)


UNLIMITED = 100_000  # the width of a console that writes to a pipe or file


def fitted_to_terminal(console: Console) -> bool:
    """Whether ``console`` fits its output to a terminal's width (a pipe or file is never cut)."""
    return console.width < UNLIMITED


out = _console()
err = _console(stderr=True)


def _version(value: bool) -> None:
    if not value:
        return
    from importlib.metadata import PackageNotFoundError, version

    def v(name: str) -> str:
        try:
            return version(name)
        except PackageNotFoundError:
            return "not installed"

    print(f"flowrl {v('flowrl')} (prefect {v('prefect')}, jax {v('jax')}, python {sys.version.split()[0]})")
    raise typer.Exit(ExitCode.OK)


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", "-V", callback=_version, is_eager=True,
                                 help="Print flowrl's version (and Prefect's, JAX's) and exit."),
) -> None:
    """Train a library of RL skills as a Prefect DAG."""


def print_json(document: object) -> None:
    """Machine-readable output: plain JSON on stdout, nothing else (no colour, no wrapping)."""
    import json

    sys.stdout.write(json.dumps(document, indent=2, ensure_ascii=False) + "\n")
    sys.stdout.flush()


def fail(message: str, code: int = ExitCode.BAD_INPUT) -> None:
    err.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def _parse_settings(items: list[str], flag: str = "--set") -> dict:
    """``--set lr=3e-4 --set num_envs=64`` → typed dict (JSON values, else strings)."""
    import json

    from flowrl_core.errors import short

    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            fail(f"{flag} expects KEY=VALUE, got {short(item)}")
        try:
            out[key.strip()] = json.loads(value)
        except ValueError:
            out[key.strip()] = value
    return out


def main() -> None:
    """Console-script entry point: every outcome becomes one :class:`ExitCode`."""
    # Prefect's ephemeral API gives its first start (migrations on a fresh machine) 20 s, which a
    # loaded laptop or CI box can miss; telemetry only adds "database is locked" noise locally.
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "90")
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    # A blank PREFECT_API_URL (``PREFECT_API_URL=`` in a CI file) means "no server" to flowrl, but
    # Prefect's events client then fails on every event and prints a traceback for each.
    if "PREFECT_API_URL" in os.environ and not os.environ["PREFECT_API_URL"].strip():
        del os.environ["PREFECT_API_URL"]
    import signal

    signal.signal(signal.SIGINT, _interrupt)
    signal.signal(signal.SIGTERM, _interrupt)
    code = run_app()
    if code == ExitCode.INTERRUPTED or _interrupted:
        code = ExitCode.INTERRUPTED
        stop_after_interrupt()
        trained = "tasks.launch" in sys.modules
        err.print("interrupted: trainings stopped; rerun the same command to resume them" if trained else "interrupted")
        sys.stdout.flush()
        sys.stderr.flush()
    sys.exit(code)  # Prefect's exit hooks stop its ephemeral server (bounded by _out_of_time)


_interrupted = False  # set by the signal handler: a flag, nothing that takes a lock
# From the first Ctrl-C/SIGTERM to the exit: stopping the trainers (up to 10 s) and Prefect's exit
# hooks, which drain logs and events to an API that may be going away (a terminal's Ctrl-C reaches
# the ephemeral server too) and otherwise retry for minutes.
INTERRUPT_GRACE_S = 30


def _interrupt(signum: int, frame: object) -> None:
    """Only flag and unwind here: the interrupted frame may hold a lock (a store write, a log
    handler) that cleanup would wait on forever, so the trainers are stopped after it unwinds."""
    import signal

    global _interrupted
    launch = sys.modules.get("tasks.launch")
    if launch is not None:
        launch.STOPPING.set()  # no new trainer starts and none is retried from now on
    if _interrupted:  # a second Ctrl-C: stop waiting
        _out_of_time(signum, frame)
    _interrupted = True
    signal.signal(signal.SIGALRM, _out_of_time)
    signal.alarm(INTERRUPT_GRACE_S)
    raise KeyboardInterrupt  # SIGTERM (a CI runner cancelling the job) stops like Ctrl-C


def _out_of_time(signum: int, frame: object) -> None:
    """The interrupt's grace is over (or the user pressed Ctrl-C twice): kill what this process
    started, Prefect's server included, and leave with 130 without waiting on anything."""
    try:
        import psutil

        for child in psutil.Process().children(recursive=True):
            try:
                child.kill()
            except psutil.Error:
                pass
    finally:
        os._exit(ExitCode.INTERRUPTED)


def stop_after_interrupt() -> None:
    """Silence what is left of the flow (its threads fail to report to an API that is going away:
    not what went wrong), stop the trainers and let their runs' leases go, so the next command
    resumes them at once.  Idempotent: ``flowrl run`` calls it before it waits for its flow."""
    import logging
    import threading

    logging.raiseExceptions = False
    logging.disable(logging.CRITICAL)
    threading.excepthook = lambda args: None
    _stop_children()


def _stop_children() -> None:
    """Stop the trainers this command started and let their runs' leases go, so the next command
    resumes them at once (a Ctrl-C in a terminal reaches them anyway; a signal to this process
    alone, as a CI runner sends, would leave them training unwatched)."""
    import psutil

    from flowrl_core.store import leases

    def ours(proc: psutil.Process) -> bool:  # trainers, estimates, analyses; not Prefect's own server
        try:
            return any(arg.startswith("flowrl_core.") for arg in proc.cmdline())
        except psutil.Error:
            return False

    try:
        children = [p for p in psutil.Process().children(recursive=True) if ours(p)]
    except psutil.Error:
        children = []
    for child in children:
        try:
            child.terminate()
        except psutil.Error:
            pass
    psutil.wait_procs(children, timeout=10)
    for child in children:
        try:
            child.kill()
        except psutil.Error:
            pass
    leases.release_all()


def run_app(args: list[str] | None = None) -> int:
    """Run the app and map whatever ends it to an :class:`ExitCode` (no sys.exit: testable)."""
    try:
        # standalone_mode=False makes click *return* the code of a typer.Exit instead of exiting
        # with it; dropping that return value is how every failing command used to exit 0.
        code = app(args=args, standalone_mode=False)
        return int(code) if isinstance(code, int) else ExitCode.OK
    except UnreachableError as exc:
        if os.environ.get("FLOWRL_DEBUG"):
            raise
        err.print(f"[bold red]unreachable:[/] {exc}", highlight=False, soft_wrap=True)
        return ExitCode.UNREACHABLE
    except FlowRLError as exc:
        if os.environ.get("FLOWRL_DEBUG"):
            raise
        err.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
        return ExitCode.BAD_INPUT
    except typer.Exit as exc:
        return int(exc.exit_code)
    except (typer.Abort, KeyboardInterrupt):  # typer turns most into Exit(130) already; main() cleans up
        return ExitCode.INTERRUPTED
    except Exception as exc:  # usage errors carry show()/exit_code (click or typer's fork of it)
        if hasattr(exc, "show") and hasattr(exc, "exit_code"):
            exc.show()
            return ExitCode.BAD_INPUT if int(exc.exit_code) else ExitCode.OK
        if os.environ.get("FLOWRL_DEBUG"):
            raise
        err.print(f"[bold red]internal error:[/] {type(exc).__name__}: {str(exc)[:300]} "
                  "(set FLOWRL_DEBUG=1 for the traceback)", highlight=False, soft_wrap=True)
        return ExitCode.INTERNAL
