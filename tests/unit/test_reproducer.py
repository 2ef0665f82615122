"""Reproducer files: bit-identical round trips, and a clear error for anything else."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from safetensors.torch import save as save_safetensors

from nnfuzz import ReproducerError
from nnfuzz.reproducer import REQUIRED_METADATA, Failure, load_failure
from nnfuzz.storage import NAMES_KEY

SETTINGS = settings(max_examples=40, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture])

DTYPES = [torch.float32, torch.float64, torch.float16, torch.bfloat16,
          torch.int8, torch.uint8, torch.int16, torch.int32, torch.int64, torch.bool]


@st.composite
def tensors(draw: st.DrawFn) -> torch.Tensor:
    dtype = draw(st.sampled_from(DTYPES))
    shape = tuple(draw(st.lists(st.integers(0, 4), min_size=0, max_size=3)))
    rng = torch.Generator().manual_seed(draw(st.integers(0, 2**31 - 1)))
    if dtype.is_floating_point:
        values = torch.randn(shape, generator=rng, dtype=torch.float64) * 1e3
        tensor = values.to(dtype)
        # Special values must survive too.
        if tensor.numel() and draw(st.booleans()):
            tensor.view(-1)[0] = draw(st.sampled_from([float("nan"), float("inf"),
                                                       float("-inf"), -0.0]))
        return tensor
    if dtype == torch.bool:
        return torch.randint(0, 2, shape, generator=rng).bool()
    info = torch.iinfo(dtype)
    return torch.randint(max(info.min, -2**62), min(info.max, 2**62), shape, generator=rng,
                         dtype=torch.int64).to(dtype)


metadata_text = st.text(max_size=30)
required_text = st.text(min_size=1, max_size=30)


@st.composite
def failures(draw: st.DrawFn) -> Failure:
    inputs = tuple(draw(st.lists(tensors(), min_size=1, max_size=3)))
    # Named inputs (a model called with keywords) have a seed of the same names.
    names = draw(st.one_of(st.none(), st.lists(st.from_regex(r"[a-z_][a-z0-9_]{0,12}", fullmatch=True),
                                               min_size=len(inputs), max_size=len(inputs),
                                               unique=True).map(tuple)))
    seed_count = len(inputs) if names else draw(st.integers(1, 3))
    seed = tuple(draw(st.lists(tensors(), min_size=seed_count, max_size=seed_count)))
    keys = st.text(min_size=1, max_size=20).filter(
        lambda k: k not in (*REQUIRED_METADATA, NAMES_KEY))
    return Failure(inputs=inputs, seed=seed, objective=draw(required_text),
                   detail=draw(required_text), signature=draw(required_text),
                   label=draw(st.one_of(st.none(), tensors())), names=names,
                   metadata=draw(st.dictionaries(keys, metadata_text, max_size=5)))


def assert_bit_identical(loaded: torch.Tensor, saved: torch.Tensor) -> None:
    assert loaded.dtype == saved.dtype
    assert loaded.shape == saved.shape
    # Compare bytes, so NaN payloads and -0.0 count too.
    assert torch.equal(loaded.contiguous().view(-1).view(torch.uint8) if loaded.numel() else loaded,
                       saved.contiguous().view(-1).view(torch.uint8) if saved.numel() else saved)


@SETTINGS
@given(failure=failures())
def test_a_saved_failure_loads_back_bit_identical_with_its_metadata(failure: Failure,
                                                                     tmp_path: Path) -> None:
    path = failure.save(tmp_path / "repro.safetensors")
    loaded = load_failure(path)
    assert len(loaded.inputs) == len(failure.inputs)
    for got, want in zip(loaded.inputs, failure.inputs):
        assert_bit_identical(got, want)
    assert len(loaded.seed) == len(failure.seed)
    for got, want in zip(loaded.seed, failure.seed):
        assert_bit_identical(got, want)
    if failure.label is None:
        assert loaded.label is None
    else:
        assert loaded.label is not None
        assert_bit_identical(loaded.label, failure.label)
    assert (loaded.objective, loaded.detail, loaded.signature) == (
        failure.objective, failure.detail, failure.signature)
    assert loaded.metadata == failure.metadata
    assert loaded.names == failure.names
    assert loaded.path == path


def test_a_failure_of_named_inputs_keeps_each_tensor_under_its_name(tmp_path: Path) -> None:
    ids, mask = torch.tensor([5, 7, 0]), torch.tensor([1, 1, 0])
    failure = Failure(inputs=(ids, mask), seed=(ids, mask), objective="nonfinite", detail="NaN",
                      signature="s", names=("input_ids", "attention_mask"))
    path = failure.save(tmp_path / "repro.safetensors")
    from safetensors.torch import load_file

    stored = load_file(path)
    assert sorted(stored) == ["input.attention_mask", "input.input_ids",
                              "seed.attention_mask", "seed.input_ids"]
    assert torch.equal(stored["input.input_ids"], ids)
    assert load_failure(path).names == ("input_ids", "attention_mask")


def test_saving_into_a_folder_names_the_file_by_objective_and_content_hash(tmp_path: Path) -> None:
    failure = Failure(inputs=(torch.ones(3),), seed=(torch.zeros(3),), objective="nonfinite",
                      detail="NaN", signature="nonfinite:0")
    path = failure.save(tmp_path)
    assert path.parent == tmp_path
    assert path.name == f"nonfinite-{failure.content_hash[:16]}.safetensors"
    assert torch.equal(load_failure(path).inputs[0], torch.ones(3))
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".tmp-")]


def _valid_bytes(tmp_path: Path) -> bytes:
    failure = Failure(inputs=(torch.arange(12.0).view(3, 4), torch.tensor([1, 2, 3])),
                      seed=(torch.zeros(3, 4), torch.tensor([1, 2, 3])), objective="nonfinite",
                      detail="NaN in the output", signature="nonfinite:output",
                      label=torch.tensor(2), metadata={"run_seed": "0"})
    return failure.save(tmp_path / "valid.safetensors").read_bytes()


def _load_rejects(path: Path) -> ReproducerError:
    with pytest.raises(ReproducerError) as caught:
        load_failure(path)
    assert str(path) in str(caught.value), "the error does not name the file"
    return caught.value


@SETTINGS
@given(data=st.binary(max_size=300))
def test_loading_arbitrary_bytes_raises_reproducer_error_and_nothing_else(
        data: bytes, tmp_path: Path) -> None:
    path = tmp_path / "junk.safetensors"
    path.write_bytes(data)
    _load_rejects(path)


@SETTINGS
@given(data=st.data())
def test_loading_a_truncated_reproducer_raises_reproducer_error(data: st.DataObject,
                                                                 tmp_path: Path) -> None:
    valid = _valid_bytes(tmp_path)
    cut = data.draw(st.integers(0, len(valid) - 1))
    path = tmp_path / "cut.safetensors"
    path.write_bytes(valid[:cut])
    _load_rejects(path)


@SETTINGS
@given(data=st.data())
def test_a_reproducer_with_corrupted_bytes_loads_or_raises_reproducer_error_only(
        data: st.DataObject, tmp_path: Path) -> None:
    valid = bytearray(_valid_bytes(tmp_path))
    for _ in range(data.draw(st.integers(1, 4))):
        valid[data.draw(st.integers(0, len(valid) - 1))] = data.draw(st.integers(0, 255))
    path = tmp_path / "corrupt.safetensors"
    path.write_bytes(bytes(valid))
    try:
        loaded = load_failure(path)
    except ReproducerError:
        return
    assert loaded.inputs and loaded.seed and loaded.objective


def test_a_safetensors_file_without_metadata_is_not_a_reproducer(tmp_path: Path) -> None:
    path = tmp_path / "bare.safetensors"
    path.write_bytes(save_safetensors({"input.0": torch.ones(2), "seed.0": torch.ones(2)}))
    _load_rejects(path)


@pytest.mark.parametrize("missing", REQUIRED_METADATA)
def test_a_reproducer_missing_required_metadata_is_rejected_naming_it(missing: str,
                                                                      tmp_path: Path) -> None:
    metadata = {"objective": "nonfinite", "detail": "NaN", "signature": "nonfinite:output"}
    del metadata[missing]
    path = tmp_path / "partial.safetensors"
    path.write_bytes(save_safetensors({"input.0": torch.ones(2), "seed.0": torch.ones(2)},
                                      metadata=metadata))
    error = _load_rejects(path)
    assert missing in str(error)


@pytest.mark.parametrize("names", [("seed.0",), ("input.0",), ("input.1", "seed.0"),
                                   ("input.0", "input.2", "seed.0")])
def test_a_safetensors_file_without_numbered_inputs_and_seeds_is_rejected(
        names: tuple[str, ...], tmp_path: Path) -> None:
    path = tmp_path / "tensors.safetensors"
    metadata = {"objective": "nonfinite", "detail": "NaN", "signature": "nonfinite:output"}
    path.write_bytes(save_safetensors({name: torch.ones(2) for name in names}, metadata=metadata))
    _load_rejects(path)


class _Explodes:
    """Unpickling this would record that code ran."""

    ran = False

    def __reduce__(self):
        return (_mark_ran, ())


def _mark_ran() -> None:
    _Explodes.ran = True


@pytest.mark.parametrize("zipfile", [True, False])
def test_a_torch_save_pickle_is_rejected_without_unpickling_it(zipfile: bool,
                                                               tmp_path: Path) -> None:
    path = tmp_path / "pickled.safetensors"
    torch.save({"input.0": torch.ones(2), "hook": _Explodes()}, path,
               _use_new_zipfile_serialization=zipfile)
    _Explodes.ran = False
    _load_rejects(path)
    assert not _Explodes.ran, "loading a reproducer unpickled its contents"


def test_a_plain_pickle_is_rejected_without_unpickling_it(tmp_path: Path) -> None:
    path = tmp_path / "plain.safetensors"
    path.write_bytes(pickle.dumps(_Explodes()))
    _Explodes.ran = False
    _load_rejects(path)
    assert not _Explodes.ran


def test_a_header_of_deeply_nested_json_is_rejected(tmp_path: Path) -> None:
    header = b"[" * 100_000 + b"]" * 100_000
    path = tmp_path / "deep.safetensors"
    path.write_bytes(len(header).to_bytes(8, "little") + header)
    _load_rejects(path)


def test_a_header_that_is_not_an_object_is_rejected(tmp_path: Path) -> None:
    header = json.dumps(["input.0", "seed.0"]).encode()
    path = tmp_path / "list.safetensors"
    path.write_bytes(len(header).to_bytes(8, "little") + header)
    _load_rejects(path)


def test_a_missing_file_and_a_folder_raise_reproducer_error(tmp_path: Path) -> None:
    _load_rejects(tmp_path / "absent.safetensors")
    _load_rejects(tmp_path)


def test_a_failure_whose_input_is_its_seed_saves_and_loads(tmp_path: Path) -> None:
    x = torch.arange(4.0)
    failure = Failure(inputs=(x,), seed=(x,), objective="nonfinite", detail="d", signature="s")
    loaded = load_failure(failure.save(tmp_path / "same.safetensors"))
    assert torch.equal(loaded.inputs[0], x) and torch.equal(loaded.seed[0], x)
