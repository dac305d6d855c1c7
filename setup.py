"""Package discovery: ``gpunet/`` is the library and the top-level ``kernels/`` folder installs
as ``gpunet.kernels`` (metadata lives in pyproject.toml)."""
from setuptools import find_packages, setup

packages = find_packages(include=["gpunet", "gpunet.*"])
packages += ["gpunet.kernels"] + [f"gpunet.kernels.{p}" for p in find_packages("kernels")]

setup(packages=packages, package_dir={"gpunet": "gpunet", "gpunet.kernels": "kernels"})
