"""Bundle -> engine -> runner -> live loop: built in one place for the node, the replay and the simulator."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from lnn_ros.bundle import Bundle, load_bundle
from lnn_ros.engine import Engine, EngineConfig
from lnn_ros.runtime.live import LiveConfig, LiveLoop
from lnn_ros.runtime.policy import PolicyConfig, PolicyRunner


def build_runner(
    bundle: Bundle | str | Path,
    *,
    engine: EngineConfig = EngineConfig(),
    policy: PolicyConfig = PolicyConfig(),
    verify_hashes: bool = True,
) -> PolicyRunner:
    """A :class:`PolicyRunner` over a fresh :class:`Engine` of ``bundle`` (loaded if given as a folder).

    Raises:
        BundleError, EngineError: the bundle does not load or its graphs do not run.
        PolicyError: ``policy.driver`` is a stream the bundle does not use.
    """
    loaded = bundle if isinstance(bundle, Bundle) else load_bundle(bundle, verify_hashes=verify_hashes)
    return PolicyRunner(Engine(loaded, engine), policy)


def build_live_loop(
    bundle: Bundle | str | Path,
    *,
    live: LiveConfig,
    now_ns: Callable[[], int],
    engine: EngineConfig = EngineConfig(),
    policy: PolicyConfig = PolicyConfig(),
    verify_hashes: bool = True,
) -> LiveLoop:
    """The live node's per-message handling (:class:`LiveLoop`) around :func:`build_runner`'s runner."""
    runner = build_runner(bundle, engine=engine, policy=policy, verify_hashes=verify_hashes)
    return LiveLoop(runner, live, now_ns)
