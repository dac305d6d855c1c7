"""Public test harness: finite-difference gradient checks for layers and tier-vs-reference runs
for kernels, so that a user's own layer or kernel is tested the way gpunet tests its own."""
from .gradcheck import GradcheckError, gradcheck
from .tiers import Case, TierReport, compare_tiers, relative_error

__all__ = ["gradcheck", "GradcheckError", "Case", "TierReport", "compare_tiers", "relative_error"]
