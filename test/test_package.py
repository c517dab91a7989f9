"""Packaging checks that run without ROS: package.xml, installed files, params files, launch files.

Nothing here imports rclpy or launch: launch files are read with ``ast``, params files with PyYAML,
so a broken preset or a launch argument dropped by mistake shows up in plain ``pytest`` too.
"""

from __future__ import annotations

import ast
import glob
import os
import py_compile
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import yaml

from segmentation_ros.ros import launch_helpers

ROOT = Path(__file__).resolve().parents[1]

TASKS = ("semantic", "instance", "panoptic")

# segmentation_node's parameters and their ROS types, mirroring the descriptors in node.py.
# rclpy refuses a parameters-file value of another type (1 for a double, 0.5 for an integer).
STRING_PARAMETERS = {
    "task",
    "semantic_model",
    "instance_model",
    "semantic_weights",
    "instance_weights",
    "semantic_labels",
    "instance_labels",
    "device",
    "precision",
    "runtime",
}
DOUBLE_PARAMETERS = {
    "score_threshold",
    "mask_threshold",
    "overlap_threshold",
    "diagnostics_period",
    "track_buffer_s",
    "track_match_iou",
    "track_high_score",
    "depth_slop",
    "max_range",
}
INTEGER_PARAMETERS = {
    "stuff_area_threshold",
    "max_detections",
    "label_divisor",
    "instance_min_size",
    "instance_max_size",
    "semantic_input_size",
    "max_image_pixels",
    "point_stride",
    "depth_min_points",
}
BOOL_PARAMETERS = {"use_compressed", "autostart", "use_sim_time", "tracking", "depth", "depth_rescale"}
INTEGER_ARRAY_PARAMETERS = {"classes"}
STRING_ARRAY_PARAMETERS = {"cameras"}
PARAMETERS = (
    STRING_PARAMETERS
    | DOUBLE_PARAMETERS
    | INTEGER_PARAMETERS
    | BOOL_PARAMETERS
    | INTEGER_ARRAY_PARAMETERS
    | STRING_ARRAY_PARAMETERS
)
UNIT_INTERVAL = {"score_threshold", "mask_threshold", "overlap_threshold"}

LAUNCH_ARGUMENTS = {
    "segmentation.launch.py": {
        "task",
        "model",
        "weights",
        "device",
        "params_file",
        "namespace",
        "image",
        "depth",
        "depth_name",
        "use_sim_time",
        "rviz",
    },
    "multi_camera.launch.py": {
        "cameras",
        "image_name",
        "depth",
        "depth_name",
        "task",
        "params_file",
        "device",
        "namespace",
        "use_sim_time",
        "rviz",
    },
    "gazebo_demo.launch.py": {"world", "gui", "rviz", "device", "depth"},
}
CONFIGS = [f"config/{task}.yaml" for task in TASKS]
# config/segmentation.rviz's displays: topic -> display class.
RVIZ_DISPLAYS = {
    "/overlay": "rviz_default_plugins/Image",
    "/semantic/color": "rviz_default_plugins/Image",
    "/panoptic/color": "rviz_default_plugins/Image",
    "/instances/ids": "rviz_default_plugins/Image",
    "/points": "rviz_default_plugins/PointCloud2",
    "/markers": "rviz_default_plugins/MarkerArray",
}


