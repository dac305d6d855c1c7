"""``Tally``: the per-batch loss and metric values of one pass, kept on the device and read back
to the host all at once."""
from __future__ import annotations

import math

import numpy as np

from .. import backend


class Tally:
    """Per-batch loss and metric values of one pass. ``add(loss, output, y)`` keeps the step's 0-d
    loss array and what each metric keeps (``Metric.keep``) — no copy, no synchronization;
    ``read(extra)`` stacks the losses and totals the metrics on the device, copies the lot (and
    the float64 device array ``extra``, if given) to the host at once (the one synchronization,
    ``backend.read_back``), adds it to float64 totals there and returns (the means so far, the
    host copy of ``extra``). The loss averages over examples (each batch's mean weighted by its
    size); with ``skip``, batches whose loss is not finite are left out of it and counted. With
    ``reduce`` (a data-parallel run: ``Communicator.allreduce_host``), the means are those of the
    totals summed over the ranks, the same on every rank."""

    def __init__(self, metrics, loss, skip: bool = False, reduce=None):
        self.metrics, self.skip, self.reduce = metrics, skip, reduce
        self.mean_loss = getattr(loss, "reduction", "mean") == "mean"
        self.pending = [[] for _ in range(1 + len(metrics))]
        self.sizes = []
        self.loss_sum = self.counted = self.nonfinite = self.n = 0.0
        self.metric_sums = [None] * len(metrics)  # float64 host sums of each metric's totals (a vector for some)

    def add(self, loss, output, y) -> None:
        self.pending[0].append(loss)
        for m, pending in zip(self.metrics, self.pending[1:]):
            pending.append(m.keep(output, y))
        self.sizes.append(len(y))

    def read(self, extra=None):
        extra_host = None
        if self.sizes:
            xp = backend.get_array_module(self.pending[0][0])
            k = len(self.sizes)
            parts = [xp.stack(self.pending[0]).astype(np.float64)]
            totals = [xp.asarray(m.total(p), dtype=np.float64).reshape(-1) for m, p in zip(self.metrics, self.pending[1:])]
            parts += totals
            if extra is not None:
                parts.append(extra)
            host = backend.read_back(xp.concatenate(parts))
            if extra is not None:
                host, extra_host = host[:-extra.size], host[-extra.size:]
            sizes = np.asarray(self.sizes, dtype=np.float64)
            loss = host[:k] * sizes if self.mean_loss else host[:k]
            ok = np.isfinite(loss) if self.skip else np.ones(len(sizes), bool)
            self.loss_sum += float(loss[ok].sum())
            self.counted += float(sizes[ok].sum())
            self.nonfinite += float((~ok).sum())
            at = k
            for i, t in enumerate(totals):
                part = host[at:at + t.size]
                self.metric_sums[i] = part.copy() if self.metric_sums[i] is None else self.metric_sums[i] + part
                at += t.size
            self.n += float(sizes.sum())
            for p in self.pending:
                p.clear()
            self.sizes.clear()
        loss_sum, counted, nonfinite, n, metric_sums = self._totals()
        logs = {"loss": loss_sum / counted if counted else math.nan}
        for m, v in zip(self.metrics, metric_sums):
            logs[m.name] = m.value(v, n) if n and v is not None else math.nan
        if self.skip:
            logs["skipped"] = nonfinite
        if extra is not None and extra_host is None:  # nothing pending: read it alone
            extra_host = backend.read_back(extra)
        return logs, extra_host

    def _totals(self):
        """(loss sum, examples counted, non-finite batches, examples, metric sums): this rank's,
        or with ``reduce`` the sums over every rank."""
        local = (self.loss_sum, self.counted, self.nonfinite, self.n, self.metric_sums)
        if self.reduce is None:
            return local
        if any(v is None for v in self.metric_sums):
            raise RuntimeError("Tally: a rank has no batches to reduce (every rank needs a shard)")
        total = self.reduce(np.concatenate([np.asarray(local[:4], dtype=np.float64), *self.metric_sums]))
        sums, at = [], 4
        for v in self.metric_sums:  # 1-d float64 vectors
            sums.append(total[at:at + v.size])
            at += v.size
        return (*total[:4].tolist(), sums)
