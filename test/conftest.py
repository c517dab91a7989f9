"""Shared fixtures.

``ros_context``: the one place where a test gets ROS 2. It keeps DDS on this machine
(``ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST``, and a random ``ROS_DOMAIN_ID`` so that concurrent runs
do not see each other) before rclpy is initialised; every node a test starts, in this process or as
a child process, inherits that environment. Without rclpy the tests that use it skip, unless
``SEGMENTATION_ROS_LIVE_TESTS=require`` (set by ``make test``, which installs ROS 2 from PyPI):
then a missing runtime is a failure, never a silent skip.
"""

from __future__ import annotations

import os
import random
import sys
from collections.abc import Iterator
from typing import Any

import pytest

from segmentation_ros.engine.paths import config_dir

#: Set before rclpy initialises: discovery and traffic stay on the loopback interface.
ROS_LOCAL_ENV = {"ROS_AUTOMATIC_DISCOVERY_RANGE": "LOCALHOST"}


def _import_rclpy() -> Any:
    try:
        import rclpy
    except ImportError as exc:
        if os.environ.get("SEGMENTATION_ROS_LIVE_TESTS") == "require":
            pytest.fail(
                f"rclpy is required (SEGMENTATION_ROS_LIVE_TESTS=require) but cannot be imported: {exc}"
            )
        pytest.skip(f"no ROS 2 runtime (rclpy): {exc}; `make test` installs one from PyPI")
    return rclpy


@pytest.fixture(scope="session")
def ros_context() -> Iterator[Any]:
    """An initialised rclpy context on a random local-only domain (see the module docstring)."""
    rclpy = _import_rclpy()
    os.environ.update(ROS_LOCAL_ENV)
    os.environ.pop("ROS_STATIC_PEERS", None)
    if os.environ.get("ROS_DISTRO") == "humble":  # before Iron, the discovery range did not exist
        os.environ["ROS_LOCALHOST_ONLY"] = "1"
    else:  # deprecated since Iron; it would override the range, with a warning
        os.environ.pop("ROS_LOCALHOST_ONLY", None)
    os.environ["ROS_DOMAIN_ID"] = str(random.SystemRandom().randint(1, 100))
    # The test plays the camera: like a camera driver, it publishes images with the large-images
    # profile (see config/fastdds_large_images.xml). The nodes it starts do not inherit this
    # variable: they choose the profile themselves.
    os.environ["FASTDDS_DEFAULT_PROFILES_FILE"] = str(config_dir() / "fastdds_large_images.xml")
    context = rclpy.Context()
    rclpy.init(context=context)
    try:
        yield context
    finally:
        rclpy.try_shutdown(context=context)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Iterator[None]:
    """When a test fails while live nodes run, its report gets their thread stacks and log tails."""
    outcome = yield
    report = outcome.get_result()
    if not report.failed:
        return
    live_ros = sys.modules.get("live_ros")
    for node in list(getattr(live_ros, "RUNNING", ())):
        report.sections.append((f"{node.fqn} stacks", node.stacks() or "(exited, or no py-spy)"))
        report.sections.append((f"{node.fqn} log", node.log()[-4000:]))


@pytest.fixture
def no_decoding(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail the test if anything reaches OpenCV's decoder (a bomb must be refused from its header)."""

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("cv2.imdecode was called: the payload was not refused from its header")

    import cv2

    monkeypatch.setattr(cv2, "imdecode", refuse)


@pytest.fixture(scope="module")
def one_torch_thread() -> Iterator[None]:
    """One intra-op torch thread for a module (``pytestmark = pytest.mark.usefixtures(...)``): on
    tiny frames threads only add overhead, and on a busy 2-core runner OpenMP's spinning barriers
    made such modules two to three times slower."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def requested_splits(monkeypatch: pytest.MonkeyPatch) -> Any:
    """``requested_splits("generate_scenes")``: a list that records the ``split`` of every call of
    that synthetic generator from now on (the calls still run)."""
    from segmentation_ros.tools import synthetic

    def spy_on(name: str) -> list[Any]:
        splits: list[Any] = []
        original = getattr(synthetic, name)

        def spy(*args: Any, **kwargs: Any) -> Any:
            splits.append(kwargs.get("split"))
            return original(*args, **kwargs)

        monkeypatch.setattr(synthetic, name, spy)
        return splits

    return spy_on