def _setup_call() -> ast.Call:
    tree = ast.parse((ROOT / "setup.py").read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "setup":
            return node
    raise AssertionError("setup.py has no setup(...) call")


def _setup_keyword(name: str) -> ast.expr:
    for keyword in _setup_call().keywords:
        if keyword.arg == name:
            return keyword.value
    raise AssertionError(f"setup.py: setup() has no {name}= argument")


def _glob_patterns() -> list[str]:
    """The glob() patterns in setup.py's data_files, repo-relative."""
    patterns = [
        node.args[0].value
        for node in ast.walk(_setup_keyword("data_files"))
        if isinstance(node, ast.Call)
        and getattr(node.func, "id", None) == "glob"
        and isinstance(node.args[0], ast.Constant)
    ]
    assert patterns, "setup.py data_files uses no glob() patterns"
    return patterns


def _matches(pattern: str) -> set[str]:
    return {os.path.relpath(path, ROOT) for path in glob.glob(str(ROOT / pattern))}


def _installed_files() -> set[str]:
    """Repo-relative paths matched by the glob() patterns in setup.py's data_files."""
    return set().union(*(_matches(pattern) for pattern in _glob_patterns()))


def _params(config: str) -> dict:
    data = yaml.safe_load((ROOT / config).read_text())
    assert isinstance(data, dict) and list(data) == ["/**"], (
        f"{config}: expected one '/**' section (rclpy matches only exact node names and '/**'), "
        f"got keys {list(data) if isinstance(data, dict) else data!r}"
    )
    params = data["/**"].get("ros__parameters")
    assert isinstance(params, dict) and params, f"{config}: '/**' has no ros__parameters"
    return params


def _launch_tree(name: str) -> ast.Module:
    return ast.parse((ROOT / "launch" / name).read_text(), filename=name)


def _calls(tree: ast.AST, function: str) -> list[ast.Call]:
    return [
        node
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and (getattr(node.func, "id", None) == function or getattr(node.func, "attr", None) == function)
    ]


# ---- package.xml ---------------------------------------------------------------------------------
def test_package_xml_is_format_3_with_setup_py_version() -> None:
    catkin_pkg_package = pytest.importorskip("catkin_pkg.package")
    package = catkin_pkg_package.parse_package(str(ROOT / "package.xml"))
    package.validate()
    assert package.package_format == 3
    assert package.name == "segmentation_ros"
    assert package.version == ast.literal_eval(_setup_keyword("version"))
    assert package.licenses == ["Apache-2.0"]
    assert [export.content for export in package.exports if export.tagname == "build_type"] == [
        "ament_python"
    ]


def test_package_xml_dependencies() -> None:
    catkin_pkg_package = pytest.importorskip("catkin_pkg.package")
    package = catkin_pkg_package.parse_package(str(ROOT / "package.xml"))
    exec_depends = {dep.name for dep in package.exec_depends}
    test_depends = {dep.name for dep in package.test_depends}
    for name in ("rclpy", "lifecycle_msgs", "sensor_msgs", "vision_msgs", "diagnostic_msgs", "launch_ros"):
        assert name in exec_depends
    assert {"python3-pytest", "launch_testing", "launch_testing_ros"} <= test_depends
    # pip-only rosdep keys cannot be released with bloom; those go in the README's pip line.
    pip_keys = sorted(name for name in exec_depends | test_depends if name.endswith("-pip"))
    assert not pip_keys, f"pip-only rosdep keys in package.xml: {pip_keys}"


# ---- installed files -----------------------------------------------------------------------------
@pytest.mark.parametrize(
    "path",
    [f"launch/{name}" for name in LAUNCH_ARGUMENTS]
    + CONFIGS
    + [
        "config/segmentation.rviz",
        "config/fastdds_large_images.xml",
        "config/labels/shapes.yaml",
        "worlds/shapes.sdf",
        "models/shapes_lraspp.pt",
        "models/shapes_maskrcnn.pt",
    ],
)
def test_file_exists_and_is_installed(path: str) -> None:
    assert (ROOT / path).is_file(), f"{path} is missing"
    assert path in _installed_files(), f"{path} is not matched by setup.py's data_files"


def test_every_installed_file_exists() -> None:
    # glob() only returns files that exist; the check is that each pattern matched something.
    for pattern in _glob_patterns():
        assert _matches(pattern), f"setup.py data_files pattern {pattern!r} matches no file"
    installed = _installed_files()
    for directory in ("launch", "config", "config/labels", "models", "worlds"):
        assert any(os.path.dirname(path) == directory for path in installed), (
            f"nothing installed from {directory}/"
        )


# ---- parameters files ----------------------------------------------------------------------------
@pytest.mark.parametrize("config", CONFIGS)
def test_params_file_keys_and_types(config: str) -> None:
    params = _params(config)
    # ROS's standard QoS overrides (qos_overrides./topic.subscription.reliability, ...) may be set too.
    params = {name: value for name, value in params.items() if name != "qos_overrides"}
    unknown = sorted(set(params) - PARAMETERS)
    assert not unknown, f"{config}: not parameters of segmentation_node: {unknown}"
    for name, value in params.items():
        if name in STRING_PARAMETERS:
            assert isinstance(value, str), f"{config}: {name} must be a string, got {value!r}"
        elif name in DOUBLE_PARAMETERS:
            assert isinstance(value, float), (
                f"{config}: {name} must be a double (write 1.0, not 1), got {value!r}"
            )
        elif name in INTEGER_PARAMETERS:
            assert isinstance(value, int) and not isinstance(value, bool), (
                f"{config}: {name} must be an integer"
            )
        elif name in BOOL_PARAMETERS:
            assert isinstance(value, bool), f"{config}: {name} must be true or false, got {value!r}"
        else:  # arrays: rcl cannot type an empty list, so [] fails to load; leave the key out
            item_type = int if name in INTEGER_ARRAY_PARAMETERS else str
            assert isinstance(value, list) and value, f"{config}: {name} must be a non-empty list"
            assert all(isinstance(item, item_type) and not isinstance(item, bool) for item in value)


@pytest.mark.parametrize("task", TASKS)
def test_params_file_values(task: str) -> None:
    config = f"config/{task}.yaml"
    params = _params(config)
    assert params.get("task") == task, f"{config}: task must be {task!r}"
    for name in UNIT_INTERVAL & set(params):
        assert 0.0 <= params[name] <= 1.0, f"{config}: {name} must be in [0, 1], got {params[name]}"
    if "stuff_area_threshold" in params:
        assert params["stuff_area_threshold"] >= 0, f"{config}: stuff_area_threshold must be >= 0"
    if "instance_min_size" in params:
        assert params["instance_min_size"] >= -1, f"{config}: instance_min_size must be >= -1"
    if "max_detections" in params:
        assert 1 <= params["max_detections"] <= 1000
    if "label_divisor" in params:
        assert params["label_divisor"] > params.get("max_detections", 100), (
            "label_divisor must exceed max_detections"
        )
    if "diagnostics_period" in params:
        assert params["diagnostics_period"] > 0.0
    if "precision" in params:
        assert params["precision"] in ("fp32", "fp16", "bf16")
    if "device" in params:
        device = params["device"]
        assert device in ("auto", "cpu", "cuda") or (device.startswith("cuda:") and device[5:].isdigit()), (
            f"{config}: device must be auto, cpu or cuda:N, got {device!r}"
        )
    for model in ("semantic", "instance"):
        uses_model = task in (model, "panoptic")
        for suffix in ("_model", "_weights", "_labels"):
            if not uses_model:
                assert model + suffix not in params, f"{config}: {model}{suffix} is unused by task {task}"
        if uses_model:
            assert params.get(model + "_model"), f"{config}: task {task} needs {model}_model"


def test_rviz_config_shows_the_image_and_depth_outputs() -> None:
    manager = yaml.safe_load((ROOT / "config" / "segmentation.rviz").read_text())["Visualization Manager"]
    displays = {d["Topic"]["Value"]: d for d in manager["Displays"]}
    assert {topic: d["Class"] for topic, d in displays.items()} == RVIZ_DISPLAYS
    # The node's cloud carries its colours in the rgb field (x y z rgb label instance).
    assert displays["/points"]["Color Transformer"] == "RGB8"
    assert displays["/markers"]["Namespaces"] == {"boxes": True, "labels": True}
    # The fixed frame is the optical frame of the Gazebo demo's images, which the node's cloud and
    # markers carry: they show without any TF.
    world = ET.parse(ROOT / "worlds" / "shapes.sdf").getroot()
    optical_frame = world.findtext(".//sensor/camera/optical_frame_id")
    assert optical_frame and manager["Global Options"]["Fixed Frame"] == optical_frame.strip()
    # The launch files start rviz2 through launch_helpers.rviz_node, which remaps these absolute
    # names into the node's namespace (test_launch_helpers.py checks the remappings).
    assert {f"/{topic}" for topic in launch_helpers.RVIZ_TOPICS} == set(RVIZ_DISPLAYS)
    for name in LAUNCH_ARGUMENTS:
        if "rviz" in LAUNCH_ARGUMENTS[name]:
            assert _calls(_launch_tree(name), "rviz_node"), f"{name} does not start rviz2 with rviz_node"


# ---- launch files --------------------------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(LAUNCH_ARGUMENTS))
def test_launch_file_compiles(name: str, tmp_path: Path) -> None:
    py_compile.compile(str(ROOT / "launch" / name), cfile=str(tmp_path / "launch.pyc"), doraise=True)


@pytest.mark.parametrize("name", sorted(LAUNCH_ARGUMENTS))
def test_launch_file_declares_documented_arguments(name: str) -> None:
    declared = []
    for call in _calls(_launch_tree(name), "DeclareLaunchArgument"):
        assert call.args and isinstance(call.args[0], ast.Constant), (
            f"{name}: argument name must be a literal"
        )
        declared.append(call.args[0].value)
        keywords = {keyword.arg for keyword in call.keywords}
        assert {"default_value", "description"} <= keywords, f"{name}: {call.args[0].value} needs both"
    assert len(declared) == len(set(declared)), f"{name}: an argument is declared twice: {declared}"
    assert set(declared) == LAUNCH_ARGUMENTS[name]


@pytest.mark.parametrize("name", sorted(LAUNCH_ARGUMENTS))
def test_launch_file_starts_the_lifecycle_node_portably(name: str) -> None:
    calls = _calls(_launch_tree(name), "LifecycleNode")
    assert len(calls) == 1, f"{name}: expected one LifecycleNode"
    keywords = {keyword.arg: keyword.value for keyword in calls[0].keywords}
    assert ast.literal_eval(keywords["executable"]) == "segmentation_node"
    assert ast.literal_eval(keywords["name"]) == "segmentation_node"
    assert "namespace" in keywords  # required by LifecycleNode on Humble and Jazzy
    # LifecycleNode(autostart=...) exists only in launch_ros >= 0.26.7 (Jazzy, 2025); the node's own
    # autostart parameter does the same on every distribution.
    assert "autostart" not in keywords, f"{name}: use the node's autostart parameter, not LifecycleNode's"


@pytest.mark.parametrize("name", sorted(LAUNCH_ARGUMENTS))
def test_launch_file_imports_existing_helpers(name: str) -> None:
    # The launch files cannot be imported without ROS; a misspelt helper would only fail in ros2 launch.
    imported = [
        alias.name
        for node in ast.walk(_launch_tree(name))
        if isinstance(node, ast.ImportFrom) and node.module == "segmentation_ros.ros.launch_helpers"
        for alias in node.names
    ]
    assert imported, f"{name}: expected to use segmentation_ros.ros.launch_helpers"
    missing = [helper for helper in imported if not hasattr(launch_helpers, helper)]
    assert not missing, f"{name} imports names launch_helpers does not define: {missing}"


# ---- Gazebo world --------------------------------------------------------------------------------
def _gazebo_constant(name: str) -> object:
    for node in _launch_tree("gazebo_demo.launch.py").body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == name for t in node.targets):
            return ast.literal_eval(node.value)
    raise AssertionError(f"gazebo_demo.launch.py has no {name} constant")


