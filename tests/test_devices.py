"""Devices: explicit CPU trials, one clear error for CUDA without CUDA, GPU-pinned workers, tensors on the trial's device,
and trials from an already loaded model."""

from __future__ import annotations

import pytest
import torch

from peftspace import Design
from peftspace.design import PeftspaceError
from peftspace.devices import WorkerSlot, resolve_device, worker_slots
from peftspace.trial import Schedule, run_trial

TINY = Schedule(max_steps=4, batch_size=8, max_length=32, max_train_examples=32, max_eval_examples=16, learning_rate=2e-3,
                log_every=1)


@pytest.fixture
def no_cuda(monkeypatch):
    """This machine as one without CUDA, whatever it has."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 0)


@pytest.fixture
def gpus(monkeypatch):
    """A machine whose torch sees ``n`` CUDA GPUs (faked: nothing touches CUDA)."""
    def fake(n: int) -> None:
        monkeypatch.setattr(torch.cuda, "is_available", lambda: n > 0)
        monkeypatch.setattr(torch.cuda, "device_count", lambda: n)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    return fake


def test_device_names(no_cuda):
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto") == torch.device("cpu")  # no GPU: auto is the CPU
    with pytest.raises(PeftspaceError, match=r"device='tpu' is not one of auto \| cpu \| cuda \| cuda:N"):
        resolve_device("tpu")
    with pytest.raises(PeftspaceError, match="is not one of"):
        resolve_device("cuda:x")


@pytest.mark.parametrize("device", ["cuda", "cuda:1"])
def test_a_cuda_request_without_cuda_is_one_clear_error(no_cuda, tiny_bert, sst2, device):
    for call in (lambda: resolve_device(device), lambda: run_trial("lora", tiny_bert, sst2, TINY, device=device),
                 lambda: worker_slots("auto", device)):
        with pytest.raises(PeftspaceError) as raised:
            call()
        assert f"device={device!r} asks for a CUDA GPU, but torch sees none on this machine" in str(raised.value)
        assert "use --device cpu" in str(raised.value)


def test_a_cuda_index_beyond_the_gpus_is_an_error(gpus):
    gpus(2)
    with pytest.raises(PeftspaceError, match=r"torch sees 2 CUDA GPU\(s\), cuda:0..cuda:1"):
        resolve_device("cuda:2")


def test_sweep_and_worker_refuse_cuda_without_cuda_before_anything_runs(no_cuda, tmp_path):
    from peftspace.sweep import run_sweep, run_worker

    storage = f"sqlite:///{tmp_path / 's.db'}"
    with pytest.raises(PeftspaceError, match="asks for a CUDA GPU"):
        run_sweep("S0", "minilm", "sst2", 2, workers="auto", storage=storage, device="cuda")
    assert not (tmp_path / "s.db").exists()  # refused before the sweep was queued
    with pytest.raises(PeftspaceError, match="asks for a CUDA GPU"):
        run_worker(storage, "nothing", device="cuda")
    from peftspace.discover import run_discovery

    with pytest.raises(PeftspaceError, match="asks for a CUDA GPU"):
        run_discovery("minilm", "sst2", 2, storage=storage, out_dir=tmp_path / "out", workers="auto", device="cuda")
    assert not (tmp_path / "s.db").exists() and not (tmp_path / "out").exists()


@pytest.mark.parametrize("command", [
    ["train", "--task", "sst2", "--steps", "1"],
    ["worker", "--storage", "sqlite:///unused.db", "--study", "x"],
    ["sweep", "--space", "S0", "--tasks", "sst2", "--samples", "2", "--workers", "auto"],
    ["compare", "--designs", "lora", "--tasks", "sst2", "--seeds", "0"],
    ["discover", "--tasks", "sst2", "--workers", "auto"],
])
def test_the_cli_says_so_in_one_line(no_cuda, run_cli, data_dir, tmp_path, monkeypatch, command):
    monkeypatch.chdir(tmp_path)
    code, out = run_cli(*command, "--data-dir", str(data_dir), "--device", "cuda")
    assert code == 2, out
    assert "error: device='cuda' asks for a CUDA GPU, but torch sees none on this machine" in " ".join(out.split())
    assert "Traceback" not in out and len(out.strip().splitlines()) <= 3


def test_workers_auto_pins_one_worker_per_gpu_and_divides_the_cpus(gpus):
    gpus(4)
    slots = worker_slots("auto", "auto", cpu_count=16)
    assert slots == [WorkerSlot("cuda:0", 4, {"CUDA_VISIBLE_DEVICES": str(i)}) for i in range(4)]
    assert worker_slots("auto", "cuda", cpu_count=6) == [WorkerSlot("cuda:0", 1, {"CUDA_VISIBLE_DEVICES": str(i)})
                                                         for i in range(4)]  # 6 // 4 threads each
    # a count is dealt round-robin over the GPUs; cuda:N pins every worker to GPU N
    assert [s.env["CUDA_VISIBLE_DEVICES"] for s in worker_slots(6, "auto", cpu_count=12)] == ["0", "1", "2", "3", "0", "1"]
    assert worker_slots(6, "auto", cpu_count=12)[0].threads == 2
    assert worker_slots("auto", "cuda:2", cpu_count=8) == [WorkerSlot("cuda:0", 8, {"CUDA_VISIBLE_DEVICES": "2"})]
    assert worker_slots(2, "cuda", threads=3, cpu_count=8)[1] == WorkerSlot("cuda:0", 3, {"CUDA_VISIBLE_DEVICES": "1"})
    assert [s.device for s in worker_slots(2, "cpu", cpu_count=8)] == ["cpu", "cpu"]  # cpu on a GPU machine: no pinning
    assert worker_slots(2, "cpu", cpu_count=8)[0].env == {}


def test_workers_auto_keeps_the_ids_of_an_inherited_cuda_visible_devices(gpus, monkeypatch):
    gpus(2)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3,5")
    assert [s.env for s in worker_slots("auto", "auto", cpu_count=4)] == [{"CUDA_VISIBLE_DEVICES": "3"},
                                                                          {"CUDA_VISIBLE_DEVICES": "5"}]
    assert worker_slots("auto", "cuda:1", cpu_count=4)[0].env == {"CUDA_VISIBLE_DEVICES": "5"}


def test_workers_auto_without_gpus_is_the_cpu_default(gpus):
    gpus(0)
    assert worker_slots("auto", "auto", cpu_count=16) == [WorkerSlot("cpu", 16, {})]
    assert worker_slots(0, "auto", cpu_count=16) == []
    assert worker_slots(2, "auto", cpu_count=16) == [WorkerSlot("cpu", 8, {})] * 2
    with pytest.raises(PeftspaceError, match="non-negative integer or 'auto'"):
        worker_slots(-1)


def test_a_worker_process_sets_its_environment_before_it_runs(monkeypatch):
    import peftspace.sweep.worker as worker

    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1,2,3")  # restored after the test
    seen = {}

    def fake_run_worker(storage, studies, data_dir, **kwargs):
        import os

        seen.update(env=os.environ["CUDA_VISIBLE_DEVICES"], **kwargs)
        return 0

    monkeypatch.setattr(worker, "run_worker", fake_run_worker)
    worker.worker_process("sqlite:///x.db", ["s"], None, 2, None, 5, "cuda:0", {"CUDA_VISIBLE_DEVICES": "2"})
    assert seen == {"env": "2", "threads": 2, "max_consecutive_failures": 5, "device": "cuda:0"}


def test_local_workers_start_one_process_per_slot(gpus, monkeypatch):
    import peftspace.sweep.sweep as sweep

    gpus(3)
    started = []

    class FakeProcess:
        def __init__(self, target, name, args):
            started.append(args)
            self.exitcode = 0

        def start(self):
            pass

        def is_alive(self):
            return False

    class FakeContext:
        Process = FakeProcess

        def SimpleQueue(self):  # noqa: N802 (multiprocessing's name)
            return None

    import multiprocessing

    monkeypatch.setattr(multiprocessing, "get_context", lambda kind: FakeContext())
    sweep._run_processes("sqlite:///x.db", ["s"], None, worker_slots("auto", "auto", cpu_count=9), dict, None, 5)
    assert [(a[3], a[6], a[7]) for a in started] == [(3, "cuda:0", {"CUDA_VISIBLE_DEVICES": str(i)}) for i in range(3)]


def test_every_tensor_of_a_trial_is_on_its_device(tiny_bert, sst2, monkeypatch):
    """Every module's parameters, buffers and tensor inputs, at every forward of a real trial (training and scoring)."""
    expected, checked, wrong = torch.device("cpu"), [0], []

    def check(module, args, kwargs):
        tensors = [t for t in (*args, *kwargs.values()) if isinstance(t, torch.Tensor)]
        tensors += list(module.parameters(recurse=False)) + list(module.buffers(recurse=False))
        wrong.extend(f"{type(module).__name__}: {t.device}" for t in tensors if t.device != expected)
        checked[0] += len(tensors)

    from peftspace.cache import TrialCache

    real_model = TrialCache.model

    def hooked_model(self, *args, **kwargs):  # the trial's own model, hooked for its whole life (training and scoring)
        model, newly_initialized = real_model(self, *args, **kwargs)
        for module in model.modules():
            module.register_forward_pre_hook(check, with_kwargs=True)
        return model, newly_initialized

    monkeypatch.setattr(TrialCache, "model", hooked_model)
    record = run_trial(Design(strategies=("AL",), budget_fraction=0.05), tiny_bert, sst2, TINY, seed=0, device="cpu")
    assert record["status"] == "ok" and record["device"] == "cpu"
    assert checked[0] > 100 and wrong == []


