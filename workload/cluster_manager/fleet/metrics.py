"""LXD-style ``/1.0/metrics`` text (Prometheus exposition format) for one simulated member.

LXD reports per-instance families (CPU, memory, disk, filesystem, network, processes) for its
running instances, labelled ``name``, ``project`` and ``type``, plus daemon-wide families
(``lxd_go_*``, ``lxd_instances``, ``lxd_uptime_seconds`` ...). Numbers are written the way Go
writes a float64 (``strconv.FormatFloat(v, 'g', -1, 64)``: ``1.2345678e+07``). The text of a
member is sized to a target number of bytes by choosing how many instances it runs and how many
CPUs they have; values then evolve with :meth:`MemberMetrics.advance`.
"""

from __future__ import annotations

import dataclasses
import random

CONTAINER = "container"
VM = "virtual-machine"
CONTAINER_CPU_MODES = ("system", "user")
VM_CPU_MODES = ("idle", "iowait", "irq", "nice", "softirq", "steal", "system", "user")
MAX_CPUS = 64
GIB = 1024**3

MEMORY_GAUGES = (
    "Active_anon",
    "Active",
    "Active_file",
    "Cached",
    "Dirty",
    "HugepagesFree",
    "HugepagesTotal",
    "Inactive_anon",
    "Inactive",
    "Inactive_file",
    "Mapped",
    "MemAvailable",
    "MemFree",
    "MemTotal",
    "RSS",
    "Shmem",
    "Swap",
    "Unevictable",
    "Writeback",
)
DISK_COUNTERS = (
    ("read_bytes", "The total number of bytes read."),
    ("reads_completed", "The total number of completed reads."),
    ("written_bytes", "The total number of bytes written."),
    ("writes_completed", "The total number of completed writes."),
)
FILESYSTEM_GAUGES = (
    ("avail", "The number of available space in bytes."),
    ("free", "The number of free space in bytes."),
    ("size", "The size of the filesystem in bytes."),
)
NETWORK_COUNTERS = (
    ("receive_bytes", "The amount of received bytes on a given interface."),
    ("receive_drop", "The amount of received dropped bytes on a given interface."),
    ("receive_errs", "The amount of received errors on a given interface."),
    ("receive_packets", "The amount of received packets on a given interface."),
    ("transmit_bytes", "The amount of transmitted bytes on a given interface."),
    ("transmit_drop", "The amount of transmitted dropped bytes on a given interface."),
    ("transmit_errs", "The amount of transmitted errors on a given interface."),
    ("transmit_packets", "The amount of transmitted packets on a given interface."),
)
GO_GAUGES = (
    ("alloc_bytes", "Number of bytes allocated and still in use."),
    ("buck_hash_sys_bytes", "Number of bytes used by the profiling bucket hash table."),
    ("gc_sys_bytes", "Number of bytes used for garbage collection system metadata."),
    ("goroutines", "Number of goroutines that currently exist."),
    ("heap_alloc_bytes", "Number of heap bytes allocated and still in use."),
    ("heap_idle_bytes", "Number of heap bytes waiting to be used."),
    ("heap_inuse_bytes", "Number of heap bytes that are in use."),
    ("heap_objects", "Number of allocated objects."),
    ("heap_released_bytes", "Number of heap bytes released to OS."),
    ("heap_sys_bytes", "Number of heap bytes obtained from system."),
    ("mcache_inuse_bytes", "Number of bytes in use by mcache structures."),
    ("mcache_sys_bytes", "Number of bytes used for mcache structures obtained from system."),
    ("mspan_inuse_bytes", "Number of bytes in use by mspan structures."),
    ("mspan_sys_bytes", "Number of bytes used for mspan structures obtained from system."),
    ("next_gc_bytes", "Number of heap bytes when next garbage collection will take place."),
    ("other_sys_bytes", "Number of bytes used for other system allocations."),
    ("stack_inuse_bytes", "Number of bytes in use by the stack allocator."),
    ("stack_sys_bytes", "Number of bytes obtained from system for stack allocator."),
    ("sys_bytes", "Number of bytes obtained from system."),
)
GO_COUNTERS = (
    ("alloc_bytes_total", "Total number of bytes allocated, even if freed."),
    ("frees_total", "Total number of frees."),
    ("lookups_total", "Total number of pointer lookups."),
    ("mallocs_total", "Total number of mallocs."),
)