def test_world_has_shapes_sky_and_a_rendering_camera() -> None:
    world = ET.parse(ROOT / "worlds" / "shapes.sdf").getroot()
    major, minor = (int(part) for part in world.get("version", "0.0").split("."))
    assert (major, minor) >= (1, 9), "SDF 1.9 or newer"
    assert (major, minor) <= (1, 9), "Gazebo Fortress (Humble) reads SDF up to 1.9"
    plugins = {plugin.get("name") for plugin in world.iter("plugin")}
    assert "gz::sim::systems::Sensors" in plugins, "camera sensors render only with the Sensors system"
    assert world.find("world/scene/sky") is not None
    geometries = {child.tag for geometry in world.iter("geometry") for child in geometry}
    assert {"plane", "box", "sphere", "cylinder"} <= geometries
    assert sum(1 for _ in world.iter("model")) >= 6


def test_bridge_matches_the_world_rgbd_camera_topics() -> None:
    world = ET.parse(ROOT / "worlds" / "shapes.sdf").getroot()
    cameras = [sensor for sensor in world.iter("sensor") if sensor.get("type") != "logical_camera"]
    # One sensor renders colour and depth: same pose, size and field of view, same instant (aligned).
    assert [sensor.get("type") for sensor in cameras] == ["rgbd_camera"]
    assert cameras[0].findtext("camera/image/format").strip() == "R8G8B8"
    topic = cameras[0].findtext("topic").strip()
    # gz-sensors' rgbd_camera publishes <topic>/image, <topic>/depth_image (32FC1 metres),
    # <topic>/camera_info and <topic>/points.
    image_topic, depth_topic, info_topic = (
        f"{topic}/{name}" for name in ("image", "depth_image", "camera_info")
    )
    bridged = {entry.split("@", 1)[0]: entry for entry in _gazebo_constant("BRIDGED_TOPICS")}
    for gz_topic in (image_topic, depth_topic, info_topic, "/clock"):
        assert gz_topic in bridged, (
            f"gazebo_demo.launch.py does not bridge {gz_topic}; it bridges {sorted(bridged)}"
        )
    assert bridged[image_topic].endswith("@sensor_msgs/msg/Image[gz.msgs.Image")
    assert bridged[depth_topic].endswith("@sensor_msgs/msg/Image[gz.msgs.Image")
    assert bridged[info_topic].endswith("@sensor_msgs/msg/CameraInfo[gz.msgs.CameraInfo")
    assert bridged["/clock"].endswith("@rosgraph_msgs/msg/Clock[gz.msgs.Clock"), "use_sim_time needs /clock"
    # The bridge's ROS names (its remappings), as the node in NAMESPACE reads them.
    renamed = dict(_gazebo_constant("BRIDGE_REMAPPINGS"))
    ros_names = {gz_topic: renamed.get(gz_topic, gz_topic) for gz_topic in bridged}
    namespace = _gazebo_constant("NAMESPACE")
    assert ros_names[image_topic] == f"/{namespace}/image"
    assert ros_names[info_topic] == f"/{namespace}/camera_info"
    assert ros_names[depth_topic] == f"/{namespace}/{launch_helpers.DEPTH_INPUT}"
    # gz's own cloud must not reach ROS under the name of the node's labelled cloud.
    assert f"/{namespace}/points" not in ros_names.values()
    bridges = [
        call
        for call in _calls(_launch_tree("gazebo_demo.launch.py"), "Node")
        if any(
            k.arg == "executable" and ast.literal_eval(k.value) == "parameter_bridge" for k in call.keywords
        )
    ]
    assert len(bridges) == 1
    keywords = {keyword.arg: keyword.value for keyword in bridges[0].keywords}
    assert getattr(keywords.get("remappings"), "id", None) == "BRIDGE_REMAPPINGS", (
        "the bridge must rename depth"
    )


