"""Nothing grows with the number of programs compiled or the batch sizes called."""

from __future__ import annotations

import gc
import linecache

import pytest
import torch

import nc
from nc import primitives
from nc.compiled import MAX_SIGNATURES


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096 / 2**20


def generated_entries() -> int:
    return sum(1 for k in linecache.cache if k.startswith("<nc-generated"))


@pytest.mark.slow
def test_twenty_thousand_programs_and_five_thousand_batch_sizes() -> None:
    gc.collect()
    before_lines = generated_entries()
    start = rss_mb()
    for i in range(20_000):
        f = nc.compile_fn(f"(+ (* x {i}) (vsum (roll u {i % 97})) (ref [1 2 {i}] 2))")
        f(torch.ones(()), torch.ones(3))
    del f
    gc.collect()
    programs = rss_mb() - start
    # Generated sources are released with their functions; folding functions are bounded.
    assert generated_entries() - before_lines < 50
    assert primitives._evaluator.cache_info().currsize <= primitives.MAX_FOLDERS

    g = nc.compile_fn("(* 2 u)", shapes={"u": (3,)})
    mid = rss_mb()
    for b in range(1, 5_001):
        g(torch.ones(b, 3))
    gc.collect()
    batches = rss_mb() - mid
    assert len(g._compiled.cache) == 1  # batch axes are not part of a signature
    print(f"RSS growth: 20,000 programs {programs:.1f} MB, 5,000 batch sizes {batches:.1f} MB")
    assert programs < 150 and batches < 100  # generous: the allocator keeps freed pages


def test_signature_cache_is_bounded() -> None:
    f = nc.compile_fn("(vsum u)", check_domain=True)  # no size-generic function: one per signature
    for n in range(MAX_SIGNATURES + 10):
        f(torch.ones(n))
    assert len(f._compiled.cache) == MAX_SIGNATURES


def test_generated_source_is_released_with_its_function() -> None:
    gc.collect()
    before = generated_entries()
    f = nc.compile_fn("(sin x)")
    assert generated_entries() == before + 1
    del f
    gc.collect()
    assert generated_entries() == before
