"""The report as text: :func:`format_report` (per-class and overall rows, then notes)."""

from __future__ import annotations


def _pct(value: float | None) -> str:
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
            cells += [_pct(r.get("iou")), _pct(r.get("accuracy"))]
        if inst:
            segm = inst["segm"]["per_class"].get(name, {})
            box = inst["bbox"]["per_class"].get(name, {})
            cells += [_pct(segm.get("ap")), _pct(segm.get("ap50")), _pct(box.get("ap"))]
        if pan:
            r = pan["per_class"].get(name, {})
            cells += [_pct(r.get("pq")), _pct(r.get("sq")), _pct(r.get("rq"))]
        lines.append(row(name, "thing" if isthing else "stuff", cells))
    lines.append("-" * len(lines[0]))
    for label, sem_key, pan_key in (
        ("all", "miou", "all"),
        ("things", "miou_things", "things"),
        ("stuff", "miou_stuff", "stuff"),
    ):
        cells = []
        if sem:
            cells += [_pct(sem[sem_key]), _pct(sem["mean_accuracy"]) if label == "all" else "-"]
        if inst:
            if label == "stuff":
                cells += ["-", "-", "-"]
            else:
                cells += [_pct(inst["segm"]["ap"]), _pct(inst["segm"]["ap50"]), _pct(inst["bbox"]["ap"])]
        if pan:
            p = pan[pan_key]
            cells += [_pct(p["pq"]), _pct(p["sq"]), _pct(p["rq"])]
        lines.append(row(label, "", cells))
    notes = []
    data = report.get("data", {})
    notes.append(
        f"{data.get('images', '?')} images ({', '.join(data.get('resolutions', {}))}), label set {data.get('label_set')}"
    )
    if sem:
        notes.append(
            f"semantic: mIoU {_pct(sem['miou'])}, pixel accuracy {_pct(sem['pixel_accuracy'])} over "
            f"{sem['pixels']} pixels; void id {sem['void_id']} ignored"
        )
    if inst:
        notes.append(
            f"instance: COCO AP@[.5:.95] {_pct(inst['segm']['ap'])} (AP75 {_pct(inst['segm']['ap75'])}), "
            f"box AP {_pct(inst['bbox']['ap'])}; {inst['predictions']} detections, {inst['gt_instances']} "
            f"ground-truth instances; masks: {inst['mask_source']}"
        )
    if pan:
        notes.append(f"panoptic: PQ {_pct(pan['all']['pq'])} over {pan['all']['n']} classes")
    timing = report.get("timing", {})
    if timing:
        notes.append(
            f"wall time {timing['wall_time_s']:.1f} s, inference {timing['inference_time_s']:.1f} s "
            f"({timing['images_per_second'] or 0:.1f} images/s)"
        )
    return "\n".join(lines + [""] + notes)
