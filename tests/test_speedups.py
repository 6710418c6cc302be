"""Speed-ups that must not change what a trial learns from: length bucketing and bf16 autocast.

Bucketing reorders examples but visits each exactly once per epoch; bf16 autocast changes the
forward passes' arithmetic only, with fp32 weights and optimizer, so losses stay close to fp32's.
Real MiniLM and real SST-2, one torch thread (tiny schedules; the machine has two cores).
"""

from __future__ import annotations

import json
import math
from itertools import pairwise

import pytest
import torch

from peftspace.formats import HeadFormat
from peftspace.trial import Encodings, Schedule, batch_stream, native_bf16, resolve_precision, run_trial

TINY = Schedule(max_steps=6, batch_size=8, max_length=48, max_train_examples=160, max_eval_examples=48,
                learning_rate=2e-3, log_every=1)


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py



def _epochs(size, batch_size, window, epochs, seed=0, lengths=None):
    """``epochs`` epochs of ``batch_stream``, each a list of batches."""
    lengths = lengths or [(7 * i) % 23 for i in range(size)]
    stream = batch_stream(size, batch_size, window, torch.Generator().manual_seed(seed),
                          lambda chunk: [lengths[i] for i in chunk])
    per_epoch = math.ceil(size / batch_size)
    return [[next(stream) for _ in range(per_epoch)] for _ in range(epochs)]


@pytest.mark.parametrize("size, batch_size, window", [
    (103, 8, 0), (103, 8, 1), (103, 8, 2), (103, 8, 5), (103, 8, 50), (96, 8, 4), (96, 8, 3), (5, 8, 2), (1, 4, 3),
])
def test_bucketing_visits_every_example_exactly_once_per_epoch(size, batch_size, window):
    lengths = [(7 * i) % 23 for i in range(size)]
    epochs = _epochs(size, batch_size, window, epochs=4, lengths=lengths)
    for batches in epochs:
        assert sorted(i for batch in batches for i in batch) == list(range(size))
        short = [len(b) for b in batches if len(b) != batch_size]
        assert short == ([size % batch_size] if size % batch_size else [])  # one last partial batch, no empty one
        if window > 1:  # every window is cut from one sorted run: its batches' length ranges do not interleave
            for start in range(0, len(batches), window):
                spans = sorted((min(lengths[i] for i in b), max(lengths[i] for i in b)) for b in batches[start:start + window])
                assert all(high <= low for (_, high), (low, _) in pairwise(spans))
    if size > batch_size:  # (one batch, sorted by length, is the same every epoch)
        assert epochs[0] != epochs[1]  # each epoch draws its own order
    assert epochs == _epochs(size, batch_size, window, epochs=4, lengths=lengths)  # and the seed fixes them all


def test_without_bucketing_the_stream_is_the_plain_shuffle():
    """Window 0 gives exactly the batches of the loop before bucketing (records made then still reproduce)."""
    generator, order, plain = torch.Generator().manual_seed(3), [], []
    for _ in range(40):
        if not order:
            order = torch.randperm(37, generator=generator).tolist()
        plain.append(order[:8])
        order = order[8:]
    assert [b for epoch in _epochs(37, 8, 0, epochs=8, seed=3) for b in epoch] == plain


def test_bucketing_cuts_padding_on_real_sst2(minilm_path, sst2):
    """Pad tokens in one epoch of real collated batches (3,200 SST-2 sentences, batch 32): bucketing removes most."""
    from transformers import AutoTokenizer

    fmt = HeadFormat(sst2.spec, AutoTokenizer.from_pretrained(minilm_path), max_length=64, max_target_length=64)
    encodings, size = Encodings(sst2, fmt), 3200

    def pads(window):
        (batches,) = _epochs(size, 32, window, epochs=1, lengths=[fmt.length(e) for e in encodings.get("train", list(range(size)))])
        collated = [fmt.collate(encodings.get("train", b), [sst2.train[i] for i in b]) for b in batches]
        return sum(int((c.inputs["attention_mask"] == 0).sum()) for c in collated), sum(c.inputs["input_ids"].numel() for c in collated)

    (plain, plain_total), (bucketed, bucketed_total) = pads(0), pads(50)
    assert bucketed < 0.2 * plain, (plain, bucketed)  # observed: 87,016 -> 2,056 pad tokens (67% -> 5% of all)
    assert plain_total - plain == bucketed_total - bucketed  # the same real tokens, only less padding


