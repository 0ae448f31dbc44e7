"""SimCLRv2 pretraining on the bundled digits, for fine-tuning and distillation on few labels.

    tfcontrast train --config simclrv2_digits --workdir runs/simclrv2
    tfcontrast finetune --workdir runs/simclrv2 --labels-per-class 1,2,5,10 --distill

SimCLRv2 (Chen, Kornblith, Swersky, Norouzi and Hinton, "Big Self-Supervised
Models are Strong Semi-Supervised Learners", NeurIPS 2020) is SimCLR with a
deeper (3-layer) projection head; ``tfcontrast finetune`` then fine-tunes the
encoder with the head's first layer kept (``--from-layer 1``, "from the middle
of the projection head") on a labelled subset and self-distils it on the rest
(docs/few_labels.md). The other keys are the SimCLR digits setting
(``tfcontrast configs show simclr_digits``), trained as long as the default run.
"""

from tfcontrast.config import base


def get_config():
    c = base("simclr")
    c.model.projection_dim = 64  # projector output width
    c.model.hidden_dim = 256  # projector hidden width
    c.model.temperature = 0.2  # NT-Xent temperature, > 0
    c.model.head_layers = 3  # SimCLRv2's deeper projection head (Linear-BN-ReLU twice, then Linear)
    c.train.steps = 1100  # optimizer steps in all
    c.train.steps_per_epoch = 110  # an epoch: one progress bar, one log line, one checkpoint; divides steps
    return c
