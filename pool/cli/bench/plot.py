"""``--plot PATH``: one PNG with every distribution the bench measured.

One panel per environment: for credential fetch, handshake and loop stall,
this library's distribution beside the alternative's, as horizontal box
plots on a log scale (box p25–p75, line at the median, whiskers p1–p99, a
dot at the maximum), with the ratio (p50; p99 for the stall) beside each pair;
the handshake and stall again for each further topology (replica set over
TLS). A last row shows the cache hot path and rotation under load, per
topology. matplotlib's Agg backend: no display needed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pool.cli.bench.report import CACHE_KEYS, CACHE_LABELS, DRIVERS, BenchResults, fmt_ratio
from pool.cli.bench.setup import ENVIRONMENTS, TOPOLOGY_LABELS
from pool.cli.bench.stats import Recorder, Stat, ratio

__all__ = ["write_plot"]

OURS = "#0b7a75"
THEIRS = "#d9822b"

#: Rows of an environment panel, top to bottom:
#: (label, result group, our attribute, their attribute, their label).
_ROWS = (
    ("fetch", "fetch", "pool", "aiobotocore", "aiobotocore"),
    ("handshake", "handshake", "pool", "pymongo_builtin", "PyMongo built-in"),
    ("loop stall", "handshake", "pool_stall", "pymongo_builtin_stall", "PyMongo built-in"),
)


def _rows(results: BenchResults, env: str) -> list[tuple[str, Any, Any, str]]:
    """(label, ours, theirs, their label) of one environment's panel, topology by topology.

    The fetch does not touch MongoDB: only the first topology has it.
    """
    rows = []
    multi = len(results.topologies) > 1
    for i, (name, topology) in enumerate(results.topologies.items()):
        res = topology.envs.get(env)
        for label, group, ours_attr, theirs_attr, their_label in _ROWS[(1 if i else 0) :]:
            holder = getattr(res, group) if res is not None else None
            ours = getattr(holder, ours_attr) if holder else None
            theirs = getattr(holder, theirs_attr) if holder else None
            if multi and group == "handshake":
                label += "\n" + TOPOLOGY_LABELS[name]
            rows.append((label, ours, theirs, their_label))
    return rows


def write_plot(results: BenchResults, path: Path) -> None:
    """Render ``results`` to a PNG at ``path`` (blocking: call it in a thread)."""
    # The object API, not pyplot: no global state, no GUI backend, safe in a worker thread.
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch

    envs = list(results.envs)
    cols = 3
    env_rows = max(1, -(-len(envs) // cols))
    panel = 1.4 * (len(_ROWS) + (len(_ROWS) - 1) * (len(results.topologies) - 1))
    fig = Figure(figsize=(16, panel * env_rows + 4.4), layout="constrained")
    grid = fig.add_gridspec(env_rows + 1, cols, height_ratios=[1.0] * env_rows + [0.85])
    for i, env in enumerate(envs):
        _env_panel(fig.add_subplot(grid[i // cols, i % cols]), results, env)
    _cache_panel(fig.add_subplot(grid[env_rows, 0]), results)
    _rotation_panel(fig.add_subplot(grid[env_rows, 1:]), results)
    meta = results.meta
    fig.suptitle(
        "python -m pool bench: lower is better; bold figures are alternative ÷ this library. "
        f"Profile '{meta['profile']}'{' (--quick)' if meta['quick'] else ''}; "
        f"PyMongo {meta['pymongo']}, aiobotocore {meta['aiobotocore']}, Python {meta['python']}",
        fontsize=12,
    )
    fig.legend(
        handles=[
            Patch(color=OURS, alpha=0.7, label="this library (cached credentials, own sources)"),
            Patch(color=THEIRS, alpha=0.7,
                  label="alternative: aiobotocore (fetch), PyMongo built-in lookup (handshake, "
                  "stall), naive rotation"),
        ],
        loc="outside lower center", ncols=2, fontsize=10, frameon=False,
    )  # fmt: skip
    fig.savefig(path, dpi=110)


def _box(ax: Any, rec: Recorder, y: float, color: str) -> None:
    values = rec.values
    ax.boxplot(
        [values], positions=[y], vert=False, widths=0.62, whis=(1, 99), showfliers=False,
        patch_artist=True, manage_ticks=False,
        boxprops={"facecolor": color, "alpha": 0.55, "edgecolor": color},
        medianprops={"color": "black", "linewidth": 1.6},
        whiskerprops={"color": color}, capprops={"color": color},
    )  # fmt: skip
    ax.plot([max(values)], [y], marker="o", markersize=3.5, color=color)


def _env_panel(ax: Any, results: BenchResults, env: str) -> None:
    res = results.envs[env]
    ticks: list[float] = []
    highest = 0.0
    rows = _rows(results, env)
    for row, (name, ours, theirs, their_label) in enumerate(rows):
        top = row * 2.6
        ticks.append(top + 0.5)
        for y, rec, color in ((top, ours, OURS), (top + 1, theirs, THEIRS)):
            if rec is not None and rec.n:
                _box(ax, rec, y, color)
                highest = max(highest, max(rec.values))
            else:
                ax.text(
                    0.02, y, f"{their_label}: no equivalent", va="center", fontsize=8,
                    color="grey", style="italic", transform=ax.get_yaxis_transform(),
                )  # fmt: skip
        if ours is not None and theirs is not None and ours.n and theirs.n:
            stat: Stat = "p99" if name.startswith("loop stall") else "p50"
            r = ratio(theirs.summary(), ours.summary(), stat)
            ax.text(0.985, top + 0.5, f"{fmt_ratio(r)} {stat}", ha="right", va="center",
                    fontsize=10, fontweight="bold", color=OURS,
                    transform=ax.get_yaxis_transform())  # fmt: skip
    ax.set_yticks(ticks, [row[0] for row in rows], fontsize=8)
    ax.set_ylim(len(rows) * 2.6 - 1.0, -0.8)
    ax.set_xscale("log")
    if highest > 0:
        left, _ = ax.get_xlim()
        ax.set_xlim(left, highest * 8)  # room for the ratios on the right
    ax.set_xlabel("milliseconds (log scale)", fontsize=8)
    ax.grid(axis="x", which="both", alpha=0.25)
    title = ENVIRONMENTS[env] + (f"  [error: {res.error[:40]}]" if res.error else "")
    ax.set_title(title, fontsize=11, loc="left", fontweight="bold")


def _cache_panel(ax: Any, results: BenchResults) -> None:
    labels, y = [], 0
    for key in CACHE_KEYS:
        rec = results.cache.get(key)
        labels.append(CACHE_LABELS[key])
        if rec is not None and rec.n:
            _box(ax, rec, y, THEIRS if key == "aiobotocore" else OURS)
        y += 1
    ax.set_yticks(range(len(labels)), labels, fontsize=8)
    ax.invert_yaxis()
    ax.set_xscale("log")
    ax.set_xlabel("nanoseconds per call (log scale)", fontsize=8)
    ax.grid(axis="x", which="both", alpha=0.25)
    ax.set_title("Cache hot path: reading valid credentials", fontsize=11, loc="left",
                 fontweight="bold")  # fmt: skip


def _rotation_panel(ax: Any, results: BenchResults) -> None:
    ax.set_title("Rotation under load: p99 operation latency, steady (light) and around "
                 "rotations (dark)", fontsize=11, loc="left", fontweight="bold")  # fmt: skip
    runs = [(name, driver, t.rotation.get(driver, {}))
            for name, t in results.topologies.items() for driver in DRIVERS]  # fmt: skip
    if not any(r for _, _, modes in runs for r in modes.values()):
        note = results.primary.rotation_note
        ax.text(0.5, 0.5, note or "not measured", ha="center", va="center",
                fontsize=10, color="grey", wrap=True, transform=ax.transAxes)  # fmt: skip
        ax.set_xticks([])
        ax.set_yticks([])
        return
    x, ticks, labels = 0.0, [], []
    multi = len(results.topologies) > 1
    for name, driver, modes in runs:
        for mode in ("warmed", "naive"):
            r = modes.get(mode)
            color = OURS if mode == "warmed" else THEIRS
            ticks.append(x)
            # Several topologies: eight bars, so the short names (the legend says who is who).
            what = ("warmed swap" if multi else "warmed swap (this library)", "naive")
            labels.append((f"{name}\n" if multi else "")
                          + f"{driver}\n{what[0] if mode == 'warmed' else what[1]}")  # fmt: skip
            if r is None:
                ax.text(x, 0, "not measured", ha="center", va="bottom", fontsize=8, color="grey")
            else:
                ax.bar(x - 0.2, r["p99_steady_ms"], 0.4, color=color, alpha=0.4)
                ax.bar(x + 0.2, r["p99_rotation_ms"], 0.4, color=color, alpha=0.95)
                top = max(r["p99_steady_ms"], r["p99_rotation_ms"])
                bad = r["failed"] or r["lost"]
                ax.text(x, top, f"{r['ops']:,} ops, {r['rotations']} rotation(s)\n"
                        f"{r['failed']} failed, {r['lost']} lost", ha="center", va="bottom",
                        fontsize=8, color="#b3261e" if bad else "black",
                        fontweight="bold" if bad else "normal")  # fmt: skip
            x += 1.3
        warmed, naive = modes.get("warmed"), modes.get("naive")
        if warmed and naive and warmed["p99_rotation_ms"] > 0:
            r_x = naive["p99_rotation_ms"] / warmed["p99_rotation_ms"]
            ax.text(x - 1.95, 0.93, f"{fmt_ratio(r_x)} p99 at rotation", ha="center",
                    fontsize=10, fontweight="bold", color=OURS,
                    transform=ax.get_xaxis_transform())  # fmt: skip
        x += 0.5
    ax.set_xticks(ticks, labels, fontsize=8)
    ax.set_ylabel("ms", fontsize=8)
    ax.grid(axis="y", alpha=0.25)
    ax.margins(y=0.3)
