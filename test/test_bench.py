"""``segmentation-ros bench`` on tiny inputs: the report's structure and ratios, never its speed.

The demo models with random weights (nothing is downloaded) at 40x30 keep this to seconds; the
figures themselves are meaningless here, so no test compares a time with a threshold.
"""

from __future__ import annotations

import copy
import json
import math
import os
from pathlib import Path
from typing import Any

import pytest
import torch

from segmentation_ros.engine.registry import get_model_entry
from segmentation_ros.tools import bench
from segmentation_ros.tools.bench import command as bench_command
from segmentation_ros.tools.bench import report as bench_report
from segmentation_ros.tools.cli import main

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # conftest.py

SEMANTIC = "semantic:shapes_lraspp"
INSTANCE = "instance:shapes_maskrcnn"
PANOPTIC = "panoptic:shapes_lraspp+shapes_maskrcnn"


def _case(workload: str, batch: int = 1, width: int = 40, height: int = 30) -> bench.CaseSpec:
    return bench.CaseSpec(bench.parse_workload(workload), width, height, batch)


def _tiny(device: str, cases: list[bench.CaseSpec], **overrides: Any) -> bench.BenchOptions:
    settings: dict[str, Any] = {
        "device": device,
        "cases": cases,
        "warmup": 1,
        "repeats": 2,
        "iters": 1,
        "instance_min_size": 48,  # differs from the 30-pixel frames: the native variants run too
        "max_detections": 3,
        "paste_detections": 100,
        "depth": False,  # the depth case runs the demo models at 640x480: once, in the report fixture
        **overrides,
    }
    return bench.BenchOptions(**settings)


@pytest.fixture(scope="module")
def report() -> dict[str, Any]:
    cases = [_case(SEMANTIC), _case(SEMANTIC, batch=2), _case(INSTANCE), _case(PANOPTIC, batch=2)]
    return bench.run_benchmark(_tiny("cpu", cases, depth=True))


def _positive(value: object) -> bool:
    return isinstance(value, float) and math.isfinite(value) and value > 0


def test_report_is_json(report: dict[str, Any]) -> None:
    assert json.loads(json.dumps(report)) == report
    machine = report["machine"]
    for key in ("cpu", "cpu_cores", "torch", "torchvision", "date_utc", "device", "load_average_start"):
        assert key in machine
    assert machine["device_type"] == "cpu"
    assert report["options"]["precisions"] == ["fp32"]
    assert "forward_<p>" in report["definitions"]


def test_every_case_has_its_variants_and_ratios(report: dict[str, Any]) -> None:
    assert [(c["workload"], c["batch"]) for c in report["cases"]] == [
        (SEMANTIC, 1),
        (SEMANTIC, 2),
        (INSTANCE, 1),
        (PANOPTIC, 2),
    ]
    for case in report["cases"]:
        names = set(case["variants"])
        assert {"naive", "ours_fp32", "ours_fp32_no_visual", "forward_fp32"} <= names
        assert ("ours_fp32_separate" in names) == (case["batch"] > 1)
        assert ("ours_fp32_native" in names) == (case["task"] != "semantic")
        assert _positive(case["overhead_ratio"]) and _positive(case["overhead_ratio_no_visual"])
        assert _positive(case["speedup_vs_naive"])
        if case["batch"] > 1:
            assert _positive(case["multicam_speedup"])
        else:
            assert case["multicam_speedup"] is None
        for group in case["ratios"].values():
            assert all(_positive(v) for v in group.values())
        for name, v in case["variants"].items():
            assert _positive(v["throughput_fps"]) and _positive(v["step_ms"]), name
            assert 0 < v["latency_ms"]["p50"] <= v["latency_ms"]["p99"]
            assert v["latency_ms"]["samples"] == 2
            assert v["frames_per_step"] == case["batch"]
            assert v["peak_gpu_mb"] is None and v["peak_host_mb"] > 0
            if case["task"] == "semantic":
                assert v["detections_per_frame"] is None
            else:
                assert v["detections_per_frame"] >= 0