def go_float(value: float) -> str:
    """Format a number as Go's ``strconv.FormatFloat(value, 'g', -1, 64)`` does."""
    text = repr(float(value))
    if text in ("inf", "-inf", "nan"):
        return {"inf": "+Inf", "-inf": "-Inf", "nan": "NaN"}[text]
    sign = "-" if text.startswith("-") else ""
    mantissa, _, exponent = text.lstrip("-").partition("e")
    whole, _, fraction = mantissa.partition(".")
    significant = (whole + fraction).lstrip("0")
    # Where the decimal point falls within the significant digits.
    point = len(whole) + int(exponent or 0) - (len(whole + fraction) - len(significant))
    digits = significant.rstrip("0")
    if not digits:
        return "0"
    exp = point - 1
    if exp < -4 or exp >= 6:  # Go's shortest 'g' switches to %e at these exponents
        head = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
        return f"{sign}{head}e{'-' if exp < 0 else '+'}{abs(exp):02d}"
    if point <= 0:
        return f"{sign}0.{'0' * -point}{digits}"
    if point >= len(digits):
        return sign + digits + "0" * (point - len(digits))
    return f"{sign}{digits[:point]}.{digits[point:]}"


@dataclasses.dataclass
class Instance:
    """One running instance on a member and its counters."""

    name: str
    type: str
    project: str
    cpus: int
    disks: tuple[str, ...]
    nics: tuple[str, ...]
    memory_total: int
    load: float  # fraction of its CPUs it keeps busy
    cpu_seconds: list[list[float]] = dataclasses.field(default_factory=list)
    memory_used: float = 0.0
    disk: list[list[float]] = dataclasses.field(default_factory=list)
    filesystem_size: float = 0.0
    filesystem_used: float = 0.0
    network: list[list[float]] = dataclasses.field(default_factory=list)
    procs: int = 0

    @property
    def modes(self) -> tuple[str, ...]:
        """CPU modes LXD reports for this kind of instance."""
        return CONTAINER_CPU_MODES if self.type == CONTAINER else VM_CPU_MODES

    def fill(self, rng: random.Random, age: float) -> None:
        """Give the counters values for an instance that has run ``age`` seconds."""
        self.cpu_seconds = [
            [age * self.load * rng.uniform(0.2, 1.0) for _ in self.modes] for _ in range(self.cpus)
        ]
        self.memory_used = self.memory_total * rng.uniform(0.15, 0.7)
        self.disk = [
            [age * rng.uniform(1e3, 5e5), age * rng.uniform(0.1, 20), 0.0, 0.0] for _ in self.disks
        ]
        for counters in self.disk:
            counters[2], counters[3] = counters[0] * rng.uniform(0.5, 3), counters[1] * 2
        self.filesystem_size = float(rng.choice((10, 20, 50, 100)) * GIB)
        self.filesystem_used = self.filesystem_size * rng.uniform(0.05, 0.8)
        self.network = [
            [age * rng.uniform(1e2, 1e5), 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0] for _ in self.nics
        ]
        for counters in self.network:
            counters[3] = counters[0] / 900
            counters[4] = counters[0] * rng.uniform(0.2, 1.5)
            counters[7] = counters[4] / 800
        self.procs = rng.randint(8, 300)

    def add_cpu(self, rng: random.Random) -> None:
        """Give the instance one more CPU, as busy as its first."""
        self.cpus += 1
        self.cpu_seconds.append([value * rng.uniform(0.8, 1.2) for value in self.cpu_seconds[0]])

    def remove_cpu(self) -> None:
        """Take the last CPU away again."""
        self.cpus -= 1
        self.cpu_seconds.pop()

    def advance(self, rng: random.Random, seconds: float) -> None:
        """Let ``seconds`` pass: counters grow, gauges wander."""
        busy = seconds * self.load
        for per_cpu in self.cpu_seconds:
            for i in range(len(per_cpu)):
                per_cpu[i] += busy * rng.uniform(0.0, 1.0)
        self.memory_used = min(
            self.memory_total * 0.95,
            max(self.memory_total * 0.05, self.memory_used * rng.uniform(0.97, 1.03)),
        )
        for counters in self.disk:
            counters[0] += seconds * rng.uniform(0, 2e5)
            counters[1] += seconds * rng.uniform(0, 10)
            counters[2] += seconds * rng.uniform(0, 4e5)
            counters[3] += seconds * rng.uniform(0, 20)
        self.filesystem_used = min(
            self.filesystem_size * 0.98, self.filesystem_used + seconds * rng.uniform(0, 2e4)
        )
        for counters in self.network:
            received, sent = seconds * rng.uniform(0, 5e4), seconds * rng.uniform(0, 5e4)
            counters[0] += received
            counters[3] += received / 900
            counters[4] += sent
            counters[7] += sent / 800
            if rng.random() < 0.01:
                counters[1] += 1
        self.procs = max(1, self.procs + rng.randint(-3, 3))


