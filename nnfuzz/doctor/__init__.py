"""``nnfuzz doctor``: the checks a model should pass before it is fuzzed or trained.

    from nnfuzz.doctor import DoctorConfig, diagnose
    diagnosis = diagnose(nnfuzz.load_target("model.py"), DoctorConfig(lr=1e-3))
    assert diagnosis.exit_code == 0, [r.hint for r in diagnosis.results]

Each check (initial loss, overfitting a tiny batch, gradcheck, gradient flow,
activations, update size, loss sanity) runs on copies of the model and
returns a :class:`CheckResult`: pass, warn, fail or skip, the measured value,
its threshold and a hint.
"""

from nnfuzz.doctor.diagnosis import CHECKS, Diagnosis, diagnose, write_record
from nnfuzz.doctor.result import CheckResult, Status
from nnfuzz.doctor.subject import DoctorConfig

__all__ = ["CHECKS", "CheckResult", "Diagnosis", "DoctorConfig", "Status", "diagnose",
           "write_record"]
