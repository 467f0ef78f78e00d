"""The test side of the launch tests in this folder: an rclpy node in its own context that
calls services, publishes sensor messages and records what the launched nodes publish.

Imported by the launch_testing files here (``launch_test`` runs them with this folder on
``PYTHONPATH``); nothing in it is lnn_ros code, so it checks the installed package from outside.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, TypeVar

import rclpy
from geometry_msgs.msg import TwistStamped
from rclpy.context import Context
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image, Imu

T = TypeVar("T")
NS = 1_000_000_000


class Probe:
    """An rclpy node for one test class; :meth:`close` it in ``tearDownClass``."""

    def __init__(self, name: str = "launch_test_probe") -> None:
        self.context = Context()
        rclpy.init(args=[], context=self.context)  # not launch_test's arguments
        self.node = Node(name, context=self.context)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)

    def close(self) -> None:
        self.executor.shutdown(timeout_sec=0.0)
        self.node.destroy_node()
        rclpy.try_shutdown(context=self.context)

    def spin_until(self, done: Callable[[], T], timeout_s: float, what: str) -> T:
        """Spin until ``done()`` is truthy; fails with ``what`` after ``timeout_s``."""
        deadline = time.monotonic() + timeout_s
        while not (result := done()):
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
            self.executor.spin_once(timeout_sec=0.05)
        return result

    def spin_for(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            self.executor.spin_once(timeout_sec=0.02)

    def call(self, srv_type: Any, name: str, request: Any, timeout_s: float = 20.0) -> Any:
        """Call service ``name`` once it is available; returns the response."""
        client = self.node.create_client(srv_type, name)
        try:
            self.spin_until(client.service_is_ready, timeout_s, f"service {name}")
            future = client.call_async(request)
            self.spin_until(future.done, timeout_s, f"the reply of {name}")
            return future.result()
        finally:
            self.node.destroy_client(client)

    def record(self, msg_type: Any, topic: str) -> list[Any]:
        """Subscribe ``topic`` (reliable); returns the list the messages are appended to."""
        received: list[Any] = []
        self.node.create_subscription(msg_type, topic, received.append, QoSProfile(depth=1000, reliability=ReliabilityPolicy.RELIABLE))
        return received

    def now_ns(self) -> int:
        return self.node.get_clock().now().nanoseconds


def stamp_ns(msg: TwistStamped) -> int:
    return msg.header.stamp.sec * NS + msg.header.stamp.nanosec


def imu_msg(stamp: int) -> Imu:
    msg = Imu()
    msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(stamp, NS)
    msg.header.frame_id = "imu_link"
    msg.orientation.w = 1.0
    msg.linear_acceleration.z = 9.81
    return msg


def image_msg(stamp: int, width: int = 64, height: int = 48) -> Image:
    msg = Image()
    msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(stamp, NS)
    msg.height, msg.width, msg.encoding, msg.step = height, width, "rgb8", 3 * width
    msg.data = bytes(3 * width * height)
    return msg


def fly(probe: Probe, imu_topic: str, camera_topic: str, commands: list[TwistStamped], count: int = 40) -> set[int]:
    """Publish one camera frame and ``count`` IMU messages (10 ms apart, stamped now); returns the IMU stamps."""
    qos = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE)
    imu_pub = probe.node.create_publisher(Imu, imu_topic, qos)
    image_pub = probe.node.create_publisher(Image, camera_topic, qos)
    probe.spin_until(lambda: imu_pub.get_subscription_count() and image_pub.get_subscription_count(), 20.0,
                     f"a subscriber on {imu_topic} and {camera_topic}")
    start = probe.now_ns()
    image_pub.publish(image_msg(start))
    probe.spin_for(0.1)
    stamps = set()
    for k in range(count):
        stamp = start + (k + 1) * 10_000_000
        if k % 2:  # keep the camera fresh even when this machine is slow (stale_timeout_s may be short)
            image_pub.publish(image_msg(stamp))
        imu_pub.publish(imu_msg(stamp))
        stamps.add(stamp)
        probe.spin_for(0.01)
    probe.spin_until(lambda: any(stamp_ns(c) in stamps for c in commands), 10.0, "a policy command for a published IMU stamp")
    return stamps
