"""Turn a benchmark run into the markdown table and the chart."""

from __future__ import annotations

from operator import ge, le, lt
from pathlib import Path
from typing import Any

TARGETS = {"fastest": 1.3, "naive": 3.5, "floor": 1.15, "rss_mb": 120.0, "two_cores": 1.8,
           "queue_cpu": 1.10, "queue_direct": 0.95}


def verdicts(results: dict[str, Any]) -> list[tuple[str, float, str, bool]]:
    """(what, measured, target, met) for every target (issues 5 and 13)."""
    single = results["single_core"]
    ours = single["photopipe"]["median_images_per_s"]
    fastest = max(single[n]["median_images_per_s"] for n in ("pyvips", "naive"))
    floor_ms = single["floor_cpu_ms_per_image"]  # measured beside photopipe, same process
    ours_ms = single["photopipe"]["cpu_ms_per_image"]
    queue = results["queue"]
    rss = max(single["photopipe"]["peak_rss_mb"], results["two_cores"]["peak_rss_mb"],
              queue["worker_peak_rss_mb"])
    rows = [
        ("photopipe / fastest contender", ours / fastest, "fastest", ge),
        ("photopipe / naive", ours / single["naive"]["median_images_per_s"], "naive", ge),
        ("photopipe time / floor sum", ours_ms / floor_ms, "floor", le),
        ("peak RSS per process (bench and Celery workers), MB", rss, "rss_mb", lt),
        ("two processes / one", results["two_cores"]["images_per_s"] / ours, "two_cores",
         ge),
        ("CPU of photopipe's processes per photo through the queue / render() alone",
         queue["cpu_ms_per_photo"]["photopipe"] / queue["render_cpu_ms"], "queue_cpu", le),
        ("through the queue / the same jobs without a broker",
         queue["photos_per_s"] / queue["without_broker"]["photos_per_s"], "queue_direct",
         ge),
    ]
    out = []
    for what, value, key, check in rows:
        target = TARGETS[key]
        sign = {ge: ">=", le: "<=", lt: "<"}[check]
        out.append((what, value, f"{sign} {target:g}{'' if key == 'rss_mb' else 'x'}",
                    bool(check(value, target))))
    return out


TUNING = [
    "", "How each contender was tuned (each the fastest honest version of itself, all writing "
    "the same five files: progressive JPEG q85 4:2:0, WebP q80 method 4, no metadata):", "",
    "- photopipe: `pipeline.render` as the workers run it: JPEG draft decode at the largest "
    "power-of-two scale that covers the ladder, one resize to the working size, orientation, "
    "the look as one pass of the fused kernel (exact), the smaller renditions cascaded.",
    "- pyvips: shrink-on-load at the largest power of two that still covers w1080, `autorot`, "
    "one lanczos3 `resize` to w1080, the look as `maplut` + `recomb` (photopipe's compiled "
    "table and matrix: exact, no cube), each rendition held in memory (`copy_memory`) and "
    "the next resized from it; `VIPS_CONCURRENCY=1`.",
    "- naive: stock Pillow and pilgram: a full decode, every rendition resized from full size "
    "with LANCZOS and given the look.",
]


def markdown(results: dict[str, Any]) -> str:
    lines = [f"# photopipe end to end ({results['runs']} runs each)", "",
             f"Workload: {results['workload']['size']}, sha256 "
             f"`{results['workload']['sha256']}`; every image gets the `default` ladder "
             "(w1080 JPEG + WebP, w640, w320, sq150) and the clarendon look.", ""]
    lines += _one_core(results["single_core"]) + TUNING + _stages(results["single_core"])
    if "corpus" in results:
        corpus = results["corpus"]
        lines += ["", f"## The {results['workload']['corpus_files']} real photos of "
                  "shared/photos/real (one core, images/s)", "",
                  " | ".join(f"{n} {corpus[n]['median_images_per_s']:.1f}"
                             for n in ("photopipe", "pyvips", "naive"))]
    lines += [*_queue(results), "", "## Targets", "", "| what | measured | target | |",
              "| --- | ---: | --- | --- |"]
    for what, value, target, met in verdicts(results):
        lines.append(f"| {what} | {value:.3f} | {target} | {'met' if met else 'MISSED'} |")
    single = results["single_core"]
    lines += ["", f"Machine: {results['machine']}", "",
              f"Versions: pyvips {single['pyvips'].get('versions')}, "
              f"naive {single['naive'].get('versions')}", ""]
    return "\n".join(lines)


