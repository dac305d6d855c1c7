"""What a port prints and records of a run: date, machine, device, settings, test accuracy."""
from __future__ import annotations

import datetime
import json
import os
import platform


def machine() -> str:
    """The CPU model and core count (and the GPU, when gpunet runs on one)."""
    model = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            model = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return f"{model}, {os.cpu_count()} cores"


def record(path: str | None, port: str, **fields) -> dict:
    """The run's record, printed as one line and written to ``path`` (JSON) when given."""
    import gpunet as gn

    rec = {"port": port, "date": datetime.date.today().isoformat(), "machine": machine(),
           "device": gn.backend.active(), **fields}
    print("record:", json.dumps(rec))
    if path:
        with open(path, "w") as f:
            json.dump(rec, f, indent=2)
    return rec
