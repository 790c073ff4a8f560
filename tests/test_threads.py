"""Compiling and calling from several threads at once touches no process-wide state."""

from __future__ import annotations

import gc
import sys
import threading

import pytest
import torch

import nc


def chain(depth: int) -> str:
    """A chain of ``depth`` functions each calling the next: deep recursion while tracing."""
    src = "(define (g0 a) (* a 2))\n"
    src += "".join(f"(define (g{k} a) (+ (g{k - 1} a) 1))\n" for k in range(1, depth))
    return src + f"(g{depth - 1} x)"


@pytest.mark.slow
def test_eight_threads_compile_a_900_deep_program() -> None:
    # Each compile used to save and restore the recursion limit and the GC switch: threads
    # raised spurious LimitErrors, or the interpreter aborted with a stack overflow.
    src = chain(900)
    results: list[object] = [None] * 8
    limit, collecting = sys.getrecursionlimit(), gc.isenabled()

    def work(i: int) -> None:
        try:
            f = nc.compile_fn(src)
            results[i] = float(f(torch.tensor(1.5, dtype=torch.float64)))
        except Exception as e:  # noqa: BLE001 - recorded and asserted below
            results[i] = e

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [1.5 * 2 + 899] * 8
    assert sys.getrecursionlimit() == limit and gc.isenabled() == collecting


def test_threads_share_one_compiled_function() -> None:
    f = nc.compile_fn("(* 2 u)", shapes={"u": (None,)})
    errors: list[BaseException] = []

    def work(i: int) -> None:
        try:
            for n in range(1, 40):
                u = torch.full((i + 1, n), float(n))
                assert torch.equal(f(u), 2 * u)
        except BaseException as e:  # noqa: BLE001
            errors.append(e)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert len(f._compiled.cache) <= nc.compiled.MAX_SIGNATURES
