"""One rclpy node as a process: its ``main()`` with exit codes, start-up errors and signal handling.

Every node executable (``lnn_node``, ``lnn_lifecycle_node``, ``sim_drone_node``) is ``run_node(...)``:

* ROS does not start (rcl rejects the command line, e.g. a ``--params-file`` that does not exist or
  does not parse; rcl prints its own ERROR line first): one ``[FATAL] [<node>]: ...`` line on
  stderr naming the file or quoting rcl, exit code 1;
* the node cannot be built (an :class:`~lnn_ros.errors.LnnRosError`: an unknown or invalid
  parameter, a model that does not load; or rclpy refusing a value of its own parameters, e.g.
  ``use_sim_time:=1``): one FATAL log line saying why, exit code 1, no traceback;
* SIGINT / SIGTERM at any point (while importing, in ``rclpy.init``, while the node is built,
  while it spins, while ``finish`` writes a summary, a second one while the first is handled):
  exit code 0, no traceback. :mod:`lnn_ros.ros.signals` turns the signals into a note (rclpy's
  own handler shuts the context down and calls ours), so no ``KeyboardInterrupt`` is ever
  raised; rclpy reports the shutdown as
  ``ExternalShutdownException`` or, when it notices it while building its wait set or a
  timeout timer, as its internal ``RCLError`` ("the given context is not valid"): any error
  raised once the context is shut down counts as that clean end. An error while the context
  is still valid is a bug and propagates.

The executor is rclpy's ``SingleThreadedExecutor`` unless the node asks for the events executor
(:func:`make_executor`, parameter ``executor``).
"""

from __future__ import annotations

import itertools
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import rclpy
import rclpy.logging
from rclpy.context import Context
from rclpy.exceptions import InvalidParameterTypeException, InvalidParameterValueException
from rclpy.executors import Executor, ExternalShutdownException, SingleThreadedExecutor
from rclpy.node import Node

from lnn_ros.errors import LnnRosError
from lnn_ros.ros import signals

N = TypeVar("N", bound=Node)

START_UP_ERRORS = (LnnRosError, InvalidParameterTypeException, InvalidParameterValueException)
"""Errors of building a node that are a configuration mistake: one FATAL line, exit code 1."""


def one_line(exc: BaseException) -> str:
    """The message of ``exc`` on one line (log lines and test greps want one)."""
    return " ".join(str(exc).split())


def ended_by_shutdown(exc: BaseException, context: Context | None = None) -> bool:
    """Whether ``exc`` is how rclpy ends a spin on SIGINT/SIGTERM (see the module docstring).

    Args:
        exc: the exception a spin raised.
        context: the node's context (None: the default one).
    """
    if isinstance(exc, (KeyboardInterrupt, ExternalShutdownException)):
        return True
    return isinstance(exc, Exception) and not rclpy.ok(context=context)


NO_EVENTS_EXECUTOR = (
    "executor 'events': this rclpy has no rclpy.experimental.EventsExecutor (ROS 2 Humble has none); "
    "spinning the single-threaded executor instead."
)


def make_executor(kind: str, node: Node) -> Executor:
    """The executor ``kind`` names (``single_threaded`` or ``events``), for ``node``'s context.

    ``events`` is rclpy's experimental ``EventsExecutor`` (Jazzy and later): the middleware's
    events are queued and dispatched from C++, with less Python per message than the
    single-threaded executor's wait-set rebuild, and callbacks run in the order their events
    arrived. Its ``spin()`` without a timeout does not return on shutdown in the releases tested
    here, so every spin loop in this module uses ``spin_once(timeout_sec=...)``. Where it does
    not exist (Humble) the single-threaded executor is used and ``node`` logs one warning saying so.
    """
    if kind == "events":
        try:
            from rclpy.experimental import EventsExecutor
        except ImportError:
            node.get_logger().warning(NO_EVENTS_EXECUTOR)
        else:
            executor: Executor = EventsExecutor(context=node.context)
            return executor
    return SingleThreadedExecutor(context=node.context)