@pytest.mark.parametrize(
    ("name", "default"),
    [
        ("segmentation.launch.py", "false"),
        ("multi_camera.launch.py", "false"),
        ("gazebo_demo.launch.py", "true"),
    ],
)
def test_launch_file_passes_depth_to_the_node(name: str, default: str) -> None:
    tree = _launch_tree(name)
    declared = {call.args[0].value: call for call in _calls(tree, "DeclareLaunchArgument")}
    keywords = {keyword.arg: keyword.value for keyword in declared["depth"].keywords}
    assert ast.literal_eval(keywords["default_value"]) == default
    parameters = {
        key.value
        for node in ast.walk(tree)
        if isinstance(node, ast.Dict)
        for key in node.keys
        if isinstance(key, ast.Constant)
    }
    assert "depth" in parameters, f"{name}: the depth argument does not reach the node's depth parameter"
    if "depth_name" in LAUNCH_ARGUMENTS[name]:
        assert _calls(tree, "depth_remappings"), f"{name}: depth_name is not remapped with depth_remappings"


# ---- agreement with the node's own parameter table ------------------------------------------------
def test_parameter_table_matches_node_core() -> None:
    node_core = pytest.importorskip("segmentation_ros.ros.node_core")  # imports torch
    kinds = {
        str: STRING_PARAMETERS,
        float: DOUBLE_PARAMETERS,
        int: INTEGER_PARAMETERS,
        bool: BOOL_PARAMETERS,
    }
    for spec in node_core.PARAMETERS:
        assert spec.name in PARAMETERS, f"node_core declares {spec.name}; add it to this test's table"
        if isinstance(spec.default, list):
            expected = INTEGER_ARRAY_PARAMETERS if spec.name == "classes" else STRING_ARRAY_PARAMETERS
        else:
            expected = kinds[type(spec.default)]
        assert spec.name in expected, f"{spec.name}: type {type(spec.default).__name__} in node_core"
    declared = {spec.name for spec in node_core.PARAMETERS} | {"use_sim_time"}
    assert PARAMETERS <= declared, f"not declared by node_core: {sorted(PARAMETERS - declared)}"


