"""SimCSE sentence embeddings of the docstrings of numpy, scipy and scikit-learn (the text job).

    tfcontrast train --config simcse_docstrings --workdir runs/simcse_text
    tfcontrast lookup --workdir runs/simcse_text --query "eigenvalues of a symmetric matrix"

SimCSE (Gao, Yao and Chen, EMNLP 2021), unsupervised: each text passes
through the encoder twice and the two dropout masks are its two views. The
data, encoder, eval and index sections are the registered defaults of the
``text`` data kind (tfcontrast/jobs/text.py), the others configs/base.py's;
this file states only what differs.
"""

from tfcontrast.config import base


def get_config():
    c = base("simcse")
    c.encoder.depth = 0  # bag of embeddings as in declutr_docstrings (fast on CPU; weak for SimCSE: RESULTS.md section 11)
    c.optimizer.warmup_steps = 100  # linear warm-up steps
    c.train.steps = 1200  # optimizer steps (batches of 64 training docstrings)
    c.train.steps_per_epoch = 200  # one progress bar, log line and checkpoint per 200 steps
    return c
