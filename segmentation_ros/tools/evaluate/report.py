"""The report as text: :func:`format_report` (per-class and overall rows, then notes)."""

from __future__ import annotations

__all__ = ["format_report", "percent"]


def percent(value: float | None) -> str:
    """A fraction as the reports print it: ``0.8123`` -> ``"81.2"``; None (undefined) -> ``"-"``."""
    return "-" if value is None else f"{100.0 * value:.1f}"


def format_report(report: dict) -> str:
    """The report as a text table: one row per class, then all / things / stuff; percentages."""
    sem, inst, pan = report.get("semantic"), report.get("instance"), report.get("panoptic")
    columns: list[str] = []
    if sem:
        columns += ["IoU", "Acc"]
    if inst:
        columns += ["AP", "AP50", "boxAP"]
    if pan:
        columns += ["PQ", "SQ", "RQ"]
    names: dict[str, bool] = {}
    for part in (sem, pan):
        for name, row in (part or {}).get("per_class", {}).items():
            names.setdefault(name, row["isthing"])
    for name in (inst or {}).get("segm", {}).get("per_class", {}):
        names.setdefault(name, True)
    width = max([len(n) for n in names] + [10])
    lines = [f"{'class':{width}} {'kind':5} " + " ".join(f"{c:>6}" for c in columns)]
    lines.append("-" * len(lines[0]))

    def row(label: str, kind: str, cells: list[str]) -> str:
        return f"{label:{width}} {kind:5} " + " ".join(f"{c:>6}" for c in cells)

    for name, isthing in names.items():
        cells = []
        if sem:
            r = sem["per_class"].get(name, {})
            cells += [percent(r.get("iou")), percent(r.get("accuracy"))]
        if inst:
            segm = inst["segm"]["per_class"].get(name, {})
            box = inst["bbox"]["per_class"].get(name, {})
            cells += [percent(segm.get("ap")), percent(segm.get("ap50")), percent(box.get("ap"))]
        if pan:
            r = pan["per_class"].get(name, {})
            cells += [percent(r.get("pq")), percent(r.get("sq")), percent(r.get("rq"))]
        lines.append(row(name, "thing" if isthing else "stuff", cells))
    lines.append("-" * len(lines[0]))
    for label, sem_key, pan_key in (
        ("all", "miou", "all"),
        ("things", "miou_things", "things"),
        ("stuff", "miou_stuff", "stuff"),
    ):
        cells = []
        if sem:
            cells += [percent(sem[sem_key]), percent(sem["mean_accuracy"]) if label == "all" else "-"]
        if inst:
            if label == "stuff":
                cells += ["-", "-", "-"]
            else:
                cells += [percent(inst["segm"]["ap"]), percent(inst["segm"]["ap50"]), percent(inst["bbox"]["ap"])]
        if pan:
            p = pan[pan_key]
            cells += [percent(p["pq"]), percent(p["sq"]), percent(p["rq"])]
        lines.append(row(label, "", cells))
    notes = []
    data = report.get("data", {})
    notes.append(
        f"{data.get('images', '?')} images ({', '.join(data.get('resolutions', {}))}), label set {data.get('label_set')}"
    )
    if sem:
        notes.append(
            f"semantic: mIoU {percent(sem['miou'])}, pixel accuracy {percent(sem['pixel_accuracy'])} over "
            f"{sem['pixels']} pixels; void id {sem['void_id']} ignored"
        )
    if inst:
        notes.append(
            f"instance: COCO AP@[.5:.95] {percent(inst['segm']['ap'])} (AP75 {percent(inst['segm']['ap75'])}), "
            f"box AP {percent(inst['bbox']['ap'])}; {inst['predictions']} detections, {inst['gt_instances']} "
            f"ground-truth instances; masks: {inst['mask_source']}"
        )
    if pan:
        notes.append(f"panoptic: PQ {percent(pan['all']['pq'])} over {pan['all']['n']} classes")
    timing = report.get("timing", {})
    if timing:
        notes.append(
            f"wall time {timing['wall_time_s']:.1f} s, inference {timing['inference_time_s']:.1f} s "
            f"({timing['images_per_second'] or 0:.1f} images/s)"
        )
    return "\n".join(lines + [""] + notes)