def test_ratios_follow_their_definitions(report: dict[str, Any]) -> None:
    """Each ratio is the quotient of the two variants' median step times, rounded to 3 places."""
    for case in report["cases"]:
        step = {name: v["step_ms"] for name, v in case["variants"].items()}

        def ratio(a: str, b: str, step: dict[str, float] = step) -> float:
            return round(step[a] / step[b], 3)

        ours = ["ours_fp32", "ours_fp32_no_visual"] + (
            ["ours_fp32_native"] if "ours_fp32_native" in step else []
        )
        forward = {
            name: "forward_fp32_native" if name.endswith("_native") else "forward_fp32" for name in ours
        }
        assert case["overhead_ratio"] == ratio("ours_fp32", "forward_fp32")
        assert case["overhead_ratio_no_visual"] == ratio("ours_fp32_no_visual", "forward_fp32")
        assert case["speedup_vs_naive"] == ratio("naive", "ours_fp32")
        assert case["ratios"]["overhead"] == {name: ratio(name, forward[name]) for name in ours}
        assert case["ratios"]["speedup_vs_naive"] == {name: ratio("naive", name) for name in ours}
        if case["batch"] > 1:
            assert case["multicam_speedup"] == ratio("ours_fp32_separate", "ours_fp32")
            assert case["ratios"]["multicam_speedup"] == {"ours_fp32": case["multicam_speedup"]}
        else:
            assert case["ratios"]["multicam_speedup"] == {}


def test_network_input_sizes(report: dict[str, Any]) -> None:
    semantic, _, instance, panoptic = report["cases"]
    # semantic_input_size -1: the demo model's own input size, for ours, forward and naive alike.
    size = get_model_entry("shapes_lraspp").input_size
    expected = [size, round(40 * size / 30)] if size else [30, 40]
    assert semantic["network_input"] == {"semantic": expected}
    assert semantic["instance_min_size"] is None
    # Mask R-CNN: short side 48 for naive and ours, and the labelled native case at 30x40.
    assert instance["instance_min_size"] == 48
    assert instance["network_input"]["instance"] == [48, 64]
    assert instance["network_input"]["instance_native"] == [30, 40]
    assert panoptic["network_input"]["semantic"] == expected


def test_paste_comparison(report: dict[str, Any]) -> None:
    (paste,) = report["paste"]
    assert (paste["width"], paste["height"], paste["detections"]) == (40, 30, 100)
    assert (
        _positive(paste["paste_speedup"])
        and _positive(paste["ours_ms"])
        and _positive(paste["torchvision_ms"])
    )
    assert paste["paste_speedup"] == round(paste["torchvision_ms"] / paste["ours_ms"], 2)
    assert 0.9 < paste["pixel_agreement"] <= 1.0  # the same masks, up to sampling at the edges


def test_tracking_case(report: dict[str, Any]) -> None:
    """Tracker.update + apply_track_ids per frame at 100 moving boxes on 640x480, whatever the
    cases' sizes; the synthetic motion is trackable, so the timed frames continue tracks."""
    tracking = report["tracking"]
    assert (tracking["width"], tracking["height"], tracking["detections"]) == (640, 480, 100)
    assert report["options"]["tracking_detections"] == 100 and "tracking" in report["definitions"]
    latency = tracking["latency_ms"]
    assert 0 < latency["p50"] <= latency["p99"] and _positive(tracking["step_ms"])
    assert latency["samples"] == 2  # repeats x iters, as every variant
    assert tracking["id_continuity"] > 0.99
    (target,) = [t for t in report["targets"] if "tracking" in t["target"]]
    assert (target["device"], target["case"], target["value"]) == ("cpu", "640x480", latency["p50"])
    assert target["passed"] == (latency["p50"] <= bench.TRACKING_TARGET_MS)
    table, markdown = bench.format_table(report), bench.format_markdown(report)
    assert f"p50 {latency['p50']:.3f} ms" in table
    assert f"| 640x480 | 100 | {latency['p50']:.3f} | {latency['p99']:.3f} |" in markdown


