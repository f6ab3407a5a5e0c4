"""Grammar decoders in their own processes: pocketsphinx holds Python's GIL while it decodes.

Measured in one process: while a worker thread decoded an utterance, the event loop stood still for up to
600 ms at a time (the lattice best path in `hyp()`, the language model's last pass), and with five callers
on two cores every call's audio, timers and orders lookups waited behind the decoders: turn latency reached
seconds and 2-second lookups timed out. A `ProcessDecoder` has the same synchronous face as
`GrammarDecoder` (`begin`, `feed`, `finish`, used by one thread at a time, lent by a `DecoderPool`), but
the decoding runs in a child process. `feed` only writes to a pipe (the child decodes while the caller
talks), `finish` waits for the result in a worker thread, which holds no GIL while it waits.

A decoder is built once per grammar, in a template process (`DecoderTemplate`), and each `ProcessDecoder`
is a fork of it: ready in milliseconds, with the models' pages shared copy-on-write. Building one from
scratch took 1.6-1.9 s on an idle machine and 4-6 s on a busy one (each loads the acoustic model, the
dictionary, the general language model and compiles every grammar), and each held ~150 MB of its own.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import signal
import threading
import weakref
from collections.abc import Callable, Mapping
from multiprocessing import reduction
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import Final

from orchestrator.errors import OrchestratorError
from orchestrator.speech.asr import Decoded, GrammarDecoder
from orchestrator.speech.grammar import GrammarSpec

__all__ = ["DecoderProcessError", "DecoderTemplate", "ProcessDecoder", "start_decoder_processes"]

# A decoder answers an utterance in well under a second; this long means the child is stuck or gone.
_ANSWER_TIMEOUT_S: Final = 30.0
_START_TIMEOUT_S: Final = 60.0  # the template also waits for the fork server to import pocketsphinx
_FORK_TIMEOUT_S: Final = 10.0
_CATCH_UP_BYTES: Final = 50 * 32  # 50 ms of 16 kHz audio: a new message waits at most one such piece

_CONTEXT = multiprocessing.get_context("forkserver")
_CONTEXT.set_forkserver_preload(["orchestrator.speech.asr"])


def start_decoder_processes() -> None:
    """Start the fork server now (it imports pocketsphinx and the recogniser, a second or two), so that
    the first callers' decoders do not wait for it; harmless to call again."""
    from multiprocessing import forkserver

    forkserver.ensure_running()


class DecoderProcessError(OrchestratorError):
    """A decoder's process failed, stopped or did not answer in time."""


class DecoderTemplate:
    """One built `GrammarDecoder(spec, second_look=...)` in a process of its own, forked per decoder.

        template = DecoderTemplate(config.grammars())
        pool = DecoderPool(template.fork)

    The template process starts with the first `fork()` (a grammar error is raised there) and is started
    again if it has died. Thread-safe: a pool builds decoders from worker threads.
    """

    def __init__(
        self, spec: GrammarSpec | Mapping[str, GrammarSpec] | None, *, second_look: bool = True
    ) -> None:
        self._spec = spec
        self._second_look = second_look
        self._lock = threading.Lock()
        self._conn: Connection | None = None
        self._process: BaseProcess | None = None
        self._stopper: Callable[[], object] | None = None

    def fork(self) -> ProcessDecoder:
        """A new decoder process, a copy of the template's decoder (which never decodes itself)."""
        with self._lock:
            was_running = self._alive()
            try:
                return self._fork()
            except DecoderProcessError:
                if not was_running:
                    raise  # a template that fails as it starts would fail again
            # The template died since it last forked (killed, out of memory): once more with a new one
            # (the failed fork has closed the old one).
            return self._fork()

    def _fork(self) -> ProcessDecoder:
        conn, process = self._running()
        ours, theirs = _CONTEXT.Pipe()
        try:
            conn.send(("fork", None))
            reduction.send_handle(conn, theirs.fileno(), process.pid)
            pid = _answer(conn, _FORK_TIMEOUT_S, what="the speech decoder template")
        except (DecoderProcessError, OSError) as exc:
            ours.close()
            self.close()
            if isinstance(exc, DecoderProcessError):
                raise
            raise DecoderProcessError(f"the speech decoder template is gone: {exc!r}") from exc
        finally:
            theirs.close()
        assert isinstance(pid, int)
        return ProcessDecoder(ours, pid)

    def close(self) -> None:
        """Stop the template process; decoders forked from it go on until they are closed."""
        if self._stopper is not None:
            self._stopper()
        self._conn = self._process = self._stopper = None

    def _alive(self) -> bool:
        return self._conn is not None and self._process is not None and self._process.is_alive()

    def _running(self) -> tuple[Connection, BaseProcess]:
        if self._alive():
            assert self._conn is not None and self._process is not None
            return self._conn, self._process
        self.close()
        parent, child = _CONTEXT.Pipe()
        process = _CONTEXT.Process(
            target=_template_main,
            args=(child, self._spec, self._second_look),
            name="asr-decoder-template",
            daemon=True,
        )
        process.start()
        child.close()
        stopper = weakref.finalize(self, _stop_template, process, parent)
        try:
            # "ready", or the child's error (a word missing from the dictionary)
            _answer(parent, _START_TIMEOUT_S, what="the speech decoder template")
        except BaseException:
            # Killed, not asked to stop: one still loading its models reads no "stop", and would hold its
            # memory while the next fork starts another (20 calls at once on a loaded box: 3 GB).
            process.kill()
            stopper()
            raise
        self._conn, self._process, self._stopper = parent, process, stopper
        return parent, process