def _labels(instance: Instance, **extra: str) -> str:
    pairs = {**extra, "name": instance.name, "project": instance.project, "type": instance.type}
    return ",".join(f'{key}="{pairs[key]}"' for key in sorted(pairs))


def _instance_samples(instance: Instance) -> dict[str, list[str]]:
    """Return the sample lines of one instance, by family."""
    samples: dict[str, list[str]] = {}
    base = _labels(instance)
    samples["lxd_cpu_seconds_total"] = [
        f"lxd_cpu_seconds_total{{{_labels(instance, cpu=str(cpu), mode=mode)}}} "
        f"{go_float(round(value, 3))}\n"
        for cpu, per_cpu in enumerate(instance.cpu_seconds)
        for mode, value in zip(instance.modes, per_cpu, strict=True)
    ]
    samples["lxd_cpu_effective_total"] = [f"lxd_cpu_effective_total{{{base}}} {instance.cpus}\n"]
    for (suffix, _), index in zip(DISK_COUNTERS, range(4), strict=True):
        family = f"lxd_disk_{suffix}_total"
        samples[family] = [
            f"{family}{{{_labels(instance, device=device)}}} {go_float(int(counters[index]))}\n"
            for device, counters in zip(instance.disks, instance.disk, strict=True)
        ]
    fs_device = "/dev/sda2" if instance.type == VM else f"{instance.project}/{instance.name}"
    fs_labels = _labels(
        instance,
        device=fs_device,
        fstype="ext4" if instance.type == VM else "zfs",
        mountpoint="/",
    )
    avail = instance.filesystem_size - instance.filesystem_used
    for suffix, value in (
        ("avail", avail),
        ("free", avail + instance.filesystem_size * 0.02),
        ("size", instance.filesystem_size),
    ):
        family = f"lxd_filesystem_{suffix}_bytes"
        samples[family] = [f"{family}{{{fs_labels}}} {go_float(int(value))}\n"]
    samples.update(_memory_samples(instance, base))
    for (suffix, _), index in zip(NETWORK_COUNTERS, range(8), strict=True):
        family = f"lxd_network_{suffix}_total"
        samples[family] = [
            f"{family}{{{_labels(instance, device=device)}}} {go_float(int(counters[index]))}\n"
            for device, counters in zip(instance.nics, instance.network, strict=True)
        ]
    samples["lxd_procs_total"] = [f"lxd_procs_total{{{base}}} {instance.procs}\n"]
    return samples


def _memory_samples(instance: Instance, labels: str) -> dict[str, list[str]]:
    used = instance.memory_used
    total = float(instance.memory_total)
    values = {
        "Active_anon": used * 0.45,
        "Active": used * 0.6,
        "Active_file": used * 0.15,
        "Cached": used * 0.3,
        "Dirty": used * 0.001,
        "HugepagesFree": 0.0,
        "HugepagesTotal": 0.0,
        "Inactive_anon": used * 0.1,
        "Inactive": used * 0.3,
        "Inactive_file": used * 0.2,
        "Mapped": used * 0.08,
        "MemAvailable": total - used * 0.7,
        "MemFree": total - used,
        "MemTotal": total,
        "RSS": used * 0.55,
        "Shmem": used * 0.02,
        "Swap": 0.0,
        "Unevictable": 0.0,
        "Writeback": 0.0,
    }
    samples = {
        f"lxd_memory_{key}_bytes": [
            f"lxd_memory_{key}_bytes{{{labels}}} {go_float(int(values[key]))}\n"
        ]
        for key in MEMORY_GAUGES
    }
    samples["lxd_memory_OOM_kills_total"] = [f"lxd_memory_OOM_kills_total{{{labels}}} 0\n"]
    return samples


