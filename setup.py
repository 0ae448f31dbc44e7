"""Build script: the metadata is in pyproject.toml; this maps ``configs/`` into the package.

The packaged configs live in the repository's top-level ``configs/`` folder
(where the README's commands find them); a wheel installs them as
``tfcontrast/configs/`` so that ``tfcontrast train --config NAME`` finds them
anywhere (:mod:`tfcontrast.packaged_configs`).
"""

from setuptools import find_packages, setup

setup(
    packages=find_packages(include=["tfcontrast", "tfcontrast.*"]) + ["tfcontrast.configs"],
    package_dir={"tfcontrast.configs": "configs"},
)