@pytest.mark.parametrize("precision, window", [("bf16", 0), ("fp32", 4), ("bf16", 4)])
def test_the_same_seed_gives_the_same_record(sst2, precision, window):
    schedule = Schedule(**{**TINY.__dict__, "precision": precision, "bucket_window": window, "max_train_examples": 60})
    first, again = (run_trial("lora", "minilm", sst2, schedule, seed=0) for _ in range(2))
    assert first["status"] == "ok" and first["precision"] == precision and first["schedule"]["bucket_window"] == window
    assert {**first, "wall_time_s": None} == {**again, "wall_time_s": None}
    assert first["steps"] == 6 and len(first["losses"]) == 6  # 60 examples, batch 8: the 8th batch of an epoch is short


def test_bucketing_changes_the_order_not_the_data(sst2):
    plain = run_trial("lora", "minilm", sst2, Schedule(**{**TINY.__dict__, "precision": "fp32", "bucket_window": 0}), seed=0)
    bucketed = run_trial("lora", "minilm", sst2, Schedule(**{**TINY.__dict__, "precision": "fp32", "bucket_window": 4}), seed=0)
    assert plain["splits"] == bucketed["splits"] and plain["steps"] == bucketed["steps"]
    assert plain["losses"] != bucketed["losses"]


# bf16 keeps 8 significant bits: each rounding is off by up to 2^-9 (0.2%) of its value, and the errors
# of many roundings partly cancel, so the near-zero logits of a fresh head and with them a loss near
# ln 2 move by well under 1e-3 (observed: at most 1.1e-4 over six steps, later steps also carrying the
# bf16 gradients of earlier ones). 0.01 (1.5% of the loss, ~100x what was observed) leaves room for
# other CPUs' bf16 kernels and accumulation orders.
LOSS_TOLERANCE = 0.01


@pytest.mark.parametrize("design", ["lora", "mam", "s4-t5-base-recalled"])  # LoRA; prefix + adapter; all four strategies
def test_fp32_and_bf16_losses_are_close(sst2, design):
    fp32 = run_trial(design, "minilm", sst2, Schedule(**{**TINY.__dict__, "precision": "fp32"}), seed=0)
    bf16 = run_trial(design, "minilm", sst2, Schedule(**{**TINY.__dict__, "precision": "bf16"}), seed=0)
    assert fp32["status"] == bf16["status"] == "ok"
    gaps = [abs(a - b) for (_, a), (_, b) in zip(fp32["losses"], bf16["losses"])]
    assert len(gaps) == 6 and max(gaps) < LOSS_TOLERANCE, gaps
    assert max(gaps) > 0  # bf16 really computed something else


def test_a_diverging_bf16_trial_is_still_recorded_as_failed(sst2):
    record = run_trial("lora", "minilm", sst2, Schedule(**{**TINY.__dict__, "precision": "bf16", "learning_rate": math.inf}), seed=0)
    assert record["status"] == "failed" and "loss became nan" in record["reason"]


def _linear_output_dtypes(sst2, precision):
    """The dtypes of every nn.Linear output during a trial, apart for training and evaluation."""
    seen = {True: set(), False: set()}

    def hook(module, args, output):
        if isinstance(module, torch.nn.Linear):
            seen[module.training].add(output.dtype)

    handle = torch.nn.modules.module.register_module_forward_hook(hook)
    try:
        record = run_trial("lora", "minilm", sst2, Schedule(**{**TINY.__dict__, "max_steps": 2, "precision": precision}), seed=0)
    finally:
        handle.remove()
    assert record["status"] == "ok"
    return record, seen


def test_fp32_runs_without_autocast_and_bf16_with_it(sst2):
    record, seen = _linear_output_dtypes(sst2, "fp32")
    assert record["precision"] == "fp32" and seen == {True: {torch.float32}, False: {torch.float32}}
    record, seen = _linear_output_dtypes(sst2, "bf16")
    assert record["precision"] == "bf16" and seen == {True: {torch.bfloat16}, False: {torch.bfloat16}}