@pytest.mark.parametrize("config", CONFIGS)
def test_params_file_passes_node_core_validation(config: str) -> None:
    node_core = pytest.importorskip("segmentation_ros.ros.node_core")
    params = {
        name: value
        for name, value in _params(config).items()
        if name not in ("use_sim_time", "qos_overrides")
    }
    node_core.validate_parameters(params)  # raises ValueError naming the bad value


def test_readme_parameter_table_is_node_core() -> None:
    """The README lists every parameter once, with node_core's default, range, choices and mutability."""
    import json

    node_core = pytest.importorskip("segmentation_ros.ros.node_core")  # imports torch
    readme = (ROOT / "README.md").read_text()
    table = readme[readme.index("| name | default | range / choices | description | changes |") :]
    rows = {}
    for line in table.splitlines()[2:]:
        if not line.startswith("| `"):
            break
        name, default, constraint, description, changes = (
            cell.strip() for cell in line.strip("|").split(" | ")
        )
        rows[name.strip("`")] = (default.strip("`"), constraint, description, changes)
    assert list(rows) == [spec.name for spec in node_core.PARAMETERS]
    for spec in node_core.PARAMETERS:
        default, constraint, description, changes = rows[spec.name]
        assert json.loads(default) == spec.default, spec.name
        if spec.choices:
            expected = ", ".join(spec.choices)
        elif spec.range is not None:
            expected = f"[{spec.range[0]}, {spec.range[1]}]"
        else:
            expected = ""
        assert constraint == expected, spec.name
        assert description == spec.description, spec.name
        assert changes == ("read-only" if spec.read_only else "dynamic"), spec.name


