"""Each broken model of the zoo fails the check meant for it and no other; a healthy
digits MLP passes every check; the user's model is never changed."""

from __future__ import annotations

import functools

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from nnfuzz.doctor import CHECKS, CheckResult, DoctorConfig, Status, diagnose
from nnfuzz.target import in_memory

from .zoo import BROKEN, HEALTHY, MLP, build, digits, softmax_over_batch_loss

#: What a broken model may say beside its failure: dead units pass an all-zero gradient
#: to the layers before them, which gradient-flow reports (as a step function would
#: cause it too) and leaves the failure to activations; a frozen model's one trainable
#: parameter starts at zero, so update-size has nothing to measure, and says SKIP (it
#: said PASS before issue #24: a check that measured nothing passed).
SIDE_EFFECTS = {"activations": {"gradient-flow": Status.WARN},
                "overfit": {"update-size": Status.SKIP}}


@functools.cache
def zoo_results(check: str | None) -> dict[str, CheckResult]:
    """Every check's result on the broken model meant for ``check`` (None: the healthy one)."""
    target = build(*(BROKEN[check] if check else HEALTHY))
    return {result.check: result for result in diagnose(target).results}


def test_a_healthy_digits_mlp_passes_every_check() -> None:
    assert {r.check: r.status for r in zoo_results(None).values()} == {
        check: Status.PASS for check in CHECKS}


@pytest.mark.parametrize("check", list(BROKEN))
def test_each_broken_model_fails_exactly_the_check_meant_for_it(check: str) -> None:
    expected = {name: Status.PASS for name in CHECKS}
    expected.update(SIDE_EFFECTS.get(check, {}))
    expected[check] = Status.FAIL
    assert {r.check: r.status for r in zoo_results(check).values()} == expected


def test_every_check_has_a_broken_model() -> None:
    assert sorted(BROKEN) == sorted(CHECKS)


def test_the_hints_name_the_broken_part() -> None:
    results = {check: zoo_results(check)[check] for check in BROKEN}
    assert "hidden.bias" in results["gradcheck"].hint
    assert "branch.weight" in results["gradient-flow"].hint and ".detach()" in results["gradient-flow"].hint
    assert "dead_relu" in results["activations"].hint
    assert "--lr" in results["update-size"].hint


def test_the_doctor_never_changes_the_users_model() -> None:
    target = build(*BROKEN["overfit"])
    model = target.model.train()
    before = {key: value.clone() for key, value in model.state_dict().items()}
    flags = {key: p.requires_grad for key, p in model.named_parameters()}
    diagnose(target)
    assert model.training
    assert {key: p.requires_grad for key, p in model.named_parameters()} == flags
    assert all(p.grad is None for p in model.parameters())
    for key, value in model.state_dict().items():
        assert torch.equal(value, before[key]), key


def test_a_softmax_over_the_batch_fails_loss_sanity() -> None:
    result = {r.check: r for r in diagnose(build(MLP, softmax_over_batch_loss)).results}
    assert result["loss-sanity"].status is Status.FAIL
    assert "dim=0" in result["loss-sanity"].hint


def test_a_negative_log_likelihood_of_raw_logits_fails_loss_sanity() -> None:
    def nll_of_logits(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return F.nll_loss(output, target, reduction="none")

    result = diagnose(build(MLP, nll_of_logits), DoctorConfig(checks=("loss-sanity",))).results
    assert [(r.status, r.value.split(":")[0]) for r in result] == [(Status.FAIL, "negative")]


def test_without_a_loss_the_checks_that_need_one_are_skipped_and_say_what_to_define() -> None:
    seeds, _ = digits()
    torch.manual_seed(0)
    results = diagnose(in_memory(MLP(), seeds)).results
    skipped = {r.check for r in results if r.status is Status.SKIP}
    assert skipped == {"initial-loss", "overfit", "gradient-flow", "update-size", "loss-sanity"}
    assert all("define loss(output, target)" in r.hint for r in results if r.check in skipped)
    assert {r.check: r.status for r in results if r.check not in skipped} == {
        "gradcheck": Status.PASS, "activations": Status.PASS}


def test_without_a_fresh_model_the_initial_loss_is_skipped_with_the_convention() -> None:
    target = build(*HEALTHY)
    target.init = None
    (result,) = diagnose(target, DoctorConfig(checks=("initial-loss",))).results
    assert result.status is Status.SKIP
    assert "init()" in result.hint and "pretrained=False" in result.hint


def test_the_gradient_check_finds_a_wrong_backward_without_a_loss_too() -> None:
    target = build(*BROKEN["gradcheck"])
    target.loss = None
    (result,) = diagnose(target, DoctorConfig(checks=("gradcheck",))).results
    assert result.status is Status.FAIL and "hidden.bias" in result.value


def test_exploding_gradients_fail_gradient_flow() -> None:
    def summed_and_scaled(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return 1e6 * F.cross_entropy(output, target, reduction="none")

    (result,) = diagnose(build(MLP, summed_and_scaled),
                         DoctorConfig(checks=("gradient-flow",))).results
    assert result.status is Status.FAIL and "explodes" in result.hint


def test_a_nan_in_a_layer_fails_activations_and_names_the_layer() -> None:
    class Log(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.log(x - 0.5)  # NaN wherever x < 0.5

    seeds, labels = digits()
    model = nn.Sequential(nn.Linear(64, 8), Log(), nn.Linear(8, 10))
    (result,) = diagnose(in_memory(model, seeds, targets=labels),
                         DoctorConfig(checks=("activations",))).results
    assert result.status is Status.FAIL and "'1'" in result.hint


def test_each_check_says_how_long_it_took_in_its_line_and_its_record() -> None:
    from nnfuzz.doctor.report import table

    results = zoo_results(None)
    assert all(result.seconds > 0 for result in results.values())
    assert all(result.record()["seconds"] >= 0 for result in results.values())
    lines = table(diagnose(build(*HEALTHY), DoctorConfig(checks=("gradcheck",))))
    assert lines[0].split()[:3] == ["STATUS", "CHECK", "TIME"]
    assert lines[1].split()[2].endswith("s")


def test_gradcheck_checks_one_direction_per_parameter_unless_asked_for_every_value() -> None:
    target = build(*HEALTHY)
    [directional] = diagnose(target, DoctorConfig(checks=("gradcheck",))).results
    [every] = diagnose(target, DoctorConfig(checks=("gradcheck",), gradcheck_all=True)).results
    assert "one random direction per parameter" in directional.threshold
    assert "every value up to 512" in every.threshold
    assert directional.status is every.status is Status.PASS