def test_auto_follows_the_detection(sst2, monkeypatch):
    import peftspace.precision

    record = run_trial("lora", "minilm", sst2, Schedule(**{**TINY.__dict__, "max_steps": 1}), seed=0)
    assert record["schedule"]["precision"] == "auto" and record["precision"] == ("bf16" if native_bf16() else "fp32")
    for native, resolved in ((True, "bf16"), (False, "fp32")):
        monkeypatch.setattr(peftspace.precision, "native_bf16", lambda device_type="cpu", native=native: native)
        assert resolve_precision("auto") == resolved
        assert resolve_precision("fp32") == "fp32" and resolve_precision("bf16") == "bf16"


CPUINFO = """processor\t: 0
vendor_id\t: AuthenticAMD
model name\t: AMD EPYC 9R14 96-Core Processor
flags\t\t: fpu vme sse sse2 avx avx2 avx512f avx512bw avx512vl {extra}
bugs\t\t: sysret_ss_attrs
"""


@pytest.mark.parametrize("extra, capability, native", [
    ("avx512_bf16", "AVX512", True),
    ("amx_bf16 amx_tile", "AVX512", True),
    ("avx512_vnni", "AVX512", False),
    ("", "AVX2", False),
    ("", "AVX512_BF16", True),
    ("", "AMX", True),
])
def test_cpu_bf16_detection_from_cpuinfo(extra, capability, native):
    assert native_bf16("cpu", CPUINFO.format(extra=extra), capability) is native
    assert native_bf16("cpu", "", "DEFAULT") is False  # no /proc/cpuinfo (macOS, Windows): fp32
    assert native_bf16("cpu", "bugs\t: avx512_bf16\n", "AVX2") is False  # only the flags line counts


def test_cuda_bf16_detection_asks_torch_without_emulation(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    for supported in (True, False):
        monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True, supported=supported: supported)
        assert native_bf16("cuda") is supported
    # A T4 or V100 emulates bf16: torch's default says True there, but it is not native.
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: including_emulation)
    assert native_bf16("cuda") is False
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert native_bf16("cuda") is False


def test_bad_settings_are_reported_together():
    from peftspace.design import PeftspaceError

    with pytest.raises(PeftspaceError, match=r"precision='fp16' is not one of \['auto', 'bf16', 'fp32'\].*bucket_window=-1"):
        Schedule(precision="fp16", bucket_window=-1)


def test_the_flags_reach_the_record(run_cli, tmp_path, data_dir):
    for command in ("train", "compare", "sweep", "discover"):
        code, out = run_cli(command, "--help")
        assert code == 0 and "--precision" in out and "--bucket-window" in out, command
    code, out = run_cli("train", "--design", "lora", "--task", "sst2", "--data-dir", str(data_dir), "--out", str(tmp_path / "run"),
                        "--steps", "2", "--batch-size", "4", "--max-length", "32", "--max-train-examples", "16",
                        "--max-eval-examples", "8", "--precision", "fp32", "--bucket-window", "3")
    assert code == 0, out
    record = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert record["precision"] == "fp32" and record["schedule"]["precision"] == "fp32" and record["schedule"]["bucket_window"] == 3
    code, out = run_cli("train", "--task", "sst2", "--data-dir", str(data_dir), "--precision", "fp16")
    assert code == 2 and "precision='fp16'" in out


def test_scoring_batches_by_length_and_returns_predictions_in_order(sst2):
    from peftspace.trial import predict, train_trial

    trained = train_trial("lora", "minilm", sst2, Schedule(max_steps=3, batch_size=8, max_length=64, max_train_examples=24,
                                                           max_eval_examples=8, score_validation=False), seed=0)
    assert set(trained.record["metrics"]) == {"test"} and trained.record["validation_score"] is None
    examples = sst2.test[:40]
    lengths = [len(trained.format.encode(e)["input_ids"]) for e in examples]
    assert lengths != sorted(lengths)  # so the batches really are reordered
    trained.model.eval()
    alone = [predict(trained.model, trained.format, [e], 1)[0] for e in examples]
    assert predict(trained.model, trained.format, examples, 8) == alone