class ProcessDecoder:
    """One decoder process forked from a `DecoderTemplate`; the same methods as `GrammarDecoder`."""

    def __init__(self, conn: Connection, pid: int) -> None:
        self._conn = conn
        self.pid = pid
        self._stopper = weakref.finalize(self, _stop_decoder, pid, conn)

    def begin(self, search: str) -> None:
        self._send(("begin", search))

    def feed(self, pcm: bytes) -> None:
        self._send(("feed", pcm))

    def finish(self) -> Decoded:
        self._send(("finish", None))
        try:
            decoded = _answer(self._conn, _ANSWER_TIMEOUT_S, what="the speech decoder process")
        except DecoderProcessError:
            self.kill()  # one stuck mid-decode reads no "stop"
            raise
        assert isinstance(decoded, Decoded)
        return decoded

    def close(self) -> None:
        """Stop the process (also done when the decoder is garbage-collected)."""
        self._stopper()

    def kill(self) -> None:
        """Stop the process now, whatever it is doing."""
        with contextlib.suppress(OSError):  # already gone
            os.kill(self.pid, signal.SIGKILL)
        self._stopper()

    def _send(self, message: tuple[str, object]) -> None:
        try:
            self._conn.send(message)
        except (OSError, ValueError) as exc:
            raise DecoderProcessError(f"the speech decoder process is gone: {exc!r}") from exc


def _answer(conn: Connection, timeout_s: float, *, what: str) -> object:
    try:
        if not conn.poll(timeout_s):
            raise DecoderProcessError(f"{what} did not answer in {timeout_s:g} s")
        kind, value = conn.recv()
    except (EOFError, OSError) as exc:
        raise DecoderProcessError(f"{what} stopped: {exc!r}") from exc
    if kind == "error":
        raise value if isinstance(value, Exception) else DecoderProcessError(str(value))
    return value


def _template_main(
    conn: Connection, spec: GrammarSpec | Mapping[str, GrammarSpec] | None, second_look: bool
) -> None:
    """The template: build the decoder once, then fork a copy onto each pipe end the parent sends."""
    try:
        # The open decoder listens between messages (`_serve`): the grammar never waits behind it.
        decoder = GrammarDecoder(spec, second_look=second_look, open_when_idle=True)
    except Exception as exc:  # reported to the parent, which raises it where the decoder was wanted
        conn.send(("error", exc))
        return
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # the kernel reaps the decoders when they exit
    conn.send(("ready", None))
    while True:
        try:
            kind, _ = conn.recv()
            if kind != "fork":
                return
            fd = reduction.recv_handle(conn)
        except (EOFError, OSError):
            return
        pid = os.fork()
        if pid == 0:  # the decoder's own process: the template's socket is not its business
            status = 0
            try:
                conn.close()
                _serve(Connection(fd), decoder)
            except BaseException:
                status = 1
            finally:
                os._exit(status)  # never the template's clean-up (it is the template's, not ours)
        os.close(fd)
        conn.send(("done", pid))


def _serve(conn: Connection, decoder: GrammarDecoder) -> None:
    """A decoder process: decode what the pipe brings until it closes."""
    failed: Exception | None = None
    while True:
        try:
            # Nothing waiting: the second look's open decoder catches up, 50 ms of audio at a time.
            while failed is None and not conn.poll(0) and decoder.catch_up(_CATCH_UP_BYTES):
                pass
            kind, value = conn.recv()
        except (EOFError, OSError):
            return
        if kind == "stop":
            return
        try:
            if kind == "begin":
                failed = None
                decoder.begin(str(value))
            elif kind == "feed" and failed is None:
                assert isinstance(value, bytes)
                decoder.feed(value)
            elif kind == "finish":
                if failed is not None:
                    raise failed
                conn.send(("done", decoder.finish()))
        except OSError:  # the parent let go of this decoder (its call ended mid-utterance)
            return
        except Exception as exc:  # a decoding failure: answered at the utterance's finish
            if kind != "finish":
                failed = exc
                continue
            try:
                conn.send(("error", exc))
            except OSError:
                return


def _stop_decoder(pid: int, conn: Connection) -> None:
    """Tell a decoder process to stop and let go of it; never waits (this may run on the event loop's
    thread). It also stops when the pipe closes; the template's kernel setting reaps it."""
    try:
        conn.send(("stop", None))
    except (OSError, ValueError):
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:  # already gone
            pass
    conn.close()


def _stop_template(process: BaseProcess, conn: Connection) -> None:
    try:
        conn.send(("stop", None))
    except (OSError, ValueError):
        process.kill()
    conn.close()