# ---- the layering contract -----------------------------------------------------------------------
def _lint_imports(cwd: Path, pythonpath: Path | None = None) -> subprocess.CompletedProcess:
    tool = Path(sys.executable).parent / "lint-imports"
    if not tool.is_file():
        pytest.skip("import-linter is not installed (pip install -e '.[test]')")
    env = {**os.environ, "PYTHONPATH": str(pythonpath)} if pythonpath else None
    return subprocess.run(
        [str(tool), "--config", str(ROOT / "setup.cfg"), "--no-cache"],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_layering_contract_holds() -> None:
    result = _lint_imports(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_ros_module_but_the_live_node_is_kept_from_rclpy() -> None:
    """The rclpy contract names its source modules: a new module of ros/ must be among them."""
    import configparser

    config = configparser.ConfigParser()
    config.read(ROOT / "setup.cfg")
    sources = set(config["importlinter:contract:only-the-live-node-imports-rclpy"]["source_modules"].split())
    modules = {f"segmentation_ros.ros.{p.stem}" for p in (ROOT / "segmentation_ros" / "ros").glob("*.py")}
    live = {"segmentation_ros.ros.node", "segmentation_ros.ros.rclpy_messages", "segmentation_ros.ros.__init__"}
    assert modules - live <= sources, sorted(modules - live - sources)


@pytest.mark.parametrize(
    ("module", "line", "broken"),
    [
        (
            "engine/masks.py",
            "from segmentation_ros.ros import messages",
            "segmentation_ros.engine.masks -> segmentation_ros.ros.messages",
        ),
        ("engine/labels.py", "import rosbags", "segmentation_ros.engine.labels -> rosbags"),
        ("ros/node_core.py", "import rclpy", "segmentation_ros.ros.node_core -> rclpy"),
        (
            "ros/bag.py",
            "from segmentation_ros.tools import cli",
            "segmentation_ros.ros.bag -> segmentation_ros.tools.cli",
        ),
        (
            "engine/registry.py",
            "from segmentation_ros.engine.models import shapes",
            "segmentation_ros.engine.registry -> segmentation_ros.engine.models.shapes",
        ),
    ],
)
def test_the_layering_contract_catches_a_forbidden_import(
    tmp_path: Path, module: str, line: str, broken: str
) -> None:
    copy = tmp_path / "segmentation_ros"
    shutil.copytree(ROOT / "segmentation_ros", copy, ignore=shutil.ignore_patterns("__pycache__"))
    path = copy / module
    path.write_text(path.read_text() + f"\n{line}  # noqa\n")
    result = _lint_imports(tmp_path, pythonpath=tmp_path)
    assert result.returncode != 0, result.stdout
    assert broken in result.stdout, result.stdout


def test_the_demo_models_are_a_registered_plugin() -> None:
    from importlib.metadata import entry_points

    plugins = {ep.name: ep.value for ep in entry_points(group="segmentation_ros.models")}
    assert plugins.get("shapes") == "segmentation_ros.engine.models.shapes"


def test_a_broken_model_plugin_is_reported_and_skipped(monkeypatch: pytest.MonkeyPatch) -> None:
    from importlib.metadata import EntryPoint

    registry = pytest.importorskip("segmentation_ros.engine.registry")  # imports torch
    broken = EntryPoint("broken", "no_such_package.models", registry.PLUGIN_GROUP)
    shapes = EntryPoint("shapes", "segmentation_ros.engine.models.shapes", registry.PLUGIN_GROUP)
    monkeypatch.setattr(registry, "entry_points", lambda group: [broken, shapes] if group == registry.PLUGIN_GROUP else [])
    monkeypatch.setattr(registry, "_PLUGINS_LOADED", False)
    with pytest.warns(UserWarning, match="model plugin 'broken'.*no_such_package"):
        names = registry.list_models()
    assert "shapes_lraspp" in names and "lraspp_mobilenet_v3_large" in names
