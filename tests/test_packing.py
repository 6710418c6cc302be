"""Packing: designs trained together over one shared frozen backbone learn as they would alone.

Real MiniLM and real SST-2, one torch thread, tiny schedules. Dropout is off wherever packed and
alone are compared: its random masks are drawn for the packed batch as a whole, so they cannot
match a design's masks alone. The forward/backward checks use eval mode; the training checks,
where the trial loop itself calls ``model.train()``, load models with every dropout at p=0.
"""

from __future__ import annotations

import copy
import math

import pytest
import torch
from transformers import GPT2Config, GPT2ForSequenceClassification

from peftspace import Design
from peftspace.design import PeftspaceError
from peftspace.formats import make_format
from peftspace.packing import PackedModel, PackingError, design_copy, run_packed, train_packed
from peftspace.trial import Schedule, TrialCache, run_trial

LORA_TOP = Design(name="lora-top", grouping="uniform", num_groups=3, tuned_groups=(2,), strategies=("L", "L", "L"))
ADAPTER_BITFIT = Design(name="adapter+bitfit", strategies=("AB",))
DESIGNS = [LORA_TOP, ADAPTER_BITFIT, "mam"]  # mam: prefixes and parallel adapters in every layer
SEEDS = [0, 1, 2]
TINY = Schedule(max_steps=4, batch_size=8, max_length=48, max_train_examples=160, max_eval_examples=32,
                learning_rate=2e-3, log_every=1, precision="fp32")


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py



class NoDropoutCache(TrialCache):
    """Hands out models whose dropout modules all have p=0 (BERT's attention dropout reads them too)."""

    def model(self, backbone, model_class, kwargs, device="cpu"):
        model, newly_initialized = super().model(backbone, model_class, kwargs, device)
        for module in model.modules():
            if "dropout" in type(module).__name__.lower() and isinstance(getattr(module, "p", None), float):
                module.p = 0.0  # nn.Dropout, and a trial's own dropout modules if it swaps them in
        return model, newly_initialized


@pytest.fixture(scope="module")
def pack(sst2):
    """The pristine model, the format, and the three designs' models with perturbed trainables."""
    cache = TrialCache(max_models=0)
    fmt = make_format("head", sst2.spec, cache.tokenizer("minilm"), 48)
    pristine, newly_initialized = cache.model("minilm", fmt.model_class(), fmt.model_kwargs())
    models = []
    noise = torch.Generator().manual_seed(7)
    for design, seed in zip(DESIGNS, SEEDS):
        model, _, _ = design_copy(pristine, design, seed, fmt, newly_initialized)
        with torch.no_grad():  # zero-initialized up-projections and LoRA B would make many gradients trivially equal
            for p in model.parameters():
                if p.requires_grad:
                    p.add_(0.05 * torch.randn(p.shape, generator=noise))
        models.append(model)
    return pristine, fmt, models


def _batches(sst2, fmt, sizes):
    """Consecutive SST-2 training examples cut into ``sizes``: each slice alone, and all packed."""
    examples = sst2.train[:sum(sizes)]
    encoded = [fmt.encode(e) for e in examples]
    starts = [sum(sizes[:i]) for i in range(len(sizes))]
    alone = [fmt.collate(encoded[s:s + n], examples[s:s + n]) for s, n in zip(starts, sizes)]
    return alone, fmt.collate(encoded, examples)


def test_packed_losses_and_gradients_equal_each_design_alone(sst2, pack):
    pristine, fmt, models = pack
    sizes = [3, 1, 4]  # uneven; the single example has no padding of its own
    alone_batches, packed_batch = _batches(sst2, fmt, sizes)
    own_lengths = [b.inputs["input_ids"].shape[1] for b in alone_batches]
    assert min(own_lengths) < packed_batch.inputs["input_ids"].shape[1]  # slices are padded further when packed

    packed = PackedModel(pristine, models).eval()
    losses = packed.losses(packed_batch, sizes)
    sum(losses).backward()
    for model, batch, loss in zip(models, alone_batches, losses):
        alone = copy.deepcopy(model).eval()  # its own tensors, its own hooks
        expected = alone(**batch.inputs).loss
        expected.backward()
        assert loss.item() == pytest.approx(expected.item(), abs=1e-5)
        grads = {n: p.grad for n, p in alone.named_parameters() if p.requires_grad}
        got = {n: p.grad for n, p in model.named_parameters() if p.requires_grad}
        assert set(got) == set(grads) and len(got) > 2
        for name, grad in grads.items():
            assert grad is not None and grad.abs().max() > 0, name
            assert torch.allclose(got[name], grad, rtol=0, atol=1e-5), (name, (got[name] - grad).abs().max().item())
        model.zero_grad(set_to_none=True)


