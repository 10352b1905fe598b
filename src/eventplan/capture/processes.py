"""Capture processes: request bodies read into log records beside the server.

In the server's own process every request's Python (decompress, decode, normalize,
the log's JSON lines) and the writer's (judge, typed columns) take turns under one
interpreter lock: under load the lock was held 84% of the time while the machine's
second core sat mostly idle. A capture process reads and judges a request's body into
its log record with `Ingestor.ingest`, the function the server runs itself when it
has no capture process, and the server only appends the record to its log and
answers. An acknowledgement still means the events are durable in the server's log.

The server talks to each process over a socket pair: a frame is a 4-byte length,
then msgpack. The first frame gives the projects: their tokens (never on the
command line, where `ps` shows them), plans (pickled) and `hash` salts. Then each
request frame is answered by one with the same tag. A process that dies fails the
requests it had (503: the clients retry) and is started again; one that dies before
answering anything is not, and the server reads requests itself from then on.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import itertools
import logging
import pickle
import signal
import socket
import struct
import subprocess
import sys
import time
from typing import Any, Final

import msgspec

from eventplan.capture.errors import (
    BadRequest,
    CaptureError,
    PayloadTooLarge,
    Unauthorized,
    Unavailable,
)
from eventplan.capture.ingest import CaptureRequest, Envelope, Ingested, Ingestor
from eventplan.capture.judge import Pipeline
from eventplan.capture.v1 import V1Headers
from eventplan.plan.model import Plan

log = logging.getLogger("eventplan.capture")

FRAME: Final = struct.Struct("<I")
# What a capture process may refuse a request with; any other failure is a bug.
REFUSALS: Final = {cls.__name__: cls for cls in (BadRequest, Unauthorized, PayloadTooLarge)}
STARTUP_SECONDS: Final = 30.0  # a process that dies this soon, having answered nothing, is broken

# Token → project name, and project name → (plan, `hash` salt).
Projects = tuple[dict[str, str], dict[str, tuple[Plan, bytes]]]

_encode = msgspec.msgpack.Encoder().encode
_decode = msgspec.msgpack.Decoder().decode


class CaptureProcess:
    """One capture process and the requests it has not answered yet."""

    def __init__(self, projects: Projects) -> None:
        self.projects = projects
        self.waiting: dict[int, asyncio.Future[list[Any]]] = {}
        self.answered = 0
        self._ours, theirs = socket.socketpair()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "eventplan.capture.processes", str(theirs.fileno())],
            pass_fds=[theirs.fileno()],
        )
        theirs.close()
        self.started = time.monotonic()
        self._writer: asyncio.StreamWriter | None = None
        self._reading: asyncio.Task[None] | None = None

    async def open(self) -> None:
        reader, self._writer = await asyncio.open_connection(sock=self._ours)
        tokens, plans = self.projects
        self._send(
            _encode(
                [tokens, [[name, pickle.dumps(plan), salt] for name, (plan, salt) in plans.items()]]
            )
        )
        self._reading = asyncio.create_task(self._read_answers(reader))

    def ask(self, tag: int, request: list[Any]) -> asyncio.Future[list[Any]]:
        future = asyncio.get_running_loop().create_future()
        self.waiting[tag] = future
        self._send(_encode([tag, *request]))
        return future

    def _send(self, frame: bytes) -> None:
        assert self._writer is not None
        self._writer.write(FRAME.pack(len(frame)))
        self._writer.write(frame)

    async def _read_answers(self, reader: asyncio.StreamReader) -> None:
        with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError):
            while True:
                (size,) = FRAME.unpack(await reader.readexactly(FRAME.size))
                answer = _decode(await reader.readexactly(size))
                self.answered += 1
                future = self.waiting.pop(answer[0], None)
                if future is not None and not future.done():
                    future.set_result(answer[1:])
        self._fail_waiting()

    def _fail_waiting(self) -> None:
        for future in self.waiting.values():
            if not future.done():
                future.set_exception(
                    Unavailable("a capture process stopped while reading this request; retry", 1)
                )
        self.waiting.clear()

    @property
    def alive(self) -> bool:
        return self._reading is not None and not self._reading.done()

    async def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
        if self._reading is not None:
            await asyncio.gather(self._reading, return_exceptions=True)
        self._fail_waiting()
        try:
            await asyncio.to_thread(self.process.wait, 5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            await asyncio.to_thread(self.process.wait)


class CaptureProcesses:
    """`count` capture processes, each request given to the one with the fewest waiting."""

    def __init__(self, projects: Projects, count: int) -> None:
        self.projects, self.count = projects, count
        self.processes: list[CaptureProcess] = []
        self._tags = itertools.count()
        self.broken = False  # a process died before answering anything: read in-process

    async def start(self) -> None:
        self.processes = [await self._started() for _ in range(self.count)]

    async def _started(self) -> CaptureProcess:
        process = CaptureProcess(self.projects)
        await process.open()
        return process

    async def ingest(
        self,
        body: bytes,
        request: CaptureRequest,
        envelope: Envelope,
        *,
        limit: int,
        event_limit: int | None = None,
    ) -> Ingested:
        """`Ingestor.ingest` of the request, in a capture process."""
        process = await self._available()
        question = [
            body,
            request.content_type,
            request.content_encoding,
            request.query,
            envelope.ip_hash,
            envelope.user_agent,
            envelope.received_us,
            limit,
            event_limit,
            dataclasses.astuple(request.v1) if request.v1 is not None else None,
        ]
        answer = await process.ask(next(self._tags), question)
        if answer[0] is None:
            _, refused, message = answer
            refusal = REFUSALS.get(refused)
            if refusal is None:
                raise RuntimeError(f"a capture process failed: {message}")
            raise refusal(message)
        project, count, record, verdicts, sent_uuids, dropped = answer
        return Ingested(project, record, count, verdicts, None, sent_uuids, dropped)

    async def _available(self) -> CaptureProcess:
        """The live process with the fewest requests waiting; a dead one is replaced."""
        for index, process in enumerate(self.processes):
            if process.alive:
                continue
            await process.close()
            if process.answered == 0 and time.monotonic() - process.started < STARTUP_SECONDS:
                self.broken = True
                log.error("a capture process could not start; reading requests in the server")
                raise Unavailable("capture is restarting; retry", 1)
            log.warning(
                "a capture process stopped (exit %s); starting another", process.process.returncode
            )
            self.processes[index] = await self._started()
        return min(self.processes, key=lambda process: len(process.waiting))

    async def stop(self) -> None:
        await asyncio.gather(*(process.close() for process in self.processes))
        self.processes = []


def serve(connection: socket.socket) -> None:
    """A capture process's loop: read request frames, answer each, until the server
    closes the socket."""
    stream = connection.makefile("rwb", buffering=1 << 20)

    def read_frame() -> Any:
        head = stream.read(FRAME.size)
        if len(head) < FRAME.size:
            return None
        (size,) = FRAME.unpack(head)
        return _decode(stream.read(size))

    def write_frame(answer: list[Any]) -> None:
        frame = _encode(answer)
        stream.write(FRAME.pack(len(frame)))
        stream.write(frame)
        stream.flush()

    projects = read_frame()
    if projects is None:
        return
    tokens, plans = projects
    ingestor = Ingestor(
        tokens, {name: Pipeline(pickle.loads(plan), salt) for name, plan, salt in plans}
    )
    while (question := read_frame()) is not None:
        tag, body, content_type, content_encoding, query, *envelope, limit, event_limit, v1 = (
            question
        )
        headers = V1Headers(*v1) if v1 is not None else None
        request = CaptureRequest(content_type, content_encoding, query, None, None, v1=headers)
        try:
            ingested = ingestor.ingest(
                body, request, Envelope(*envelope), limit=limit, event_limit=event_limit
            )
        except CaptureError as exc:
            write_frame([tag, None, type(exc).__name__, exc.message])
        except Exception as exc:  # a bug: the server answers 500, the process goes on
            log.exception("reading a capture request failed")
            write_frame([tag, None, "", f"{type(exc).__name__}: {exc}"])
        else:
            write_frame(
                [
                    tag,
                    ingested.project,
                    ingested.count,
                    ingested.record,
                    ingested.verdicts,
                    ingested.sent_uuids,
                    ingested.dropped,
                ]
            )


if __name__ == "__main__":
    # Ctrl-C reaches the whole process group; the server stops its processes itself.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    logging.basicConfig(level=logging.WARNING)
    serve(socket.socket(fileno=int(sys.argv[1])))
