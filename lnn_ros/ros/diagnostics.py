"""``/diagnostics``: the runtime's :class:`~lnn_ros.runtime.report.Report` as a ``DiagnosticArray``.

The report itself (its keys are listed in :mod:`lnn_ros.runtime.report`) is built without ROS,
so the bag replay writes the same report into its output bag without this module.
"""

from __future__ import annotations

from builtin_interfaces.msg import Time
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue

from lnn_ros.runtime.report import Report


def to_message(report: Report, *, name: str, hardware_id: str, stamp: Time) -> DiagnosticArray:
    """Wrap ``report`` as a one-status ``DiagnosticArray`` stamped ``stamp``."""
    array = DiagnosticArray()
    array.header.stamp = stamp
    status = DiagnosticStatus(
        level=bytes([int(report.level)]),
        name=name,
        message=report.message,
        hardware_id=hardware_id,
        values=[KeyValue(key=key, value=value) for key, value in report.values],
    )
    array.status = [status]
    return array
