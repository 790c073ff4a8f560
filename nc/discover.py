"""`discover`: equation discovery that writes nc programs.

    result = nc.discover(traj, times, states=["x", "y", "z"], library="poly2")
    print(result)                   # dx/dt = 10 y - 10 x  ...
    result.source                   # an nc program: the fitted right-hand side
    nc.compile(result.source, trainable=list(result.coefficients))   # fit further, export, ...

Two stages (docs/discovery.md gives the reasons):

1. Savitzky-Golay derivatives and sequentially thresholded least squares over a grid of
   thresholds (`nc.discover_stlsq`) short-list candidate term sets, equation by equation.
2. Each candidate is written as one nc program and fitted to the integrated trajectories by
   multiple shooting through ``rk4`` (`nc.discover_refine`); terms that carry less than the
   threshold are dropped and refitted; the candidate with the lowest Bayesian information
   criterion of the trajectory fit is kept, with Gauss-Newton standard errors.

A known part of the right-hand side (``known=``) is included, fixed, in every candidate: only
the remainder is searched.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import attrs
import numpy as np
import torch

from nc.api import compile_fn
from nc.cli_input import UsageError, read_csv, read_file
from nc.discover_data import check_states, check_trajectories
from nc.discover_library import (
    Known,
    build_library,
    coefficient_name,
    display_term,
    evaluate_known,
    evaluate_terms,
    parse_known,
    rhs_source,
    term_matrix_numpy,
)
from nc.discover_refine import F64, Candidate, Trajectory, fit_candidate, standard_errors
from nc.discover_stlsq import savgol, support_path, threshold_grid
from nc.errors import CallError
from nc.fit_checks import check_count, check_number

__all__ = ["Discovery", "discover"]

Support = tuple[frozenset[int], ...]  # per equation, the indices of the kept library terms


@attrs.frozen
class Discovery:
    """What `discover` returns.

    ``states``, ``terms`` (the library, nc expressions), ``selected``: state -> the kept terms;
    ``coefficients``: name (``c_<state>_<k>``, ``k`` the term's index in ``terms``) -> value;
    ``stderr``: name -> Gauss-Newton standard error (NaN where not identifiable);
    ``source``: the discovered right-hand side as an nc program whose result is
    ``(lambda (s) (rhs 0 s))`` (``s`` the state vector, or the one vector state), with the
    coefficients as top-level ``define``s; ``known``: the fixed known part; ``report``: how it
    was found (candidates with their trajectory BIC, thresholds, smoothing, times).
    """

    states: tuple[str, ...]
    terms: tuple[str, ...]
    selected: dict[str, list[str]]
    coefficients: dict[str, float]
    stderr: dict[str, float]
    source: str
    known: Known
    vector_state: bool
    report: dict[str, Any]

    def equations(self, digits: int = 6) -> list[str]:
        """One line per state: ``dx/dt = 10 y - 10 x`` (the known part in brackets)."""
        lines = []
        for state in self.states:
            parts: list[str] = []
            if state in self.known.exprs:
                parts.append(f"[known: {self.known.exprs[state]}]")
            for k, term in enumerate(self.terms):
                name = coefficient_name(state, k)
                if name in self.coefficients:
                    parts.append(_signed(self.coefficients[name], display_term(term), digits, not parts))
            body = " ".join(parts) if parts else "0"
            lines.append(f"d{state}/dt = {body}")
        return lines

    def rollout_source(self, dt: float, steps: int) -> str:
        """A program ``(rk4 rhs s0 dt steps)`` of the discovered dynamics (input ``s0``)."""
        head = self.source[: self.source.rindex("(lambda (s)")]
        return f"{head}(rk4 rhs s0 {float(dt)!r} {int(steps)})"

    def simulate(self, y0: Any, dt: float, steps: int) -> np.ndarray:
        """The discovered model integrated by ``rk4`` from ``y0``: [steps + 1, *state]."""

        f = compile_fn(self.rollout_source(dt, steps))
        return np.asarray(f(s0=torch.as_tensor(np.asarray(y0, dtype=np.float64))).detach().numpy())

    def __str__(self) -> str:
        lines = self.equations()
        if self.stderr:
            lines.append("coefficients (standard error): " + ", ".join(
                f"{n} = {v:.6g} ({self.stderr.get(n, math.nan):.2g})" for n, v in self.coefficients.items()))
        return "\n".join(lines)


def _signed(c: float, term: str, digits: int, first: bool) -> str:
    mag = f"{abs(c):.{digits}g}"
    text = mag if term == "1" else f"{mag} {term}"
    if first:
        return f"-{text}" if c < 0 else text
    return f"- {text}" if c < 0 else f"+ {text}"


def discover(data: Any, times: Any, states: str | Sequence[str], library: str | Sequence[str] = "poly2", *,
             known: str | Mapping[str, str] | None = None, threshold: float | None = None,
             refine: bool = True, window: int = 10, substeps: int = 1, smoothing: int | None = None,
             epochs: int = 30, max_candidates: int = 8, min_t: float = 3.0,
             continuity: float | None = None) -> Discovery:
    """Find a sparse right-hand side ``ds/dt = known(s) + sum_k c_k term_k(s)`` from trajectories.

    Args:
        data: one trajectory [T, n_states] (for one vector state, such as a field on a grid,
            [T, N]) or a list of them (arrays or tensors; lengths and initial states may differ).
        times: per trajectory its T times (equally spaced, increasing) or its time step; a list
            with one entry per trajectory, or one entry shared by all.
        states: the state names in column order (a list, or ``"x,y,z"``). They are the names
            the library terms and the known part use.
        library: candidate terms: ``"poly2"`` (monomials up to degree 2), ``"const"``, ``"trig"``,
            or nc expressions over the states (``"(sin theta)"``, ``"(* x (exp (- y)))"``), or a
            list mixing them (see `nc.discover_library`).
        known: the known part of the right-hand side, fixed: a dict state -> nc expression, or an
            nc program whose definitions are kept and whose result is ``[e1 e2 ...]``.
        threshold: the STLSQ threshold (a fraction of the derivative's RMS a term must carry);
            None chooses it by the trajectory BIC over a grid.
        refine: fit candidates to the integrated trajectories (stage 2); False returns the
            stage-1 least-squares result of the lowest derivative BIC.
        window: steps per multiple-shooting window; substeps: ``rk4`` steps per sample.
        smoothing: half-width (in samples) of the Savitzky-Golay window; None estimates it from
            the noise level.
        epochs: most Levenberg-Marquardt steps per candidate fit (a third of them when
            screening); max_candidates: most candidates fitted in stage 2.
        continuity: the weight of the continuity rows (where a window's end meets the next
            window's starting state) against a data row; None: ``window + 1``.
        min_t: stage 2 drops a term whose coefficient is within ``min_t`` standard errors of 0
            (and keeps the smaller set if its trajectory BIC is lower).

    Returns:
        A `Discovery`; ``print(result)`` shows the equations.

    Raises:
        CallError: mismatched lengths, a NaN row (naming the row), times that do not increase or
            are not equally spaced, an unknown state name in a term or in the known part, an
            empty library, or a bad option.
    """
    t_start = time.perf_counter()
    names = check_states(states)
    arrays, steps, vector = check_trajectories(data, times, len(names))
    if vector and len(names) != 1:
        raise CallError("a vector state is supported for one state only", None)
    terms = build_library(library, names)
    knw = parse_known(known, names)
    thr = check_number("threshold", threshold, positive=True, optional=True)
    window = int(check_count("window", window, minimum=1))  # type: ignore[arg-type]
    substeps = int(check_count("substeps", substeps, minimum=1))  # type: ignore[arg-type]
    smoothing = check_count("smoothing", smoothing, minimum=1, optional=True)  # type: ignore[assignment]
    epochs = int(check_count("epochs", epochs, minimum=1))  # type: ignore[arg-type]
    max_candidates = int(check_count("max_candidates", max_candidates, minimum=1))  # type: ignore[arg-type]
    rho = check_number("continuity", continuity, positive=True, optional=True)
    window = min(window, min(len(a) for a in arrays) - 1)

    half = smoothing or _smoothing_width(arrays)
    stage1 = _stage1(arrays, steps, names, terms, knw, vector, half, thr)
    trajs = [Trajectory(torch.as_tensor(a, dtype=F64), dt, torch.as_tensor(s, dtype=F64))
             for a, dt, s in zip(arrays, steps, stage1["smooth"])]
    allobs = np.concatenate(arrays)
    scale = torch.as_tensor(allobs.std(axis=0) if not vector else np.full(1, allobs.std()), dtype=F64)
    scale = torch.where(scale > 0, scale, torch.ones_like(scale))
    report: dict[str, Any] = {"smoothing_half_width": half, "thresholds": stage1["thresholds"]}

    if not refine:
        support = stage1["best"]
        coefs = _lstsq_coefficients(stage1, support, names)
        source = rhs_source(names, terms, coefs, knw, vector)
        report.update(candidates=[], seconds=time.perf_counter() - t_start)
        return _result(names, terms, support, coefs, {}, source, knw, vector, report)

    factors = _factors(stage1, names, terms)
    fitted: dict[Support, Candidate] = {}

    def fit(support: Support, n_epochs: int | None, coefs: Mapping[str, float] | None = None,
            warm: Candidate | None = None) -> Candidate:
        # screening fits skip the standard errors; a refit starts from a fitted candidate's states
        n_epochs = epochs if n_epochs is None else n_epochs
        start = coefs if coefs is not None else _lstsq_coefficients(stage1, support, names)
        s = rhs_source(names, terms, {n: v / factors[n] for n, v in start.items()}, knw, vector, factors=factors)
        return fit_candidate(s, list(start), trajs, scale, window, substeps, n_epochs, factors, rho or 0.0,
                             states=warm.shoot.states if warm is not None else None,  # type: ignore[arg-type]
                             errors=n_epochs == epochs)

    # screen every candidate with a short fit, then fit the best one fully
    screen = max(3, epochs // 6)
    for support in stage1["candidates"][:max_candidates]:
        if support not in fitted:
            fitted[support] = fit(support, screen)
    full: set[Support] = set()

    def best_full() -> Support:
        """The lowest-BIC candidate, fitted fully (warm) if it was only screened; repeated
        because a full fit can lose its place to another screened candidate."""
        while True:
            sup = min(fitted, key=lambda s: fitted[s].bic)
            if sup in full:
                return sup
            fitted[sup] = fit(sup, epochs, fitted[sup].coefficients, fitted[sup])
            full.add(sup)

    for _ in range(4):  # re-threshold on the trajectory fit (threshold and t statistic), refit
        best_support = best_full()
        best = fitted[best_support]
        pruned = _prune(best_support, best.coefficients, best.errors, stage1, names, min_t)
        if pruned == best_support or pruned in fitted:
            break
        fitted[pruned] = fit(pruned, epochs, {n: v for n, v in best.coefficients.items() if _kept(n, pruned, names)},
                             best)
        full.add(pruned)
    best_support = best_full()
    for _ in range(3):  # stepwise: drop what the trajectory BIC rejects, add what it wants
        best_support = _eliminate(best_support, fitted, fit, names, knw, tries=3)
        grown = _add(best_support, fitted, fit, stage1, names, tries=2)
        if grown == best_support:
            grown = _swap(best_support, fitted, fit, stage1, names, tries=2)
        if grown == best_support:
            break
        best_support = grown
    # a term carrying less than the threshold goes whatever the BIC says: on noise-free data a
    # tiny term can absorb the integrator's truncation error and lower the RSS below roundoff
    small = _prune(best_support, fitted[best_support].coefficients, {}, stage1, names, min_t)
    if small != best_support:
        kept = {n: v for n, v in fitted[best_support].coefficients.items() if _kept(n, small, names)}
        fitted[small] = fit(small, epochs, kept, fitted[best_support])
        best_support = small
    best = fitted[best_support]
    errors = standard_errors(best, factors)
    comments = {n: f"+/- {e:.3g}" for n, e in errors.items()}
    source = rhs_source(names, terms, best.coefficients, knw, vector, comments)
    report.update(candidates=[{"terms": _support_text(s, names, terms), "bic": c.bic, "rss": c.rss,
                               "n_obs": c.n_obs, "seconds": c.seconds} for s, c in fitted.items()],
                  bic=best.bic, rss=best.rss, seconds=time.perf_counter() - t_start)
    return _result(names, terms, best_support, best.coefficients, errors, source, knw, vector, report)


def _result(names: tuple[str, ...], terms: tuple[str, ...], support: Support, coefs: Mapping[str, float],
            errors: Mapping[str, float], source: str, knw: Known, vector: bool, report: dict[str, Any]) -> Discovery:
    selected = {s: [terms[k] for k in sorted(sup)] for s, sup in zip(names, support)}
    program = f"{source}\n(lambda (s) (rhs 0 s))"
    return Discovery(names, terms, selected, dict(coefs), dict(errors), program, knw, vector, report)


def _smoothing_width(arrays: Sequence[np.ndarray]) -> int:
    """A Savitzky-Golay half-width from the noise-to-signal ratio, estimated from third
    differences (which remove a smooth signal and multiply white noise's variance by 20)."""
    ratios = []
    for a in arrays:
        d3 = np.diff(a, n=3, axis=0)
        noise = np.sqrt(np.median(d3**2, axis=0) / 20 / 0.455)  # median of chi2(1) is 0.455
        ratios.append(float(np.max(noise / np.maximum(a.std(axis=0), 1e-300))))
    nsr = float(np.median(ratios))
    return int(np.clip(round(3 + 110 * nsr), 3, 30))


def _stage1(arrays: Sequence[np.ndarray], steps: Sequence[float], names: tuple[str, ...], terms: tuple[str, ...],
            knw: Known, vector: bool, half: int, thr: float | None) -> dict[str, Any]:
    """Smoothed data, the library and target matrices per equation, and the candidate supports."""
    smooth, thetas, targets = [], [], []
    for a, dt in zip(arrays, steps):
        s, d = savgol(a, dt, half, order=3)
        smooth.append(s)
        ts = torch.as_tensor(s, dtype=F64)
        if vector:
            cols = {names[0]: ts}
            shapes = {names[0]: (a.shape[1],)}
        else:
            cols = {n: ts[:, i] for i, n in enumerate(names)}
            shapes = {}
        values = evaluate_terms(terms, cols, shapes)  # [T, (N,) terms]
        kv = evaluate_known(knw, cols, shapes, names).numpy()  # [T, (N,) states]
        thetas.append(term_matrix_numpy(values))
        resid = (d[..., None] if vector else d) - kv
        targets.append(resid.reshape(-1, len(names)))
    theta, target = np.concatenate(thetas), np.concatenate(targets)
    grid = np.array([thr]) if thr is not None else threshold_grid()
    paths = [support_path(theta, target[:, i], grid) for i in range(len(names))]
    col_rms = np.sqrt(np.mean(theta**2, axis=0))
    return {"smooth": smooth, "theta": theta, "target": target, "paths": paths, "thresholds": grid.tolist(),
            "col_rms": col_rms, "target_rms": np.sqrt(np.mean(target**2, axis=0)),
            "best": tuple(min(p, key=lambda e: e[2])[0] for p in paths),
            "candidates": _candidates(paths, grid.tolist(), [n in knw.exprs for n in names]), "threshold": thr}


def _candidates(paths: Sequence[list[tuple[frozenset[int], float, float]]], grid: Sequence[float],
                may_be_empty: Sequence[bool]) -> list[Support]:
    """Candidate term sets: every equation at its derivative-BIC-best support, then every
    equation at one common threshold of the grid (the joint STLSQ path), sparsest first (the
    derivative BIC over-counts the independent rows of smoothed, correlated derivatives, so it is
    a poor judge between sparse sets; the trajectory fit judges them). An equation may have no
    terms only where it has a known part."""
    best = tuple(min(p, key=lambda e: e[2])[0] for p in paths)
    joint: dict[Support, float] = {}
    for lam in grid:
        # an equation's support at lam: the one found at the largest path threshold <= lam
        sup = tuple(max((e for e in p if e[1] <= lam), key=lambda e: e[1]) for p in paths)
        if all(e[0] or empty for e, empty in zip(sup, may_be_empty)):
            joint.setdefault(tuple(e[0] for e in sup), sum(e[2] for e in sup))
    ranked = sorted(joint, key=lambda k: (sum(len(e) for e in k), joint[k]))
    return [best] + [c for c in ranked if c != best]


def _lstsq_coefficients(stage1: Mapping[str, Any], support: Support, names: Sequence[str]) -> dict[str, float]:
    """Least-squares coefficients of ``support`` on the stage-1 derivatives, by name."""
    out = {}
    for i, sup in enumerate(support):
        cols = sorted(sup)
        if not cols:
            continue
        xi = np.linalg.lstsq(stage1["theta"][:, cols], stage1["target"][:, i], rcond=None)[0]
        out.update({coefficient_name(names[i], k): float(v) for k, v in zip(cols, xi)})
    return out


def _factors(stage1: Mapping[str, Any], names: Sequence[str], terms: Sequence[str]) -> dict[str, float]:
    """name -> ``rms(d state/dt) / rms(term)``: the coefficient's natural scale."""
    out = {}
    for i, s in enumerate(names):
        for k in range(len(terms)):
            f = stage1["target_rms"][i] / stage1["col_rms"][k] if stage1["col_rms"][k] > 0 else 1.0
            out[coefficient_name(s, k)] = float(f) if f > 0 and math.isfinite(f) else 1.0
    return out


def _kept(name: str, support: Support, names: Sequence[str]) -> bool:
    return any(name == coefficient_name(s, k) for s, sup in zip(names, support) for k in sup)


def _prune(support: Support, coefs: Mapping[str, float], errors: Mapping[str, float], stage1: Mapping[str, Any],
           names: Sequence[str], min_t: float) -> Support:
    """``support`` without the terms whose fitted coefficient carries less than the threshold
    (the given one, else the smallest of the grid) of its derivative's RMS, or is within
    ``min_t`` standard errors of zero."""
    lam = stage1["threshold"] if stage1["threshold"] is not None else stage1["thresholds"][0]
    out = []
    for i, sup in enumerate(support):
        keep = set()
        for k in sup:
            name = coefficient_name(names[i], k)
            size = abs(coefs[name]) * stage1["col_rms"][k] / max(stage1["target_rms"][i], 1e-300)
            err = errors.get(name, math.nan)
            if size >= lam and not (math.isfinite(err) and abs(coefs[name]) < min_t * err):
                keep.add(k)
        out.append(frozenset(keep))
    return tuple(out)


def _eliminate(support: Support, fitted: dict[Support, Candidate],
               fit: Callable[..., Candidate], names: Sequence[str], knw: Known, tries: int) -> Support:
    """Backward elimination on the trajectory BIC: drop the term with the smallest t statistic
    (coefficient over standard error) whose removal lowers the BIC, trying the ``tries``
    weakest terms in turn; repeat until no removal helps. An equation keeps at least one term
    unless it has a known part."""
    while True:
        best = fitted[support]
        ranked = sorted(((abs(v) / e if math.isfinite(e) and e > 0 else math.inf, n)
                         for n, v in best.coefficients.items() for e in [best.errors.get(n, math.nan)]))
        improved = False
        for _, name in ranked[:tries]:
            smaller = tuple(frozenset(k for k in sup if coefficient_name(s, k) != name)
                            for s, sup in zip(names, support))
            if any(not sup and s not in knw.exprs for s, sup in zip(names, smaller)):
                continue
            if smaller not in fitted:
                fitted[smaller] = fit(smaller, None, {n: v for n, v in best.coefficients.items() if n != name}, best)
            if fitted[smaller].bic < best.bic:
                support, improved = smaller, True
                break
        if not improved:
            return support


def _ranked_additions(support: Support, stage1: Mapping[str, Any]) -> list[tuple[float, int, int]]:
    """(t, equation, term) for every absent term, best first: its t statistic when added to its
    equation's least-squares fit on the stage-1 derivatives."""
    theta, target = stage1["theta"], stage1["target"]
    scored = []
    for i, sup in enumerate(support):
        cols = sorted(sup)
        q = np.linalg.qr(theta[:, cols])[0] if cols else np.zeros((len(theta), 0))
        resid = target[:, i] - q @ (q.T @ target[:, i])
        sigma = math.sqrt(float(resid @ resid) / max(len(resid) - len(cols) - 1, 1))
        for k in range(theta.shape[1]):
            if k in sup:
                continue
            col = theta[:, k] - q @ (q.T @ theta[:, k])
            norm = math.sqrt(float(col @ col))
            if norm > 1e-12 * max(math.sqrt(float(theta[:, k] @ theta[:, k])), 1e-300) and sigma > 0:
                scored.append((abs(float(col @ resid)) / norm / sigma, i, k))
    return sorted(scored, reverse=True)


def _add(support: Support, fitted: dict[Support, Candidate], fit: Callable[..., Candidate],
         stage1: Mapping[str, Any], names: Sequence[str], tries: int) -> Support:
    """Forward step: the absent terms ranked by `_ranked_additions`; the ``tries`` best are
    fitted to the trajectories in turn and the first that lowers the trajectory BIC is kept.
    (At high noise a weak true term can be missing from every stage-1 candidate: the threshold
    path drops it together with, or before, the spurious ones.)"""
    best = fitted[support]
    for _, i, k in _ranked_additions(support, stage1)[:tries]:
        bigger = tuple(sup | {k} if j == i else sup for j, sup in enumerate(support))
        if bigger not in fitted:
            fitted[bigger] = fit(bigger, None, {**best.coefficients, coefficient_name(names[i], k): 0.0}, best)
        if fitted[bigger].bic < best.bic:
            return bigger
    return support


def _swap(support: Support, fitted: dict[Support, Candidate], fit: Callable[..., Candidate],
          stage1: Mapping[str, Any], names: Sequence[str], tries: int) -> Support:
    """Exchange step: the weakest term (smallest t statistic on the trajectory fit) replaced by
    the best-ranked absent terms of its equation (ranked without it); the first exchange that
    lowers the trajectory BIC is kept. At high noise a spurious term can stand in for a true one
    it correlates with (``y z`` for ``y`` in Lorenz, since z stays near 25), and neither
    dropping nor adding one term alone lowers the BIC."""
    best = fitted[support]
    ranked = sorted((abs(v) / e, n) for n, v in best.coefficients.items()
                    for e in [best.errors.get(n, math.nan)] if math.isfinite(e) and e > 0)
    if not ranked:
        return support
    weakest = ranked[0][1]
    i, k = next((i, k) for i, sup in enumerate(support) for k in sup if coefficient_name(names[i], k) == weakest)
    reduced = tuple(sup - {k} if j == i else sup for j, sup in enumerate(support))
    options = [(t, j, m) for t, j, m in _ranked_additions(reduced, stage1) if j == i and m != k]
    start = {n: v for n, v in best.coefficients.items() if n != weakest}
    for _, _, m in options[:tries]:
        other = tuple(sup | {m} if j == i else sup for j, sup in enumerate(reduced))
        if other not in fitted:
            fitted[other] = fit(other, None, {**start, coefficient_name(names[i], m): 0.0}, best)
        if fitted[other].bic < best.bic:
            return other
    return support


def _support_text(support: Support, names: Sequence[str], terms: Sequence[str]) -> dict[str, list[str]]:
    return {s: [display_term(terms[k]) for k in sorted(sup)] for s, sup in zip(names, support)}


def add_parser(sub: Any) -> None:
    """The ``nc discover`` subcommand (registered by `nc.cli`)."""
    p = sub.add_parser("discover", help="discover a sparse right-hand side from trajectories in a CSV file")
    p.add_argument("data", help="CSV with a time column and one column per state (a time that does not "
                                "increase starts a new trajectory)")
    p.add_argument("--states", required=True, help="state columns, comma-separated (x,y,z)")
    p.add_argument("--time", default="t", help="the time column (default t)")
    p.add_argument("--library", default="poly2", help="terms: specs and nc expressions separated by ';' "
                                                       "(poly2;trig;(sin theta))")
    p.add_argument("--known", metavar="FILE", help="an nc program of the known part: definitions, then [e1 e2 ...]")
    p.add_argument("--threshold", type=float, default=None)
    p.add_argument("-o", "--output", metavar="OUT", help="write the discovered program to OUT")
    p.add_argument("--plot", metavar="PNG", help="plot the data against the discovered model (needs matplotlib)")
    p.set_defaults(run=run_command)


def run_command(args: Any) -> int:
    """``nc discover``: read the CSV, discover, print (and write / plot) the program."""

    columns = read_csv(args.data)
    names = [s.strip() for s in args.states.split(",") if s.strip()]
    for n in [args.time, *names]:
        if n not in columns:
            raise UsageError(f"{args.data}: no column {n!r} (columns: {', '.join(columns)})")
    t = columns[args.time]
    cuts = [0, *(np.flatnonzero(np.diff(t) <= 0) + 1).tolist(), len(t)]
    y = np.stack([columns[n] for n in names], axis=1)
    trajs = [y[a:b] for a, b in zip(cuts, cuts[1:])]
    times = [t[a:b] for a, b in zip(cuts, cuts[1:])]
    known = read_file(args.known) if args.known else None
    result = discover(trajs, times, names, [s for s in args.library.split(";") if s.strip()], known=known,
                      threshold=args.threshold)
    print(result)
    print(result.source)
    if args.output:
        with open(args.output, "w", encoding="utf-8") as f:
            f.write(result.source + "\n")
    if args.plot:
        _plot(result, trajs, times, args.plot)
    return 0


def _plot(result: Discovery, trajs: Sequence[np.ndarray], times: Sequence[np.ndarray], path: str) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:

        raise UsageError("--plot needs matplotlib (pip install matplotlib)") from None
    fig, axes = plt.subplots(len(result.states), 1, figsize=(7, 2.2 * len(result.states)), squeeze=False)
    for y, t in zip(trajs, times):
        sim = result.simulate(y[0], float(t[1] - t[0]), len(t) - 1)
        for i, ax in enumerate(axes[:, 0]):
            ax.plot(t, y[:, i], ".", ms=2, color="gray")
            ax.plot(t, sim[:, i], "-", lw=1)
            ax.set_ylabel(result.states[i])
    axes[-1, 0].set_xlabel("t")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
