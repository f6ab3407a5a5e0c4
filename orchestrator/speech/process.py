"""A grammar decoder in its own process: pocketsphinx holds Python's GIL while it decodes.

Measured in one process: while a worker thread decoded an utterance, the event loop stood still for up to
600 ms at a time (the lattice best path in `hyp()`, the language model's last pass), and with five callers
on two cores every call's audio, timers and orders lookups waited behind the decoders: turn latency reached
seconds and 2-second lookups timed out. A `ProcessDecoder` has the same synchronous face as
`GrammarDecoder` (`begin`, `feed`, `finish`, used by one thread at a time, lent by a `DecoderPool`), but
the decoding runs in a child process. `feed` only writes to a pipe (the child decodes while the caller
talks), `finish` waits for the result in a worker thread, which holds no GIL while it waits.

Children are forked from a fork server that has already imported the recogniser, so a new decoder costs
its model loading only; a decoder freed by the pool stops its child.
"""

from __future__ import annotations

import multiprocessing
import weakref
from collections.abc import Mapping
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import Final

from orchestrator.errors import OrchestratorError
from orchestrator.speech.asr import Decoded, GrammarDecoder
from orchestrator.speech.grammar import GrammarSpec

__all__ = ["DecoderProcessError", "ProcessDecoder", "start_decoder_processes"]

# A decoder answers an utterance in well under a second; this long means the child is stuck or gone.
_ANSWER_TIMEOUT_S: Final = 30.0
_START_TIMEOUT_S: Final = 60.0  # the first child also waits for the fork server to import pocketsphinx

_CONTEXT = multiprocessing.get_context("forkserver")
_CONTEXT.set_forkserver_preload(["orchestrator.speech.asr"])


def start_decoder_processes() -> None:
    """Start the fork server now (it imports pocketsphinx and the recogniser, a second or two), so that
    the first callers' decoders do not wait for it; harmless to call again."""
    from multiprocessing import forkserver

    forkserver.ensure_running()


class DecoderProcessError(OrchestratorError):
    """The decoder's child process failed, stopped or did not answer in time."""


class ProcessDecoder:
    """A `GrammarDecoder(spec, second_look=...)` living in a child process; same methods, no GIL held.

        pool = DecoderPool(lambda: ProcessDecoder(config.grammars()))
    """

    def __init__(
        self, spec: GrammarSpec | Mapping[str, GrammarSpec] | None, *, second_look: bool = True
    ) -> None:
        parent, child = _CONTEXT.Pipe()
        process = _CONTEXT.Process(
            target=_serve, args=(child, spec, second_look), name="asr-decoder", daemon=True
        )
        process.start()
        child.close()
        self._conn = parent
        self._process = process
        self._stopper = weakref.finalize(self, _stop, process, parent)
        self._answer(_START_TIMEOUT_S)  # "ready", or the child's error (a word missing from the dictionary)

    def begin(self, search: str) -> None:
        self._send(("begin", search))

    def feed(self, pcm: bytes) -> None:
        self._send(("feed", pcm))

    def finish(self) -> Decoded:
        self._send(("finish", None))
        decoded = self._answer(_ANSWER_TIMEOUT_S)
        assert isinstance(decoded, Decoded)
        return decoded

    def close(self) -> None:
        """Stop the child (also done when the decoder is garbage-collected)."""
        self._stopper()

    def _send(self, message: tuple[str, object]) -> None:
        try:
            self._conn.send(message)
        except (OSError, ValueError) as exc:
            raise DecoderProcessError(f"the speech decoder process is gone: {exc!r}") from exc

    def _answer(self, timeout_s: float) -> object:
        try:
            if not self._conn.poll(timeout_s):
                # Killed, not asked to stop: a child still loading its models reads no "stop", and the pool
                # starts another in its slot (20 calls at once on a loaded box left 19 loading, 3 GB).
                self._process.kill()
                self.close()
                raise DecoderProcessError(f"the speech decoder process did not answer in {timeout_s:g} s")
            kind, value = self._conn.recv()
        except (EOFError, OSError) as exc:
            raise DecoderProcessError(f"the speech decoder process stopped: {exc!r}") from exc
        if kind == "error":
            self.close()
            raise value if isinstance(value, Exception) else DecoderProcessError(str(value))
        return value


def _serve(conn: Connection, spec: GrammarSpec | Mapping[str, GrammarSpec] | None, second_look: bool) -> None:
    """The child: build the decoder, then decode what the pipe brings until it closes."""
    try:
        decoder = GrammarDecoder(spec, second_look=second_look)
    except Exception as exc:  # reported to the parent, which raises it where the decoder was wanted
        conn.send(("error", exc))
        return
    conn.send(("ready", None))
    failed: Exception | None = None
    while True:
        try:
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


def _stop(process: BaseProcess, conn: Connection) -> None:
    """Tell the child to stop and let go of it; never waits (this may run on the event loop's thread).

    The child also stops when the pipe closes; multiprocessing reaps it when the next one starts."""
    try:
        conn.send(("stop", None))
    except (OSError, ValueError):
        process.kill()
    conn.close()
