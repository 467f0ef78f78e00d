"""The onboard engine: numpy + onnxruntime only. Never imports torch.

It holds the recurrent state of one policy, takes Δt from message stamps and applies the
rules for first / duplicate / out-of-order / gap / non-finite inputs and explicit resets.
The ROS node, the bag replay and the simulator all step through this one class.
"""

from lnn_ros.engine.clock import StampClock
from lnn_ros.engine.engine import Engine, EngineConfig, EngineCounters, StepResult
from lnn_ros.engine.outcome import Outcome
from lnn_ros.engine.session import SessionConfig, open_session

__all__ = [
    "Engine",
    "EngineConfig",
    "EngineCounters",
    "Outcome",
    "SessionConfig",
    "StampClock",
    "StepResult",
    "open_session",
]
