"""DeCLUTR sentence embeddings of the docstrings of numpy, scipy and scikit-learn (the text job).

    tfcontrast train --config declutr_docstrings --workdir runs/text
    tfcontrast lookup --workdir runs/text --query "eigenvalues of a symmetric matrix"

DeCLUTR (Giorgi, Nitski, Wang and Bader, ACL 2021): an anchor span of each
docstring against a nearby span of the same docstring, every other span of
the batch a negative; then a second stage on the same encoder
(tfcontrast/jobs/text_pairs.py): the first paragraph of each *training*
docstring against the rest of it, every other body of the batch a negative
(MultipleNegativesRankingLoss), i.e. weak supervision from the docstrings'
layout. Trains on 80% of the docstrings and reports span ->
span and summary -> body retrieval on the other 20% next to TF-IDF, the
random-initialised encoder and mean word2vec vectors (summary.json,
report.md). The data, encoder, eval, index and pairs sections are the registered
defaults of the ``text`` data kind (tfcontrast/jobs/text.py), the others
configs/base.py's; this file states only what differs.
"""

from tfcontrast.config import base


def get_config():
    c = base("declutr")
    c.model.temperature = 0.2  # NT-Xent temperature (chosen on a validation split of the training docstrings)
    c.encoder.depth = 0  # a position-aware bag of embeddings: on 2 CPU cores it beats deeper encoders per minute
    c.optimizer.warmup_steps = 100  # linear warm-up steps
    c.train.steps = 1200  # optimizer steps (batches of 64 training docstrings)
    c.train.steps_per_epoch = 200  # one progress bar, log line and checkpoint per 200 steps
    c.train.min_span_tokens = 8  # shortest span in tokens (validation: shorter spans than the paper's 32 help here)
    c.pairs.steps = 400  # then 400 steps on (first paragraph, rest) pairs of the training docstrings (jobs/text_pairs.py)
    c.pairs.scale = 10.0  # logits = 10 * cosine (temperature 0.1: validation beat 20 on both tasks)
    c.pairs.lr = 1e-3  # its peak learning rate (validation: 1e-3 kept span recall, 2e-3 gave summary +0.015)
    c.pairs.warmup_steps = 100  # its linear warm-up
    return c