def test_a_trial_from_a_loaded_model_matches_its_saved_path_and_leaves_it_alone(tiny_bert, sst2):
    from transformers import BertForSequenceClassification

    model = BertForSequenceClassification.from_pretrained(tiny_bert)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    trainable = {n: p.requires_grad for n, p in model.named_parameters()}
    design = Design(strategies=("PL",), budget_fraction=0.05)
    from_path = run_trial(design, tiny_bert, sst2, TINY, seed=3, device="cpu")
    from_object = run_trial(design, model, sst2, TINY, seed=3, device="cpu")
    assert from_path["status"] == from_object["status"] == "ok"
    assert from_object["metrics"] == from_path["metrics"] and from_object["losses"] == from_path["losses"]
    assert from_object["trainable"] == from_path["trainable"] and from_object["model"] == tiny_bert
    after = model.state_dict()
    assert after.keys() == before.keys() and all(torch.equal(after[k], before[k]) for k in before)
    assert {n: p.requires_grad for n, p in model.named_parameters()} == trainable  # nothing frozen, nothing injected
    assert not any("peftspace" in n for n, _ in model.named_modules())


def test_a_loaded_model_without_a_tokenizer_says_what_to_pass(tiny_bert, sst2):
    from transformers import AutoTokenizer, BertForSequenceClassification

    model = BertForSequenceClassification(BertForSequenceClassification.from_pretrained(tiny_bert).config)
    model.name_or_path = ""
    with pytest.raises(PeftspaceError, match="has no name_or_path to find its tokenizer: pass tokenizer="):
        run_trial("lora", model, sst2, TINY, device="cpu")
    record = run_trial("lora", model, sst2, TINY, device="cpu", tokenizer=AutoTokenizer.from_pretrained(tiny_bert))
    assert record["status"] == "ok" and record["model"] == "BertForSequenceClassification"
    with pytest.raises(PeftspaceError, match="a backbone must be a name, a path or a loaded transformers PreTrainedModel"):
        run_trial("lora", torch.nn.Linear(2, 2), sst2, TINY, device="cpu")


