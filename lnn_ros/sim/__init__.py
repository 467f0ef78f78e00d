"""Simulated camera drone for lnn_ros: rotorpy physics, a numpy ray-cast camera, an expert.

Grouped by job: :mod:`~lnn_ros.sim.world` (vehicle physics, wind, sensors, renderer, the
episode loop), :mod:`~lnn_ros.sim.expert` (the privileged expert and its demonstrations),
:mod:`~lnn_ros.sim.ros` (``sim_drone_node``), and beside them ``demo`` (``lnn-ros demo``),
``pilot`` (a bundle flying the simulator through the runtime), ``evaluate``, ``plot`` and
``record_bag``.

ROS-free and torch-free (numpy, scipy, rotorpy). Drive a :class:`Simulator` with any
``controller(event) -> command | None`` through :func:`run_closed_loop`, record expert
demonstrations with :func:`generate_demonstrations` (or a rosbag2 bag with
:func:`record_expert_bag`), and fly it in real time from a ROS node with ``advance_to`` / ``set_command``.

rotorpy is the ``sim`` extra: the names below are loaded on first use, so the ``lnn-ros`` CLI
(which imports :mod:`lnn_ros.sim.cli` on every call) runs on a machine without it.
"""

from __future__ import annotations

from lnn_ros._lazy import lazy_exports

__all__, __getattr__ = lazy_exports(
    __name__,
    {
        "world.closed_loop": ("Controller", "run_closed_loop"),
        "world.config": (
            "VARIANTS",
            "CameraIntrinsics",
            "Integrator",
            "ScenarioVariant",
            "SimConfig",
            "VariantSpec",
            "VehicleModel",
            "variant_from_name",
            "variant_spec",
        ),
        "world.episode": ("EpisodeResult", "Simulator", "Trajectory", "VehicleState"),
        "expert.demonstrations": (
            "Demonstration",
            "generate_demonstrations",
            "load_demonstration",
            "load_demonstrations",
            "record_demonstration",
            "save_demonstration",
        ),
        "expert.expert": ("Expert", "ExpertConfig", "expert_controller", "expert_for", "fly_expert"),
        "errors": ("SimError",),
        "evaluate": ("VariantStats", "evaluate", "format_stats"),
        "pilot": ("BundlePilot", "runner_controller"),
        "plot": ("plot_episode", "plot_flight"),
        "record_bag": ("RecordBagConfig", "RecordBagResult", "record_expert_bag"),
    },
)