def test_depth_case(report: dict[str, Any]) -> None:
    """The node core with the demo panoptic models on a rendered 640x480 RGB-D frame: without depth,
    with depth (lazy 3D outputs off) and with every 3D output; the fraction depth adds is judged."""
    depth = report["depth"]
    assert (depth["width"], depth["height"]) == (640, 480) and "depth" in report["definitions"]
    v = depth["variants"]
    assert set(v) == {"panoptic", "panoptic_depth", "panoptic_depth_all_3d"}
    assert all(_positive(float(x["latency_ms"]["p50"])) for x in v.values())
    assert depth["objects_3d"] > 0 and depth["points"] > 1000  # the demo models find the rendered objects
    base = v["panoptic"]["latency_ms"]["p50"]
    assert depth["added_fraction"] == round(v["panoptic_depth"]["latency_ms"]["p50"] / base - 1, 4)
    (target,) = [t for t in report["targets"] if "depth fusion" in t["target"]]
    assert target["value"] == depth["added_fraction"]
    assert target["passed"] == (depth["added_fraction"] <= bench.DEPTH_TARGET_FRACTION)
    assert "depth fusion" in bench.format_table(report) and "| depth fusion |" in bench.format_markdown(report)


@pytest.mark.parametrize(
    "device, detections, p50, passed",
    [("cpu", 100, 2.0, True), ("cpu", 100, 2.01, False), ("cpu", 50, 0.5, None), ("cuda", 100, 0.5, None)],
    ids=["at_threshold", "just_beyond", "other_count", "cuda_run"],
)
def test_tracking_target(device: str, detections: int, p50: float, passed: bool | None) -> None:
    tracking = {"width": 640, "height": 480, "detections": detections, "latency_ms": {"p50": p50, "p99": 9.0}}
    report = {"machine": {"device_type": device}, "cases": [], "paste": [], "tracking": tracking}
    (target,) = [t for t in bench.judge_targets(report) if "tracking" in t["target"]]
    assert target["passed"] is passed and target["device"] == "cpu"
    assert target["value"] == (p50 if detections == 100 else None)
    assert target["note"] == (
        "judged on the CPU only" if device == "cuda" else "" if detections == 100 else "not measured"
    )


def test_targets_are_judged_for_the_device_measured(report: dict[str, Any]) -> None:
    targets = report["targets"]
    gpu = [t for t in targets if t["device"] == "cuda"]
    cpu = [t for t in targets if t["device"] == "cpu"]
    assert gpu and all(t["passed"] is None and t["note"] == "needs CUDA" for t in gpu)
    assert len([t for t in cpu if "overhead" in t["target"]]) == len(report["cases"])
    assert any("paste" in t["target"] for t in cpu)
    assert all(isinstance(t["passed"], bool) for t in cpu)
    # the CPU verdicts judge the reported figures against the targets' thresholds
    overhead = [t for t in cpu if t["target"] == "overhead ratio <= 1.10"]
    assert [t["case"] for t in overhead] == [
        f"{c['workload']} {c['width']}x{c['height']} b{c['batch']}" for c in report["cases"]
    ]
    for t, case in zip(overhead, report["cases"], strict=True):
        assert (t["value"], t["variant"]) == (case["overhead_ratio"], "ours_fp32")
        assert t["passed"] == (t["value"] <= 1.10)
    (paste,) = [t for t in cpu if "paste" in t["target"]]
    assert paste["value"] == report["paste"][0]["paste_speedup"]
    assert paste["passed"] == (paste["value"] >= 10.0)


def test_tables_name_every_case(report: dict[str, Any]) -> None:
    table, markdown = bench.format_table(report), bench.format_markdown(report)
    for case in report["cases"]:
        assert case["workload"] in table and case["workload"] in markdown
    assert "needs CUDA" in table and "paste_speedup" in markdown
    assert markdown.count("\n|") >= sum(len(c["variants"]) for c in report["cases"])