def _one_core(single: dict[str, Any]) -> list[str]:
    lines = ["## One core", "",
             "| contender | images/s (median) | images/s (best) | CPU ms/image | peak RSS MB |",
             "| --- | ---: | ---: | ---: | ---: |"]
    for name in ("photopipe", "pyvips", "naive"):
        r = single[name]
        lines.append(f"| {name} | {r['median_images_per_s']:.2f} | {r['best_images_per_s']:.2f}"
                     f" | {r['cpu_ms_per_image']:.1f} | {r['peak_rss_mb']:.0f} |")
    return lines


def _stages(single: dict[str, Any]) -> list[str]:
    floor = single["floor"]["stages"]
    lines = ["", "## Where photopipe's time goes (CPU ms per image)", "",
             "| stage | photopipe | floor |", "| --- | ---: | ---: |"]
    lines += [f"| {stage} | {1000 * seconds:.1f} | |"
              for stage, seconds in single["stages"]["stages"].items()]
    lines += [f"| floor: {stage} | | {1000 * seconds:.1f} |" for stage, seconds in floor.items()]
    lines.append(f"| total | {single['photopipe']['cpu_ms_per_image']:.1f} | "
                 f"{1000 * sum(floor.values()):.1f} |")
    note = ("Stages are measured apart, in their own processes; the ratio to the floor below "
            "uses the floor measured in photopipe's own process, between its runs: "
            f"{single['floor_cpu_ms_per_image']:.1f} ms.")
    return [*lines, "", note]


def _queue(results: dict[str, Any]) -> list[str]:
    queue, direct = results["queue"], results["queue"]["without_broker"]
    two = results["two_cores"]["images_per_s"]
    lines = ["", "## Two cores and the queue", "",
             "| run (two processes, two cores) | photos/s | / render only |",
             "| --- | ---: | ---: |",
             f"| render() only, in-process | {two:.2f} | 1.00 |",
             f"| jobs on S3 (moto) + PostgreSQL, no broker | {direct['photos_per_s']:.2f} | "
             f"{direct['photos_per_s'] / two:.2f} |",
             f"| through RabbitMQ + two Celery workers | {queue['photos_per_s']:.2f} | "
             f"{queue['photos_per_s'] / two:.2f} |", "",
             f"Where the CPU goes, ms per photo ({queue['photos']} photos per run; photopipe = "
             "the processes doing the jobs, idle = both cores' idle time):", "",
             "| role | no broker | through the queue |", "| --- | ---: | ---: |"]
    roles = dict.fromkeys([*queue["cpu_ms_per_photo"], *direct["cpu_ms_per_photo"]])
    for role in roles:
        lines.append(f"| {role} | {direct['cpu_ms_per_photo'].get(role, 0):.1f} | "
                     f"{queue['cpu_ms_per_photo'].get(role, 0):.1f} |")
    return [*lines, "",
            f"One job alone takes {queue['job_ms']:.0f} ms, of which render() "
            f"{queue['render_ms']:.0f} ms ({queue['render_cpu_ms']:.0f} ms of CPU, measured "
            "right after the queue run: what the CPU through the queue is compared with) and "
            "S3 + PostgreSQL "
            f"{queue['storage_and_database_ms']:.0f} ms (mostly waiting on moto). Peak RSS of a "
            f"Celery worker process: {queue['worker_peak_rss_mb']:.0f} MB."]


def chart(results: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    single = results["single_core"]
    names = ["photopipe", "pyvips", "naive"]
    values = [single[n]["median_images_per_s"] for n in names]
    floor_rate = 1000 / single["floor_cpu_ms_per_image"]
    figure, axis = plt.subplots(figsize=(7, 3.5))
    axis.barh([*names, "floor"], [*values, floor_rate], color=["#2b6", "#68c", "#c86", "#aaa"])
    axis.set_xlabel("images per second, one core (12 MP upload, default ladder + clarendon)")
    for index, value in enumerate([*values, floor_rate]):
        axis.text(value, index, f" {value:.2f}", va="center")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