def spin_until_shutdown(executor: Executor) -> None:
    """Spin until SIGINT/SIGTERM (rclpy's handlers shut the context down) or another shutdown.

    Any error while the context is still valid is re-raised.
    """
    try:
        executor.spin()
    except BaseException as exc:
        if not ended_by_shutdown(exc, executor.context):
            raise


def spin_until_signal(executor: Executor) -> None:
    """``executor.spin()`` that also ends when :mod:`~lnn_ros.ros.signals` noted a signal.

    rclpy's own handler ends a spin on SIGINT and SIGTERM; the note is the fallback for an rclpy
    that leaves one of them to the previous handler (ours), checked every 0.1 s.
    """
    while executor.context.ok() and not signals.received():
        executor.spin_once(timeout_sec=0.1)


def _init_failure(exc: BaseException, args: list[str]) -> str:
    """Why ``rclpy.init`` refused ``args``: a ``--params-file`` that does not exist by name, else rcl's message."""
    for flag, path in itertools.pairwise(args):
        if flag == "--params-file" and not Path(path).is_file():
            return f"Parameter file {path!r} does not exist (--params-file); check the path (launch: params_file:=...)."
    return f"ROS could not start: {one_line(exc)}"


def _start_up_message(exc: BaseException) -> str:
    if isinstance(exc, (InvalidParameterTypeException, InvalidParameterValueException)):
        # rclpy's message already names the parameter and the types; say what to do.
        return f"{one_line(exc)}. Fix the value given with -p / --params-file / the launch file."
    return one_line(exc)


def run_node(
    node_name: str,
    factory: Callable[[], N],
    run: Callable[[N, Executor], None] | None = None,
    *,
    args: list[str] | None = None,
    fatal: tuple[type[Exception], ...] = (),
    finish: Callable[[N], object] | None = None,
    executor_kind: Callable[[N], str] | None = None,
) -> int:
    """Init rclpy, build the node, run it on a single-threaded executor; returns the exit code.

    Args:
        node_name: the node's name, for the FATAL lines written before the node exists.
        factory: builds the node (raises :class:`~lnn_ros.errors.LnnRosError` when it cannot).
        run: what to do with the node (default: spin until SIGINT/SIGTERM).
        args: the command line for ``rclpy.init`` (None: ``sys.argv``).
        fatal: errors of ``run`` that end the process with one FATAL line and exit code 1.
        finish: called with the node after ``run`` ended without a fatal error (also after a
            signal), before the node is destroyed (e.g. to write a summary).
        executor_kind: the executor the built node asks for (:func:`make_executor`; default single-threaded).
    """
    signals.install()
    try:
        rclpy.init(args=args)
    except Exception as exc:  # rcl rejects the command line (its own error line is printed above)
        if signals.received():
            return 0
        print(f"[FATAL] [{node_name}]: {_init_failure(exc, sys.argv if args is None else args)}", file=sys.stderr)
        return 1
    try:
        if signals.received():
            return 0
        try:
            node = factory()
        except BaseException as exc:
            if signals.received() or not rclpy.ok():
                return 0  # a signal while the node was being built
            if isinstance(exc, START_UP_ERRORS):
                rclpy.logging.get_logger(node_name).fatal(_start_up_message(exc))
                return 1
            raise
        if signals.received() or not rclpy.ok():  # a signal while the node was being built
            if finish is not None:
                finish(node)
            node.destroy_node()
            return 0
        executor = make_executor("single_threaded" if executor_kind is None else executor_kind(node), node)
        executor.add_node(node)
        code = 0
        try:
            if run is None:
                spin_until_signal(executor)
            else:
                run(node, executor)
        except fatal as exc:
            if not signals.received():
                node.get_logger().fatal(one_line(exc))
                code = 1
        except BaseException as exc:
            if not ended_by_shutdown(exc, node.context):
                raise
        finally:
            if code == 0 and finish is not None:
                finish(node)
            executor.shutdown(timeout_sec=0.0)
            node.destroy_node()
        return code
    finally:
        rclpy.try_shutdown()
