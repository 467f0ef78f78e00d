"""Message handling shared by the ROS node, the rosbag replay and the simulator.

ROS-free and torch-free (numpy + the engine): records in, fused engine steps, commands out.
"""

from lnn_ros.runtime.image import DecodeResult, ImageDecoder, ImageStatus
from lnn_ros.runtime.live import LiveConfig, LiveLoop
from lnn_ros.runtime.outcome import Outcome
from lnn_ros.runtime.policy import PolicyConfig, PolicyError, PolicyRunner, RunnerCounters, used_streams
from lnn_ros.runtime.records import ZERO_TWIST, Command, ImageFrame, ImuSample, Stream, Twist
from lnn_ros.runtime.report import Level, Report, build_report
from lnn_ros.runtime.stats import RateMeter, RollingWindow, Summary
from lnn_ros.runtime.watchdog import Watchdog, WatchdogStatus

__all__ = [
    "ZERO_TWIST",
    "Command",
    "DecodeResult",
    "ImageDecoder",
    "ImageFrame",
    "ImageStatus",
    "ImuSample",
    "Level",
    "LiveConfig",
    "LiveLoop",
    "Outcome",
    "PolicyConfig",
    "PolicyError",
    "PolicyRunner",
    "RateMeter",
    "Report",
    "RollingWindow",
    "RunnerCounters",
    "Stream",
    "Summary",
    "Twist",
    "Watchdog",
    "WatchdogStatus",
    "build_report",
    "used_streams",
]
