"""Steps computed ahead through the window graph: :class:`StepPlan` (used by :meth:`Engine.plan`).

A window graph runs T steps per onnxruntime call. Offline (a bag replay) the inputs of the next
steps are known before the steps are taken, so runs of them can go through it; each planned
step keeps its stamp, its normalised input and its output, and the engine takes a planned
output only for a call with the same stamp and the same input, in order. The hidden state is
known only at the end of each window call; a plan dropped in the middle of a window recomputes
the state of its consumed prefix with one more window call (the unused steps get Δt = 0, which
keeps the state: the Δt rule of every cell).
"""

from __future__ import annotations

import numpy as np
import onnxruntime as ort


class WindowRunner:
    """Runs a window graph (``x [1,T,F], hidden [1,H], dt [1,T,1] -> y [1,T,O], hidden_out [1,H]``)."""

    def __init__(self, session: ort.InferenceSession, steps: int) -> None:
        self.session = session
        self.steps = steps

    def run(self, x: np.ndarray, dt: np.ndarray, hidden: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``x`` [n,F] and ``dt`` [n] with n <= T (padded with Δt = 0), ``hidden`` [1,H]; returns y [n,O], hidden [1,H]."""
        count = len(x)
        steps = self.steps
        x_in = np.zeros((1, steps, x.shape[1]), dtype=np.float32)
        dt_in = np.zeros((1, steps, 1), dtype=np.float32)
        x_in[0, :count] = x
        dt_in[0, :count, 0] = dt
        y, hidden_out = self.session.run(None, {"x": x_in, "hidden": hidden, "dt": dt_in})
        return y[0, :count], hidden_out


class StepPlan:
    """Planned steps: stamps, normalised inputs [K,F], Δt [K] (clamped), outputs [K,O], window by window.

    Args:
        window: the window graph.
        stamps_ns: the K stamps, in order.
        x: the K normalised inputs.
        dt: the K Δt values (seconds, clamped as the engine clamps them).
        hidden: the state before the first step [1,H] (copied).
    """

    def __init__(
        self, window: WindowRunner, stamps_ns: list[int], x: np.ndarray, dt: np.ndarray, hidden: np.ndarray
    ) -> None:
        self.window = window
        self.stamps_ns = stamps_ns
        self.x = x
        self.dt = dt
        self.index = 0
        steps = window.steps
        self._starts = [hidden.copy()]  # the state before each window
        outputs = []
        for start in range(0, len(stamps_ns), steps):
            y, state = window.run(x[start : start + steps], dt[start : start + steps], self._starts[-1])
            outputs.append(y)
            self._starts.append(state)
        self.y = np.concatenate(outputs)
        self._rows = [row.tobytes() for row in x]

    @property
    def exhausted(self) -> bool:
        return self.index >= len(self.stamps_ns)

    def take(self, stamp_ns: int, x: np.ndarray, y: np.ndarray, hidden: np.ndarray) -> bool:
        """If the next planned step has this stamp and input ``x`` [F], write its output into ``y``
        [1,O] (and, at the end of a window, the state into ``hidden`` [1,H]) and return True."""
        index = self.index
        if index >= len(self.stamps_ns) or stamp_ns != self.stamps_ns[index] or x.tobytes() != self._rows[index]:
            return False
        y[0] = self.y[index]
        index += 1
        self.index = index
        steps = self.window.steps
        if index % steps == 0 or index == len(self.stamps_ns):
            hidden[...] = self._starts[(index + steps - 1) // steps]
        return True

    def settle(self, hidden: np.ndarray) -> None:
        """Write into ``hidden`` [1,H] the state after the consumed steps (untouched if none were)."""
        index = self.index
        steps = self.window.steps
        if index == 0 or index % steps == 0 or index == len(self.stamps_ns):
            return  # nothing consumed, or take() already wrote the state at the window's end
        start = index - index % steps
        _, state = self.window.run(self.x[start:index], self.dt[start:index], self._starts[start // steps])
        hidden[...] = state
