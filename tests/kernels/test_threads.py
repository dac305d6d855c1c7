"""kernels/common/threads.py: small inputs run on one Numba thread, large ones on all, and the
caller's thread count is restored, also after an error."""
import numba
import numpy as np
import pytest

from gpunet.kernels.common.threads import serial_below


@serial_below(100)
def _threads_seen(x, fail=False):
    if fail:
        raise ValueError("inside")
    return numba.get_num_threads()


@pytest.mark.skipif(numba.config.NUMBA_NUM_THREADS < 2, reason="needs 2 or more Numba threads")
def test_serial_below_the_threshold_and_restored():
    numba.set_num_threads(2)
    try:
        assert _threads_seen(np.zeros(99)) == 1
        assert _threads_seen(x=np.zeros(99)) == 1  # by name, as the tier harness passes it
        assert _threads_seen(np.zeros(100)) == 2
        assert numba.get_num_threads() == 2
        with pytest.raises(ValueError, match="inside"):
            _threads_seen(np.zeros(5), fail=True)
        assert numba.get_num_threads() == 2
    finally:
        numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)