def test_frozen_tensors_are_shared_and_untouched(sst2, pack):
    pristine, fmt, models = pack
    frozen = {n: t for n, t in pristine.state_dict().items() if not n.startswith("classifier")}
    before = {n: t.clone() for n, t in frozen.items()}
    packed = PackedModel(pristine, models).train()
    optimizer = torch.optim.SGD([p for p in packed.parameters() if p.requires_grad], lr=0.1)
    _, batch = _batches(sst2, fmt, [2, 2, 2])
    for _ in range(2):
        sum(packed.losses(batch, [2, 2, 2])).backward()
        optimizer.step()
        optimizer.zero_grad()
    for model in models + [packed.host]:
        state = model.state_dict()
        assert all(state[n].data_ptr() == t.data_ptr() for n, t in frozen.items())
    assert all(torch.equal(frozen[n], before[n]) for n in frozen)
    storages = {t.untyped_storage().data_ptr(): t.untyped_storage().nbytes() for t in packed.state_dict().values()}
    backbone_bytes = sum(t.untyped_storage().nbytes() for t in frozen.values())
    assert sum(storages.values()) < 1.05 * backbone_bytes  # one backbone, plus small heads and designs


def test_train_packed_gives_each_design_its_trial_alone(sst2, monkeypatch):
    import peftspace.packing

    def poisoned(pristine, design, seed, fmt, newly_initialized):
        """The 'poisoned' design's model outputs NaN (no option makes a loss diverge on cue)."""
        model, plan, head = design_copy(pristine, design, seed, fmt, newly_initialized)
        if getattr(design, "name", "") == "poisoned":
            with torch.no_grad():
                model.classifier.bias.fill_(math.nan)
        return model, plan, head

    monkeypatch.setattr(peftspace.packing, "design_copy", poisoned)
    designs, seeds = [*DESIGNS, Design(name="poisoned")], [*SEEDS, 3]
    cache = NoDropoutCache(max_models=0)
    packed = run_packed(designs, "minilm", sst2, TINY, seeds, cache=cache)
    assert [r["status"] for r in packed] == ["ok", "ok", "ok", "failed"]
    assert packed[3]["reason"] == "loss became nan at step 0"
    for design, seed, record in zip(designs[:3], seeds, packed):
        alone = run_trial(design, "minilm", sst2, TINY, seed, cache=cache)
        assert record["packed_with"] == len(designs)
        assert [step for step, _ in record["losses"]] == [step for step, _ in alone["losses"]] == list(range(TINY.max_steps))
        for (_, got), (_, expected) in zip(record["losses"], alone["losses"]):
            assert got == pytest.approx(expected, abs=1e-4)  # the records round losses to 5 decimals
        assert record["trainable"] == alone["trainable"]
        assert record["metrics"] == alone["metrics"]


def test_a_failing_pack_fails_every_design_with_the_trial_reason(sst2):
    diverging = Schedule(**{**TINY.__dict__, "learning_rate": math.inf, "max_steps": 2})
    records = run_packed(DESIGNS[:2], "minilm", sst2, diverging, SEEDS[:2], cache=NoDropoutCache(max_models=0))
    alone = [run_trial(d, "minilm", sst2, diverging, s) for d, s in zip(DESIGNS[:2], SEEDS[:2])]
    assert [(r["status"], r["reason"]) for r in records] == [(a["status"], a["reason"]) for a in alone]
    assert all(r["status"] == "failed" for r in records)


def test_unsupported_packs_are_refused_clearly(sst2, pack):
    pristine, fmt, models = pack
    gpt2 = GPT2ForSequenceClassification(GPT2Config(n_layer=1, n_embd=32, n_head=2, vocab_size=64, num_labels=2,
                                                    problem_type="single_label_classification"))
    with pytest.raises(PackingError, match="gpt2 family"):
        PackedModel(gpt2, [])
    with pytest.raises(PackingError, match="one seed per design"):
        run_packed(DESIGNS, "minilm", sst2, TINY, seeds=[0])
    with pytest.raises(PackingError, match="'head' format only"):
        run_packed(DESIGNS, "minilm", sst2, Schedule(**{**TINY.__dict__, "format": "label-scoring"}))
    embeddings = models[0].bert.embeddings.word_embeddings.weight  # one tensor for all designs
    embeddings.requires_grad_(True)
    try:
        with pytest.raises(PackingError, match="word_embeddings"):
            PackedModel(pristine, models)
    finally:
        embeddings.requires_grad_(False)
    packed = PackedModel(pristine, models)
    _, batch = _batches(sst2, fmt, [2, 2, 2])
    with pytest.raises(PackingError, match="at least one row"):
        packed.losses(batch, [6, 0, 0])
    assert math.isfinite(sum(packed.losses(batch, [1, 2, 3])).item())