def test_fp16_with_a_scaler_where_a_gpu_lacks_bf16_and_explicit_bf16_refused_there(monkeypatch):
    import peftspace.precision as precision

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    # A T4 or V100: torch says bf16 is supported only when emulation counts (its default).
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: including_emulation)
    assert precision.resolve_precision("auto", "cuda") == "fp16"
    assert precision.resolve_precision("fp32", "cuda") == "fp32"
    with pytest.raises(PeftspaceError) as raised:
        precision.resolve_precision("bf16", "cuda")
    assert str(raised.value) == ("precision='bf16' but this GPU does not do bf16 natively "
                                 "(torch.cuda.is_bf16_supported(including_emulation=False) is False; torch would emulate it, "
                                 "slowly); use precision='auto' (fp16 with a gradient scaler on this GPU) or 'fp32'")
    assert precision.resolve_precision("bf16", "cpu") == "bf16"  # with bf16 or not, the CPU's autocast does every op: kept
    assert isinstance(precision.grad_scaler("fp16", "cuda"), torch.amp.GradScaler)
    assert precision.grad_scaler("bf16", "cuda") is None and precision.grad_scaler("fp32", "cpu") is None
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: True)  # Ampere and later
    assert precision.resolve_precision("auto", "cuda") == "bf16" and precision.resolve_precision("bf16", "cuda") == "bf16"
