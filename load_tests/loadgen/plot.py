"""``capacity.png``: concurrent calls, the server's CPU and RTP loss over the run, steps shaded (matplotlib,
Agg backend: no display needed)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .run_records import CapacityRun

__all__ = ["plot_run"]


def plot_run(run: CapacityRun, path: Path) -> None:
    # Imported here: generator processes import this package and never draw.
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    samples = run.timeline.get("samples", [])
    scrapes = run.timeline.get("scrapes", [])
    figure, (calls_ax, cpu_ax, loss_ax) = plt.subplots(
        3, 1, sharex=True, figsize=(10, 8), layout="constrained"
    )
    times = [s["t"] for s in samples]
    calls_ax.plot(times, [s["calls"] for s in samples], color="tab:blue", label="calls up (generator)")
    calls_ax.plot(
        [s["t"] for s in scrapes],
        [s["active_calls"] for s in scrapes],
        ".",
        color="tab:cyan",
        label="active (server)",
    )
    calls_ax.set_ylabel("concurrent calls")
    calls_ax.legend(loc="upper left")
    cpu_ax.plot(times, [s["server_cpu"] for s in samples], color="tab:red", label="server")
    cpu_ax.plot(times, [s["postgres_cpu"] for s in samples], color="tab:purple", label="PostgreSQL")
    cpu_ax.plot(times, [s["generator_cpu"] for s in samples], color="tab:gray", label="generator", alpha=0.6)
    cpu_ax.set_ylabel("CPU, % of one core")
    cpu_ax.legend(loc="upper left")
    loss_ax.plot(
        [s["t"] for s in scrapes],
        [s["rtp_loss_percent"] for s in scrapes],
        ".-",
        color="tab:orange",
        label="RTP lost (server, RFC 3550, per 2 s)",
    )
    loss_ax.set_ylabel("loss %")
    loss_ax.set_xlabel("seconds since the start of the run")
    loss_ax.legend(loc="upper left")
    for step in run.steps:
        start, end = step.window
        for ax in (calls_ax, cpu_ax, loss_ax):
            ax.axvspan(start, end, color="tab:green", alpha=0.06)
        calls_ax.annotate(
            f"step {step.number}: {step.figures.calls} calls",
            ((start + end) / 2, 1.01),
            xycoords=("data", "axes fraction"),
            ha="center",
            va="bottom",
            fontsize=8,
        )
    for ax in (calls_ax, cpu_ax, loss_ax):
        ax.set_ylim(bottom=0)
        ax.grid(alpha=0.3)
    loss_ax.set_ylim(top=max(1.0, loss_ax.get_ylim()[1]))
    figure.suptitle(f"Hangtár capacity run — {'passed' if run.passed else 'FAILED'}")
    figure.savefig(path, dpi=110)
    plt.close(figure)
