"""Output: a report as plain-text tables (the terminal) and as Markdown tables (BENCHMARKS.md)."""

from __future__ import annotations

from typing import Any


def _rows(report: dict[str, Any]) -> list[list[str]]:
    rows = []
    for c in report["cases"]:
        for name, v in c["variants"].items():
            over = c["ratios"]["overhead"].get(name)
            naive = c["ratios"]["speedup_vs_naive"].get(name)
            multi = c["ratios"]["multicam_speedup"].get(name)
            vs_torch = c["ratios"].get("runtime_speedup", {}).get(name)
            rows.append(
                [
                    c["workload"],
                    f"{c['width']}x{c['height']}",
                    str(c["batch"]),
                    name,
                    f"{v['throughput_fps']:.2f}",
                    f"{v['latency_ms']['p50']:.1f}",
                    f"{v['latency_ms']['p99']:.1f}",
                    "-" if v["peak_gpu_mb"] is None else f"{v['peak_gpu_mb']:.0f}",
                    f"{v['peak_host_mb']:.0f}",
                    "-" if v["detections_per_frame"] is None else f"{v['detections_per_frame']:.1f}",
                    "-" if over is None else f"{over:.3f}",
                    "-" if naive is None else f"{naive:.2f}x",
                    "-" if multi is None else f"{multi:.2f}x",
                    "-" if vs_torch is None else f"{vs_torch:.2f}x",
                ]
            )
    return rows


_HEADER = ["workload", "size", "cams", "variant", "fps", "p50 ms", "p99 ms", "GPU MB", "host MB", "det/frame",
           "overhead", "vs naive", "multicam", "vs torch"]  # fmt: skip


def _target_lines(report: dict[str, Any]) -> list[str]:
    lines = []
    for t in report["targets"]:
        status = {True: "PASS", False: "FAIL", None: "----"}[t["passed"]]
        value = "-" if t["value"] is None else f"{t['value']:g}"
        extra = f" ({t['variant']})" if t["variant"] else ""
        note = f"  [{t['note']}]" if t["note"] else ""
        lines.append(f"{status}  {t['device']:4}  {t['target']}: {t['case']} = {value}{extra}{note}")
    return lines


def _continuity(tracking: dict[str, Any]) -> str:
    value = tracking["id_continuity"]
    return "-" if value is None else f"{value:.4f}"


def _depth_cells(depth: dict[str, Any]) -> list[str]:
    v = depth["variants"]

    def ms(name: str) -> str:
        return f"{v[name]['latency_ms']['p50']:.1f}"

    def pct(x: float | None) -> str:
        return "-" if x is None else f"{x:+.1%}"

    return [
        f"{depth['width']}x{depth['height']}",
        ms("panoptic"),
        ms("panoptic_depth"),
        ms("panoptic_depth_all_3d"),
        pct(depth["added_fraction"]),
        pct(depth["added_fraction_all_3d"]),
        str(depth["objects_3d"]),
        str(depth["points"]),
    ]


def _depth_line(depth: dict[str, Any]) -> str:
    size, base, fused, full, added, added_all, objects, points = _depth_cells(depth)
    return (
        f"{size}: panoptic {base} ms, with depth {fused} ms ({added}), with points and markers {full} ms "
        f"({added_all}); {objects} 3D objects, {points} points"
    )


def format_table(report: dict[str, Any]) -> str:
    """The report as plain-text tables: cases, mask paste, tracking, targets."""
    rows = _rows(report)
    widths = [max(len(r[i]) for r in [_HEADER, *rows]) for i in range(len(_HEADER))]

    def line(row: list[str]) -> str:
        cells = zip(row, widths, strict=True)
        return "  ".join(s.ljust(w) if i < 4 else s.rjust(w) for i, (s, w) in enumerate(cells))

    m = report["machine"]
    out = [
        f"device {m['device']} ({m['gpu'] or m['cpu']}), torch {m['torch']}, {m['cpu_cores']} cores, "
        f"{m['torch_threads']} threads, load {m.get('load_average_start')}",
        line(_HEADER),
        line(["-" * w for w in widths]),
    ]
    out += [line(r) for r in rows]
    out.append("")
    out.append("mask paste (torchvision paste_masks_in_image vs batched paste_masks)")
    for p in report["paste"]:
        out.append(
            f"  {p['width']}x{p['height']}, {p['detections']} detections: torchvision {p['torchvision_ms']:.2f} ms, "
            f"ours {p['ours_ms']:.2f} ms, speedup {p['paste_speedup']:.1f}x, pixel agreement {p['pixel_agreement']:.4f}"
        )
    tracking = report.get("tracking")
    if tracking is not None:
        out.append("")
        out.append("tracking (Tracker.update + apply_track_ids per frame, CPU)")
        out.append(
            f"  {tracking['width']}x{tracking['height']}, {tracking['detections']} detections: "
            f"p50 {tracking['latency_ms']['p50']:.3f} ms, p99 {tracking['latency_ms']['p99']:.3f} ms, "
            f"id continuity {_continuity(tracking)}"
        )
    depth = report.get("depth")
    if depth is not None:
        out.append("")
        out.append("depth fusion (node core, demo panoptic models, median frame latency)")
        out.append("  " + _depth_line(depth))
    out.append("")
    out.append("targets")
    out += ["  " + s for s in _target_lines(report)]
    return "\n".join(out)


def format_markdown(report: dict[str, Any]) -> str:
    """The cases, mask paste, tracking and targets as Markdown tables (for BENCHMARKS.md)."""
    out = ["| " + " | ".join(_HEADER) + " |", "|" + "|".join("---" for _ in _HEADER) + "|"]
    out += ["| " + " | ".join(r) + " |" for r in _rows(report)]
    out += [
        "",
        "| mask paste | detections | torchvision ms | ours ms | paste_speedup | pixel agreement |",
        "|---|---|---|---|---|---|",
    ]
    for p in report["paste"]:
        out.append(
            f"| {p['width']}x{p['height']} | {p['detections']} | {p['torchvision_ms']:.2f} | {p['ours_ms']:.2f} | "
            f"{p['paste_speedup']:.1f}x | {p['pixel_agreement']:.4f} |"
        )
    tracking = report.get("tracking")
    if tracking is not None:
        out += [
            "",
            "| tracking | detections | p50 ms | p99 ms | id continuity |",
            "|---|---|---|---|---|",
            f"| {tracking['width']}x{tracking['height']} | {tracking['detections']} | "
            f"{tracking['latency_ms']['p50']:.3f} | {tracking['latency_ms']['p99']:.3f} | {_continuity(tracking)} |",
        ]
    depth = report.get("depth")
    if depth is not None:
        out += [
            "",
            "| depth fusion | panoptic ms | + depth ms | + all 3D ms | added | added, all 3D | 3D objects | points |",
            "|---|---|---|---|---|---|---|---|",
            "| " + " | ".join(_depth_cells(depth)) + " |",
        ]
    out += [
        "",
        "| result | device | target | case | value | variant | note |",
        "|---|---|---|---|---|---|---|",
    ]
    for t in report["targets"]:
        status = {True: "PASS", False: "FAIL", None: "not judged"}[t["passed"]]
        value = "-" if t["value"] is None else f"{t['value']:g}"
        out.append(
            f"| {status} | {t['device']} | {t['target']} | {t['case']} | {value} | {t['variant']} | {t['note']} |"
        )
    return "\n".join(out)
