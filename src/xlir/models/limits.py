"""What an encoder's pass costs in FLOPs, and what this machine can do at most: the limit on record.

FLOPs of a BERT-style encoder forward over ``b`` texts padded to ``L`` tokens (multiply-add = 2)::

    layers * (b * L * 2 * (4 d^2 + 2 d ff)  +  b * 4 * L^2 * d)
              Q, K, V, O and the two FFN       QK^T and attention x V

Word-embedding lookups, layer norms, softmax and pooling are left out (well under 1% here). The
fp32 peak is cores x clock x FLOP per cycle; the FLOP per cycle follows torch's CPU capability
(AVX-512: 2 FMA units x 16 lanes x 2 = 64; AVX2: 2 x 8 x 2 = 32), which assumes two FMA units
per core, as on the server cores these machines run on. Used by benchmarks/bench_limit.py and
benchmarks/profile_training_step.py; docs/RESULTS.md quotes them.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

FLOP_PER_CYCLE = {"AVX512": 64, "AVX2": 32, "DEFAULT": 16}


@dataclass(frozen=True)
class EncoderShape:
    layers: int
    hidden: int
    intermediate: int

    @property
    def linear_flops_per_token(self) -> float:
        return self.layers * 2.0 * (4 * self.hidden**2 + 2 * self.hidden * self.intermediate)


def encoder_shape(model) -> EncoderShape:
    """The transformer's dimensions, from a SentenceTransformer or a Hugging Face config."""
    config = getattr(model, "config", None) or model[0].auto_model.config
    return EncoderShape(config.num_hidden_layers, config.hidden_size, config.intermediate_size)


def forward_flops_of_batch(shape: EncoderShape, b: int, length: int) -> float:
    """FLOPs of one forward of ``b`` texts padded to ``length`` tokens (formula in the module docstring)."""
    return shape.linear_flops_per_token * b * length + shape.layers * 4.0 * b * length**2 * shape.hidden


def pass_flops(shape: EncoderShape, lengths: list[int], batch_size: int) -> dict[str, float]:
    """FLOPs of encoding texts of token ``lengths`` the way sentence-transformers' ``encode`` does
    (sorted by length, batches of ``batch_size``, each padded to its longest): as computed, and the
    useful part (no padding)."""
    ordered = sorted(lengths, reverse=True)
    computed = useful = 0.0
    for start in range(0, len(ordered), batch_size):
        batch = ordered[start:start + batch_size]
        computed += forward_flops_of_batch(shape, len(batch), batch[0])
        useful += sum(forward_flops_of_batch(shape, 1, n) for n in batch)
    return {"computed": computed, "useful": useful, "tokens": float(sum(lengths)),
            "padded_tokens": float(sum(ordered[s] * len(ordered[s:s + batch_size]) for s in range(0, len(ordered), batch_size)))}


def _clock_hz() -> float:
    try:
        mhz = [float(line.split(":")[1]) for line in Path("/proc/cpuinfo").read_text().splitlines()
               if line.startswith("cpu MHz")]
        return max(mhz) * 1e6
    except (OSError, ValueError, IndexError):
        return 0.0


@dataclass(frozen=True)
class MachinePeak:
    cores: int
    clock_ghz: float
    capability: str
    flop_per_cycle: int
    fp32_peak_flops: float

    def as_dict(self) -> dict:
        return asdict(self)


def machine_peak() -> dict:
    """cores x clock x FLOP per cycle, with the parts it came from (clock: /proc/cpuinfo's ``cpu MHz``)."""
    import torch

    from xlir.models.runtime import available_cores

    capability = torch.backends.cpu.get_cpu_capability()
    per_cycle = FLOP_PER_CYCLE.get(capability, FLOP_PER_CYCLE["DEFAULT"])
    cores, hz = available_cores(), _clock_hz()
    return MachinePeak(cores, round(hz / 1e9, 3), capability, per_cycle, cores * hz * per_cycle).as_dict()


__all__ = ["EncoderShape", "MachinePeak", "encoder_shape", "forward_flops_of_batch", "machine_peak", "pass_flops"]