def test_command_line_writes_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out, md = tmp_path / "bench.json", tmp_path / "bench.md"
    argv = ["bench", "--device", "cpu", "--workload", SEMANTIC, "--size", "32x24", "--batch", "1"]
    argv += ["--warmup", "0", "--repeats", "1", "--iters", "1", "--paste-detections", "4"]
    argv += ["--no-depth"]
    assert main([*argv, "--tracking-detections", "20", "--json", str(out), "--markdown", str(md)]) == 0
    report = json.loads(out.read_text())
    (case,) = report["cases"]
    assert (case["workload"], case["width"], case["height"], case["batch"]) == (SEMANTIC, 32, 24, 1)
    assert _positive(case["overhead_ratio"])
    assert report["paste"][0]["detections"] == 4
    assert report["tracking"]["detections"] == 20 and report["tracking"]["latency_ms"]["samples"] == 1
    assert "depth" not in report  # --no-depth
    assert "ours_fp32" in capsys.readouterr().out and md.read_text().startswith("| workload")


def test_command_line_writes_reports_atomically(
    report: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """--json and --markdown go through imageio's atomic writers: the report of the run, and an
    interrupted write leaves the previous file whole and no temporary file behind."""
    monkeypatch.setattr(bench_command, "run_benchmark", lambda options, progress=None: copy.deepcopy(report))
    out, md = tmp_path / "bench.json", tmp_path / "bench.md"
    argv = ["bench", "--device", "cpu", "--json", str(out), "--markdown", str(md)]
    assert main(argv) == 0
    assert json.loads(out.read_text()) == report
    assert md.read_text() == bench.format_markdown(report) + "\n"

    def interrupted(src: object, dst: object) -> None:
        raise OSError("interrupted")

    out.write_text("old json")
    md.write_text("old markdown")
    monkeypatch.setattr(os, "replace", interrupted)
    with pytest.raises(OSError, match="interrupted"):
        main(argv)
    assert out.read_text() == "old json" and md.read_text() == "old markdown"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bench.json", "bench.md"]


def _gpu_case(
    workload: str, batch: int, passing: bool, width: int = 640, height: int = 480
) -> dict[str, Any]:
    """A hand-made CUDA case. The variant each target must judge carries a value just on the side
    of its threshold that ``passing`` says (at the threshold itself when passing); the variants it
    must not judge carry values on the other side, so judging the wrong one changes a verdict."""
    fps_target, _ = bench.FPS_TARGETS.get(workload, (100.0, None))
    fps = fps_target if passing else fps_target - 0.01
    p99 = 10.0 if passing else 10.01
    instance = workload != "deeplabv3"
    best = "ours_bf16_native" if instance else "ours_bf16"  # the fastest with every output

    def variant(name: str, step_ms: float) -> dict[str, Any]:
        judged = name == best
        return {
            "step_ms": step_ms,
            "throughput_fps": fps if judged else (fps_target / 2 if passing else fps_target * 10),
            "latency_ms": {"p50": 0.5, "p99": p99 if judged else (20.0 if passing else 1.0), "samples": 5},
        }

    steps = {"naive": 50.0, "ours_fp32": 3.0, "ours_fp32_no_visual": 0.5, "ours_bf16": 2.0}
    steps |= {"ours_bf16_no_visual": 0.4, "forward_fp32": 1.0, "forward_bf16": 0.9}
    if instance:
        steps |= {"ours_bf16_native": 1.5, "forward_bf16_native": 0.8}
    if batch > 1:
        steps |= {"ours_fp32_separate": 0.1, "ours_bf16_separate": 0.1}  # never the fastest "ours"
    ours = [n for n in steps if n.startswith("ours_") and not n.endswith("_separate")]
    overhead = 1.10 if passing else 1.11
    wrong_speed, wrong_overhead = (1.0, 5.0) if passing else (100.0, 1.0)
    return {
        "workload": workload,
        "width": width,
        "height": height,
        "batch": batch,
        "variants": {name: variant(name, ms) for name, ms in steps.items()},
        "overhead_ratio": overhead,
        "ratios": {
            # judged: every variant with all outputs; a _no_visual one never
            "overhead": {n: wrong_overhead if n.endswith("_no_visual") else overhead for n in ours},
            # judged: the fastest at the naive loop's resolution (ours_bf16), no other
            "speedup_vs_naive": {
                n: (5.0 if passing else 4.99) if n == "ours_bf16" else wrong_speed for n in ours
            },
            # judged: the best of the precisions
            "multicam_speedup": {"ours_fp32": 1.5, "ours_bf16": 2.0 if passing else 1.99}
            if batch > 1
            else {},
        },
    }


@pytest.mark.parametrize("passing", [True, False], ids=["at_thresholds", "just_beyond"])
def test_gpu_targets_on_a_cuda_report(passing: bool) -> None:
    cases = [_gpu_case(w, 1, passing) for w in ("deeplabv3", "maskrcnn", "panoptic")]
    cases += [_gpu_case("panoptic", 4, passing), _gpu_case("deeplabv3", 1, not passing, 1280, 720)]
    report = {
        "machine": {"device_type": "cuda"},
        "cases": cases,
        "paste": [{"width": 640, "height": 480, "detections": 100, "paste_speedup": 3.0}],
    }
    targets = bench.judge_targets(report)
    gpu = {
        (t["target"], t["case"], t["variant"]): (t["value"], t["passed"])
        for t in targets
        if t["device"] == "cuda"
    }
    assert len(gpu) == len([t for t in targets if t["device"] == "cuda"])  # no target judged twice
    assert all(t["note"] == "" for t in targets if t["device"] == "cuda")

    def side(value_passing: float, value_failing: float) -> tuple[float, bool]:
        return (value_passing, True) if passing else (value_failing, False)

    expected = {}
    for workload in ("deeplabv3", "maskrcnn", "panoptic"):
        case = f"{workload} 640x480 b1"
        best = "ours_bf16" if workload == "deeplabv3" else "ours_bf16_native"
        fps, p99 = bench.FPS_TARGETS[workload]
        expected[("end to end >= 5x the naive loop", case, "ours_bf16")] = side(5.0, 4.99)
        for variant in ["ours_fp32", "ours_bf16"] + ([] if workload == "deeplabv3" else ["ours_bf16_native"]):
            expected[("overhead ratio <= 1.10", case, variant)] = side(1.10, 1.11)
        expected[(f"{workload} end to end >= {fps:g} fps", case, best)] = side(fps, fps - 0.01)
        if p99 is not None:
            expected[(f"{workload} p99 latency <= {p99:g} ms", case, best)] = side(10.0, 10.01)
    expected[("4 cameras batched >= 2x four separate pipelines", "panoptic 640x480 b4", "ours_bf16")] = side(
        2.0, 1.99
    )
    assert gpu == expected  # the 1280x720 case is judged by no GPU target
    # CPU targets are not judged from a CUDA run
    cpu = [t for t in targets if t["device"] == "cpu"]
    assert len(cpu) == len(cases) + 1
    assert all(t["passed"] is None and t["note"] == "judged on the CPU only" for t in cpu)


def test_gpu_targets_without_their_cases_are_not_judged() -> None:
    report = {"machine": {"device_type": "cuda"}, "cases": [_gpu_case("deeplabv3", 1, True)], "paste": []}
    missing = {
        t["target"]: t for t in bench.judge_targets(report) if t["device"] == "cuda" and t["passed"] is None
    }
    assert set(missing) == {
        "maskrcnn end to end >= 150 fps",
        "panoptic end to end >= 100 fps",
        "4 cameras batched >= 2x four separate pipelines",
    }
    assert all(t["value"] is None and t["note"] == "not measured" for t in missing.values())


@pytest.mark.parametrize(
    "check, fail_one, code",
    [(True, True, 1), (True, False, 0), (False, True, 0)],
    ids=["check_fails", "check_passes", "no_check"],
)
def test_check_exits_1_when_a_target_fails(
    check: bool, fail_one: bool, code: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """--check: exit status 1 exactly when a target judged on this device fails."""
    real = bench.judge_targets

    def judge(report: dict[str, Any]) -> list[dict[str, Any]]:
        targets = real(report)
        judged = [t for t in targets if t["passed"] is not None]
        assert judged  # the CPU targets are judged on the CPU
        for k, t in enumerate(judged):
            t["passed"] = not (fail_one and k == len(judged) - 1)
        return targets

    monkeypatch.setattr(bench_report, "judge_targets", judge)
    out = tmp_path / "bench.json"
    argv = ["bench", "--device", "cpu", "--workload", SEMANTIC, "--size", "32x24", "--batch", "1"]
    argv += ["--warmup", "0", "--repeats", "1", "--iters", "1", "--paste-detections", "4", "--json", str(out)]
    assert main([*argv, "--no-depth", *(["--check"] if check else [])]) == code
    verdicts = [t["passed"] for t in json.loads(out.read_text())["targets"]]
    assert (False in verdicts) == fail_one  # the report says which target failed


def test_presets() -> None:
    quick = bench.quick_options("cpu")
    assert quick.instance_min_size == 0 and quick.precisions == ("fp32",)
    assert {c.workload.name for c in quick.cases} == {"lraspp", "maskrcnn", "demo"}
    full = bench.full_options("cpu")
    assert {c.workload.name for c in full.cases} == set(bench.WORKLOADS)
    assert {(c.width, c.height) for c in full.cases} == {(640, 480), (1280, 720)}
    assert {c.batch for c in full.cases} == {1, 4} and full.instance_min_size == 800


@pytest.mark.parametrize(
    "spec",
    ["nonsense", "semantic:", "instance:a+b", "panoptic:only_one", "tracking:x"],
)
def test_bad_workload_names_the_value(spec: str) -> None:
    with pytest.raises(ValueError, match="workload"):
        bench.parse_workload(spec)


def test_bad_options_are_refused() -> None:
    with pytest.raises(ValueError, match="needs CUDA"):
        bench.run_benchmark(_tiny("cpu", [_case(SEMANTIC)], precisions=("fp32", "bf16")))
    with pytest.raises(ValueError, match="repeats"):
        bench.run_benchmark(_tiny("cpu", [_case(SEMANTIC)], repeats=0))
    with pytest.raises(ValueError, match="no cases"):
        bench.run_benchmark(_tiny("cpu", []))
    with pytest.raises(ValueError, match="tracking_detections"):
        bench.run_benchmark(_tiny("cpu", [_case(SEMANTIC)], tracking_detections=0))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_reports_gpu_memory_and_both_precisions() -> None:
    result = bench.run_benchmark(_tiny("cuda", [_case(INSTANCE, batch=2)], precisions=("fp32", "bf16")))
    (case,) = result["cases"]
    assert {"ours_bf16", "forward_bf16", "ours_bf16_separate"} <= set(case["variants"])
    assert all(v["peak_gpu_mb"] > 0 for v in case["variants"].values())
    assert _positive(case["ratios"]["overhead"]["ours_bf16"])
    assert all(t["passed"] is None for t in result["targets"] if t["device"] == "cuda")  # no 640x480 case


def test_demo_workload_runs_the_shipped_trained_weights() -> None:
    """The demo preset keeps its own weights whatever --weights says: the trained demo models'
    files (nothing downloaded), so the naive loop and ours segment real borders and objects."""
    demo = bench.WORKLOADS["demo"]
    options = bench.BenchOptions(
        device="cpu",
        cases=[bench.CaseSpec(demo, 96, 72, 1)],
        warmup=0,
        repeats=1,
        iters=1,
        instance_min_size=0,
        paste_sizes=((32, 24),),
        paste_detections=2,
        weights="none",
        depth=False,
    )
    report = bench.run_benchmark(options)
    (case,) = report["cases"]
    assert case["weights"] == "DEFAULT" and case["models"] == ["shapes_lraspp", "shapes_maskrcnn"]
    assert _positive(case["overhead_ratio"])


# ---- runtime as a dimension ---------------------------------------------------------------------------------
def test_runtime_is_a_dimension(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """--runtime torch --runtime onnxruntime: every variant of ours and forward once per runtime, the
    ONNX Runtime ones named ..._ort, with runtime_speedup = the torch variant / its _ort twin."""
    monkeypatch.setenv("SEGMENTATION_ROS_ONNX_CACHE", str(tmp_path))  # not the user's cache
    options = _tiny("cpu", [_case(SEMANTIC)], runtimes=("torch", "onnxruntime"), semantic_input_size=0)
    report = bench.run_benchmark(options)
    (case,) = report["cases"]
    assert report["options"]["runtimes"] == ["torch", "onnxruntime"]
    assert "runtime_speedup" in report["definitions"]
    onnx = ["ours_fp32_ort", "ours_fp32_ort_no_visual", "forward_fp32_ort"]
    assert {"ours_fp32", "ours_fp32_no_visual", "forward_fp32", *onnx} <= set(case["variants"])
    step = {name: v["step_ms"] for name, v in case["variants"].items()}
    assert case["ratios"]["runtime_speedup"] == {
        name: round(step[name.replace("_ort", "")] / step[name], 3) for name in onnx
    }
    overhead = case["ratios"]["overhead"]["ours_fp32_ort"]
    assert overhead == round(step["ours_fp32_ort"] / step["forward_fp32_ort"], 3)
    assert list(tmp_path.glob("shapes_lraspp-semantic-1x3x30x40-*.onnx"))  # exported once, in the warm-up
    header = bench.format_table(report).splitlines()[1]
    assert header.rstrip().endswith("multicam  vs torch")
    assert not [t for t in report["targets"] if "onnxruntime" in t["target"]]  # the demo model is not judged


def _runtime_case(model: str, speedup: float, network: list[int]) -> dict[str, Any]:
    return {
        "workload": f"semantic:{model}",
        "task": "semantic",
        "models": [model],
        "width": 320,  # a 640x480 case would be judged by the GPU targets too
        "height": 240,
        "batch": 1,
        "network_input": {"semantic": network},
        "overhead_ratio": 1.0,
        "ratios": {
            "overhead": {"ours_fp32": 1.0},
            "runtime_speedup": {
                "ours_fp32_ort": speedup,
                "ours_fp32_ort_no_visual": 9.0,  # never judged: not every output
                "forward_fp32_ort": 9.0,  # never judged: not end to end
            },
        },
        "variants": {},
    }


@pytest.mark.parametrize(
    "model, speedup, network, device, passed",
    [
        ("lraspp_mobilenet_v3_large", 1.5, [240, 320], "cpu", True),
        ("deeplabv3_mobilenet_v3_large", 1.49, [240, 320], "cpu", False),
        ("lraspp_mobilenet_v3_large", 1.2, [168, 224], "cpu", "absent"),  # not at camera resolution
        ("deeplabv3_resnet50", 1.2, [240, 320], "cpu", "absent"),  # not a model the target names
        ("lraspp_mobilenet_v3_large", 1.2, [240, 320], "cuda", None),  # a CPU target
    ],
    ids=["at_threshold", "just_below", "resized", "other_model", "cuda_run"],
)
def test_runtime_target(model: str, speedup: float, network: list[int], device: str, passed: Any) -> None:
    case = _runtime_case(model, speedup, network)
    report = {"machine": {"device_type": device}, "cases": [case], "paste": []}
    judged = [t for t in bench.judge_targets(report) if "onnxruntime" in t["target"]]
    if passed == "absent":
        assert judged == []
        return
    (target,) = judged  # end to end, with every output: not _no_visual, not forward
    assert target["target"] == "onnxruntime end to end >= 1.5x torch eager (network at camera resolution)"
    assert (target["device"], target["variant"], target["passed"]) == ("cpu", "ours_fp32_ort", passed)
    assert target["case"] == f"{model} 320x240 b1" and target["value"] == speedup
    assert target["note"] == ("" if device == "cpu" else "judged on the CPU only")


def test_runtime_options(monkeypatch: pytest.MonkeyPatch) -> None:
    parser = bench_command.argparse.ArgumentParser()
    bench_command.add_subcommand(parser.add_subparsers())
    args = parser.parse_args(["bench", "--device", "cpu", "--runtime", "onnxruntime", "--runtime", "torch"])
    assert bench.options_from_args(args).runtimes == ("onnxruntime", "torch")
    assert bench.options_from_args(parser.parse_args(["bench", "--device", "cpu"])).runtimes == ("torch",)
    with pytest.raises(ValueError, match="runtimes must be one or more of"):
        bench.run_benchmark(_tiny("cpu", [_case(SEMANTIC)], runtimes=()))
    assert bench.RUNTIME_SPEEDUP_TARGET == 1.5 and "deeplabv3_mobilenet" in bench.WORKLOADS
