"""Device mesh and sharding, named in one place.

The mesh has three named axes: ``data`` (pure data parallelism), ``fsdp`` (data parallelism
that also shards parameters and optimiser state), ``tensor`` (model parallelism over heads and
feed-forward width). Models name their axes logically (``embed``, ``mlp``, ...);
``LOGICAL_AXIS_RULES`` maps those names to mesh axes. This replaces t5x's partitioner: what
was ``pjit`` is ``jax.jit`` with ``in_shardings``/``out_shardings`` over this mesh.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
from collections.abc import Iterator, Sequence
from typing import Any

import flax.linen as nn
import jax
import numpy as np
from jax.experimental import mesh_utils
from jax.sharding import Mesh, NamedSharding, PartitionSpec

logger = logging.getLogger(__name__)

MESH_AXES = ("data", "fsdp", "tensor")
BATCH_AXES = ("data", "fsdp")

LOGICAL_AXIS_RULES: tuple[tuple[str, Any], ...] = (
    ("batch", BATCH_AXES),
    ("vocab", "tensor"),
    ("embed", "fsdp"),
    ("mlp", "tensor"),
    ("heads", "tensor"),
    ("kv_heads", "tensor"),
    ("kv", None),
    ("proj", "tensor"),
    ("length", None),
    ("position", None),
    ("relpos_buckets", None),
)


@dataclasses.dataclass(frozen=True)
class MeshConfig:
    """Sizes of the mesh axes; one of them may be -1 ("all remaining devices")."""

    data: int = -1
    fsdp: int = 1
    tensor: int = 1

    def shape(self, num_devices: int) -> tuple[int, int, int]:
        sizes = [self.data, self.fsdp, self.tensor]
        if sizes.count(-1) > 1:
            raise ValueError(f"at most one mesh axis may be -1, got {sizes}")
        known = math.prod(s for s in sizes if s != -1)
        if -1 in sizes:
            if num_devices % known:
                raise ValueError(f"{num_devices} devices do not divide into mesh {sizes}")
            sizes[sizes.index(-1)] = num_devices // known
        if math.prod(sizes) != num_devices:
            raise ValueError(
                f"mesh {dict(zip(MESH_AXES, sizes, strict=True))} needs {math.prod(sizes)} "
                f"devices, but {num_devices} are available"
            )
        return tuple(sizes)  # type: ignore[return-value]


def create_mesh(config: MeshConfig = MeshConfig(), devices: Sequence[Any] | None = None) -> Mesh:
    """A mesh over all (global) devices, with a device order that keeps ``tensor`` local."""
    devices = list(devices) if devices is not None else jax.devices()
    shape = config.shape(len(devices))
    try:
        array = mesh_utils.create_device_mesh(shape, devices)
    except Exception:
        array = np.asarray(devices).reshape(shape)
    return Mesh(array, MESH_AXES)


def initialize_distributed(
    coordinator_address: str | None = None,
    num_processes: int | None = None,
    process_id: int | None = None,
    cpu_collectives: str | None = None,
) -> None:
    """Join a multi-host job (TPU pods and GPU clusters fill in the arguments themselves).

    ``cpu_collectives="gloo"`` lets several CPU processes on one machine form one global
    mesh, which is how multi-host code is tested without a cluster.
    """
    if cpu_collectives:
        jax.config.update("jax_cpu_collectives_implementation", cpu_collectives)
    jax.distributed.initialize(coordinator_address, num_processes, process_id)
    logger.info(
        "process %d of %d, %d local / %d global devices",
        jax.process_index(),
        jax.process_count(),
        jax.local_device_count(),
        jax.device_count(),
    )


@contextlib.contextmanager
def mesh_context(mesh: Mesh) -> Iterator[Mesh]:
    """Trace and run under ``mesh`` with our logical axis rules, so activation constraints in
    the models (``nn.with_logical_constraint``) resolve to mesh axes."""
    with jax.set_mesh(mesh), nn.logical_axis_rules(LOGICAL_AXIS_RULES):
        yield mesh


def logical_sharding(tree: Any, mesh: Mesh) -> Any:
    """NamedShardings for a tree of ``nn.Partitioned`` boxes (or abstract boxed shapes)."""
    specs = nn.get_partition_spec(tree)
    return nn.logical_to_mesh_sharding(specs, mesh, LOGICAL_AXIS_RULES)


def batch_sharding(mesh: Mesh) -> NamedSharding:
    """Leading (batch) axis split over data and fsdp, everything else replicated."""
    return NamedSharding(mesh, PartitionSpec(BATCH_AXES))


def replicated(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, PartitionSpec())


def num_batch_shards(mesh: Mesh) -> int:
    return mesh.shape["data"] * mesh.shape["fsdp"]


def global_batch_from_host(batch: dict[str, np.ndarray], mesh: Mesh) -> dict[str, jax.Array]:
    """Assemble each host's slice of the batch into global arrays sharded over the mesh."""
    sharding = batch_sharding(mesh)
    return {
        name: jax.make_array_from_process_local_data(sharding, np.asarray(value))
        for name, value in batch.items()
    }
