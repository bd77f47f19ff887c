"""The local stack's console writes whole lines, however many threads print at once."""

from __future__ import annotations

import io
import json
import threading
import time

from gatehouse.dev.console import LineAtomicStream, whole_lines


class _RecordingTarget(io.StringIO):
    """Keeps every write call apart, and yields the GIL inside each to invite interleaving."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[str] = []

    def write(self, text: str) -> int:
        time.sleep(0)
        self.writes.append(text)
        return super().write(text)


def test_concurrent_prints_never_share_a_line() -> None:
    target = _RecordingTarget()
    stream = LineAtomicStream(target)
    start = threading.Barrier(8)

    def emit(worker: int) -> None:
        start.wait()
        for index in range(300):
            # print's two writes (text, then newline), as Powertools' metrics flush makes them.
            print(json.dumps({"worker": worker, "index": index, "pad": "x" * 50}), file=stream)

    threads = [threading.Thread(target=emit, args=(worker,)) for worker in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    # Every call the target saw is whole lines: a plain stream would see print's
    # text and its newline as two calls, which another thread can land between.
    assert all(text.endswith("\n") for text in target.writes)
    lines = target.getvalue().splitlines()
    assert len(lines) == 8 * 300
    seen = {(record["worker"], record["index"]) for record in map(json.loads, lines)}
    assert len(seen) == 8 * 300


def test_a_partial_line_waits_for_its_newline_or_a_flush() -> None:
    target = io.StringIO()
    stream = LineAtomicStream(target)
    stream.write("draining 3 of ")
    assert target.getvalue() == ""
    stream.write("10\nnext")
    assert target.getvalue() == "draining 3 of 10\n"
    stream.flush()
    assert target.getvalue() == "draining 3 of 10\nnext"


def test_whole_lines_restores_stdout_and_writes_what_was_left(capsys) -> None:  # type: ignore[no-untyped-def]
    import sys

    before = sys.stdout
    with whole_lines():
        assert sys.stdout is not before
        print("unfinished", end="")
    assert sys.stdout is before
    assert capsys.readouterr().out == "unfinished"