class DeviceCheckingCache(NoDropoutCache):
    """Remembers the device each model is asked for, and hooks every module to check its tensors are on ``expected``."""

    def __init__(self, expected: torch.device):
        super().__init__(max_models=0)
        self.asked, self.checked, self.wrong = [], [0], []

        def check(module, args, kwargs):  # a function, not a method: deep copies of the modules must share it
            tensors = [t for t in (*args, *kwargs.values()) if isinstance(t, torch.Tensor)]
            tensors += list(module.parameters(recurse=False)) + list(module.buffers(recurse=False))
            self.wrong.extend(f"{type(module).__name__}: {t.device}" for t in tensors if t.device != expected)
            self.checked[0] += len(tensors)

        self.check = check

    def model(self, backbone, model_class, kwargs, device="cpu"):
        self.asked.append(device)
        model, newly_initialized = super().model(backbone, model_class, kwargs, device)
        for module in model.modules():  # copies keep the hooks: the designs' models and the packed host are checked too
            module.register_forward_pre_hook(self.check, with_kwargs=True)
        return model, newly_initialized


def test_a_pack_runs_on_the_device_it_is_given(tiny_bert, sst2):
    cache = DeviceCheckingCache(torch.device("cpu"))
    trained = train_packed(DESIGNS, tiny_bert, sst2, TINY, SEEDS, cache=cache, device="cpu")
    assert cache.asked == [torch.device("cpu")]  # the pristine model was loaded for the pack's device
    assert [t.record["status"] for t in trained] == ["ok"] * len(DESIGNS)
    assert [t.record["device"] for t in trained] == ["cpu"] * len(DESIGNS)
    for t in trained:
        assert {x.device.type for x in (*t.model.parameters(), *t.model.buffers())} == {"cpu"}
    assert cache.checked[0] > 100 and cache.wrong == []  # every forward: training the pack and scoring each design


def test_a_cuda_pack_without_cuda_is_one_clear_error(tiny_bert, sst2, monkeypatch):
    class LoadsNothing(TrialCache):
        def model(self, *args, **kwargs):
            raise AssertionError("the pack loaded its model before checking its device")

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # this machine as one without CUDA, whatever it has
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 0)
    for device in ("cuda", "cuda:1"):
        with pytest.raises(PeftspaceError) as raised:
            run_packed(DESIGNS, tiny_bert, sst2, TINY, SEEDS, cache=LoadsNothing(max_models=0), device=device)
        assert f"device={device!r} asks for a CUDA GPU, but torch sees none on this machine" in str(raised.value)
        assert "use --device cpu" in str(raised.value)


def test_fp16_packs_scale_each_design_as_its_trial_alone(tiny_bert, sst2, monkeypatch):
    """fp16 (a GPU without bf16) forced on the CPU, whose autocast does fp16 too: each design keeps its own scaler.

    The scalers start at 2**20, where these tiny fp16 steps overflow: the first steps are skipped (each
    halving the scale) and the later ones taken, so a loss left unscaled or a scaler shared by the
    designs would show in the scales or the losses.
    """
    import peftspace.packing
    import peftspace.trial

    scalers, init_scale = [], 2.0 ** 20

    def kept_scaler(precision, device_type="cpu"):
        assert precision == "fp16"
        scalers.append(torch.amp.GradScaler(device_type, init_scale=init_scale))
        return scalers[-1]

    for module in (peftspace.packing, peftspace.trial):
        monkeypatch.setattr(module, "resolve_precision", lambda precision, device_type="cpu": "fp16")
        monkeypatch.setattr(module, "grad_scaler", kept_scaler)
    cache = NoDropoutCache(max_models=0)
    designs, seeds = DESIGNS[:2], SEEDS[:2]
    packed = run_packed(designs, tiny_bert, sst2, TINY, seeds, cache=cache, device="cpu")
    assert len(scalers) == len(designs) and scalers[0] is not scalers[1]
    alone = [run_trial(d, tiny_bert, sst2, TINY, s, cache=cache, device="cpu") for d, s in zip(designs, seeds)]
    for i, (record, expected) in enumerate(zip(packed, alone)):
        assert record["status"] == expected["status"] == "ok" and record["precision"] == expected["precision"] == "fp16"
        assert [step for step, _ in record["losses"]] == [step for step, _ in expected["losses"]]
        for (_, got), (_, wanted) in zip(record["losses"], expected["losses"]):
            assert got == pytest.approx(wanted, abs=2e-3)  # fp16 rounds the packed and the lone batches differently
        assert init_scale / 2 ** TINY.max_steps < scalers[i].get_scale() < init_scale  # some steps skipped, not all
        assert scalers[i].get_scale() == scalers[len(designs) + i].get_scale()  # the same steps skipped alone