FAMILIES: dict[str, tuple[str, str]] = {
    "lxd_cpu_seconds_total": ("counter", "The total number of CPU time used in seconds."),
    "lxd_cpu_effective_total": ("gauge", "The total number of effective CPUs."),
    **{f"lxd_disk_{suffix}_total": ("counter", help_text) for suffix, help_text in DISK_COUNTERS},
    **{
        f"lxd_filesystem_{suffix}_bytes": ("gauge", help_text)
        for suffix, help_text in FILESYSTEM_GAUGES
    },
    **{
        f"lxd_memory_{key}_bytes": ("gauge", f"The amount of {key.replace('_', ' ')} memory.")
        for key in MEMORY_GAUGES
    },
    "lxd_memory_OOM_kills_total": ("counter", "The number of out of memory kills."),
    **{
        f"lxd_network_{suffix}_total": ("counter", help_text)
        for suffix, help_text in NETWORK_COUNTERS
    },
    "lxd_procs_total": ("gauge", "The number of running processes."),
}


@dataclasses.dataclass
class Daemon:
    """The LXD daemon of a member: its uptime and Go runtime figures."""

    uptime: float
    heap: float
    allocated: float
    goroutines: int
    operations: int = 0
    warnings: int = 0

    def advance(self, rng: random.Random, seconds: float) -> None:
        """Let ``seconds`` pass."""
        self.uptime += seconds
        self.heap = min(2e9, max(1e7, self.heap * rng.uniform(0.9, 1.1)))
        self.allocated += seconds * rng.uniform(1e5, 5e6)
        self.goroutines = max(40, self.goroutines + rng.randint(-20, 20))
        self.operations += rng.randint(0, 2)

    def samples(self, instances: list[Instance]) -> list[str]:
        """Return the daemon-wide families, with their HELP and TYPE lines."""
        heap = self.heap
        gauges = {
            "alloc_bytes": heap * 0.8,
            "buck_hash_sys_bytes": 1.6e6,
            "gc_sys_bytes": heap * 0.04,
            "goroutines": float(self.goroutines),
            "heap_alloc_bytes": heap * 0.8,
            "heap_idle_bytes": heap * 0.35,
            "heap_inuse_bytes": heap * 0.85,
            "heap_objects": heap / 96,
            "heap_released_bytes": heap * 0.2,
            "heap_sys_bytes": heap * 1.2,
            "mcache_inuse_bytes": 19200.0,
            "mcache_sys_bytes": 31200.0,
            "mspan_inuse_bytes": heap * 0.012,
            "mspan_sys_bytes": heap * 0.015,
            "next_gc_bytes": heap * 1.6,
            "other_sys_bytes": 4.2e6,
            "stack_inuse_bytes": self.goroutines * 8192.0,
            "stack_sys_bytes": self.goroutines * 8192.0,
            "sys_bytes": heap * 1.4,
        }
        counters = {
            "alloc_bytes_total": self.allocated,
            "frees_total": self.allocated / 120,
            "lookups_total": 0.0,
            "mallocs_total": self.allocated / 110,
        }
        lines: list[str] = []
        for suffix, help_text in GO_GAUGES:
            name = f"lxd_go_{suffix}"
            lines += _header(name, "gauge", help_text)
            lines.append(f"{name} {go_float(int(gauges[suffix]))}\n")
        for suffix, help_text in GO_COUNTERS:
            name = f"lxd_go_{suffix}"
            lines += _header(name, "counter", help_text)
            lines.append(f"{name} {go_float(int(counters[suffix]))}\n")
        by_kind: dict[tuple[str, str], int] = {}
        for instance in instances:
            key = (instance.project, instance.type)
            by_kind[key] = by_kind.get(key, 0) + 1
        by_kind.setdefault(("default", CONTAINER), 0)
        by_kind.setdefault(("default", VM), 0)
        lines += _header("lxd_instances", "gauge", "The number of instances.")
        lines += [
            f'lxd_instances{{project="{project}",type="{kind}"}} {count}\n'
            for (project, kind), count in sorted(by_kind.items())
        ]
        lines += _header("lxd_operations_total", "counter", "The number of running operations")
        lines.append(f"lxd_operations_total {self.operations}\n")
        lines += _header("lxd_warnings_total", "counter", "The number of active warnings.")
        lines.append(f"lxd_warnings_total {self.warnings}\n")
        lines += _header("lxd_uptime_seconds", "gauge", "The daemon uptime in seconds.")
        lines.append(f"lxd_uptime_seconds {go_float(round(self.uptime, 3))}\n")
        return lines


