"""``exception``: the model raised on a valid input."""

from __future__ import annotations

from nnfuzz.execution import Execution
from nnfuzz.objectives.base import Judgement, Objective


class RaisedException(Objective):
    """The model raised on a valid input; one signature per exception type and place."""

    name = "exception"

    def evaluate(self, execution: Execution) -> Judgement:
        return Judgement([self.finding(example, error.describe(), f"{error.type}:{error.location}")
                          for example, error in enumerate(execution.raised) if error is not None])
