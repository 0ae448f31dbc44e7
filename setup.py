"""tfcontrast: similarity learning for TensorFlow 2.16+ and Keras 3."""

import pathlib
import re

from setuptools import find_packages, setup

HERE = pathlib.Path(__file__).parent
VERSION = re.search(
    r'^__version__ = "([^"]+)"',
    (HERE / "tfcontrast" / "version.py").read_text(),
    re.M,
).group(1)

MILVUS = ["pymilvus>=3.0", "milvus-lite>=3.2"]

setup(
    name="tfcontrast",
    version=VERSION,
    description=(
        "Similarity learning for TensorFlow and Keras 3: metric-learning and "
        "self-supervised losses, siamese/SimCLR/BYOL/DirectPred/SimSiam models, "
        "tf.distribute, and a similarity index."
    ),
    long_description=(HERE / "README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    python_requires=">=3.10",
    packages=find_packages(include=["tfcontrast", "tfcontrast.*"]),
    install_requires=[
        "tensorflow>=2.16,<3",
        "keras>=3.6",
        "numpy>=1.23",
        "faiss-cpu>=1.8",
        "scikit-learn>=1.3",
        "matplotlib>=3.7",
        "absl-py>=1.4",
        "ml-collections>=0.1.1",
        # The train command writes TensorBoard logs; TF >= 2.20 no longer pulls it in.
        "tensorboard>=2.16",
    ],
    extras_require={
        # MilvusIndex: pymilvus talks to Milvus Lite (in-process, a local .db path) and to clusters. Name
        # milvus-lite explicitly: pymilvus[milvus_lite] does not pull it in. The tests run Milvus Lite.
        "milvus": MILVUS,
        "test": ["pytest>=7", "hypothesis>=6.80", *MILVUS],
        # Only the loss benchmark compares against keras-cv; it is not needed
        # to use or test the library.
        "bench": ["keras-cv==0.9.*"],
    },
    entry_points={"console_scripts": ["tfcontrast=tfcontrast.cli:run"]},
    classifiers=[
        "Programming Language :: Python :: 3",
        "Topic :: Scientific/Engineering :: Artificial Intelligence",
    ],
)