def _header(name: str, kind: str, help_text: str) -> list[str]:
    return [f"# HELP {name} {help_text}\n", f"# TYPE {name} {kind}\n"]


class MemberMetrics:
    """The metrics of one member: its running instances and its daemon."""

    def __init__(
        self, rng: random.Random, target_bytes: int, *, instances_wanted: bool = True
    ) -> None:
        self._rng = rng
        age = rng.uniform(3600, 90 * 86400)
        self.daemon = Daemon(
            uptime=age,
            heap=rng.uniform(3e7, 3e8),
            allocated=age * 1e6,
            goroutines=rng.randint(150, 900),
        )
        self.instances: list[Instance] = []
        if instances_wanted:
            self._size_to(target_bytes, age)

    def _new_instance(self, age: float) -> Instance:
        rng = self._rng
        is_vm = rng.random() < 0.25
        instance = Instance(
            name=f"{rng.choice(('web', 'db', 'ci', 'cache', 'app', 'k8s'))}-{len(self.instances)}",
            type=VM if is_vm else CONTAINER,
            project="default" if rng.random() < 0.8 else "prod",
            cpus=rng.choice((1, 2, 2, 4)),
            disks=("sda",) if is_vm else ("zd0",),
            nics=("enp5s0", "lo") if is_vm else ("eth0", "lo"),
            memory_total=rng.choice((1, 2, 4, 8)) * GIB,
            load=rng.uniform(0.02, 0.6),
        )
        instance.fill(rng, rng.uniform(60, age))
        return instance

    def _size_to(self, target: int, age: float) -> None:
        """Add instances, then CPUs to containers, until the text is about ``target`` bytes."""
        size = len(self.render())
        while True:
            candidate = self._new_instance(age)
            grow = _size_of(candidate) + (_headers_size() if not self.instances else 0)
            if size + grow > target:
                break
            self.instances.append(candidate)
            size += grow
        # Then fine-tune with CPUs, cheapest first (a container CPU adds two lines, a VM's eight).
        for instance in sorted(self.instances, key=lambda i: len(i.modes)):
            while instance.cpus < MAX_CPUS:
                before = _size_of(instance)
                instance.add_cpu(self._rng)
                grow = _size_of(instance) - before
                if size + grow > target:
                    instance.remove_cpu()
                    break
                size += grow

    def advance(self, seconds: float) -> None:
        """Let ``seconds`` pass on this member."""
        self.daemon.advance(self._rng, seconds)
        for instance in self.instances:
            instance.advance(self._rng, seconds)

    def render(self) -> str:
        """Return the member's ``/1.0/metrics`` text."""
        by_family: dict[str, list[str]] = {}
        for instance in self.instances:
            for family, lines in _instance_samples(instance).items():
                by_family.setdefault(family, []).extend(lines)
        parts: list[str] = []
        for family, (kind, help_text) in FAMILIES.items():
            lines = by_family.get(family)
            if lines:
                parts += _header(family, kind, help_text)
                parts += lines
        parts += self.daemon.samples(self.instances)
        return "".join(parts)


def _size_of(instance: Instance) -> int:
    return sum(len(line) for lines in _instance_samples(instance).values() for line in lines)


def _headers_size() -> int:
    return sum(
        len("".join(_header(family, kind, help_text)))
        for family, (kind, help_text) in FAMILIES.items()
    )
