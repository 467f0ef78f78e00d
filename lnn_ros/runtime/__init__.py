"""Message handling shared by the ROS node, the rosbag replay and the simulator.

ROS-free and torch-free (numpy + the engine): records in, fused engine steps, commands out.
The names below are loaded on first use, so a user of the plain records
(``lnn_ros.runtime.records``, e.g. the simulator) does not load onnxruntime.
"""

from __future__ import annotations

from lnn_ros._lazy import lazy_exports

__all__, __getattr__ = lazy_exports(
    __name__,
    {
        "factory": ("build_live_loop", "build_runner"),
        "image": ("DecodeResult", "ImageDecoder", "ImageStatus"),
        "live": ("LiveConfig", "LiveLoop"),
        "counters": ("Counters", "counter_name"),
        "policy": ("PolicyConfig", "PolicyError", "PolicyRunner", "used_streams"),
        "records": ("ZERO_TWIST", "Command", "ImageFrame", "ImuSample", "SensorRecord", "Stream", "Twist"),
        "report": ("Level", "Report", "build_report"),
        "stats": ("RateMeter", "RollingWindow", "Summary"),
        "watchdog": ("Watchdog", "WatchdogStatus"),
    },
)
