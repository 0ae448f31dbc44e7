"""Template: your own images (a folder of class sub-folders, or a .npz file).

    tfcontrast train --config custom_template --workdir runs/mine \\
        --config.data.path=/path/to/images

``data.path`` is a folder laid out ``<path>/<class name>/<image files>``
(png, jpeg, bmp, gif; read with ``tfcontrast.data.load_image_folder``, every
image resized to ``data.image_size``), or, with ``--config.data.name=npz``, a
``.npz`` file holding images under ``x`` (or ``images``) and integer labels
under ``y`` (or ``labels``) (``tfcontrast.data.load_npz``; uint8 images are
divided by 255). The folder names (or labels) are used only to evaluate, never
to train the self-supervised methods.

The defaults train SimCLR with the small digits CNN on 32x32 RGB images: about
1,000 steps of batch 64, a few minutes on a 2-core CPU for a few thousand
images, enough to see whether the setting works before spending a GPU on it.

On a GPU, for a real run (what SimCLR uses on CIFAR-sized images):

    tfcontrast train --config custom_template --workdir runs/mine \\
        --config.data.path=/path/to/images \\
        --config.encoder.name=resnet18 --config.optimizer.name=lamb \\
        --config.optimizer.lr=2e-3 --config.optimizer.warmup_steps=500 \\
        --config.train.steps=20000 --config.train.steps_per_epoch=500 \\
        --config.train.batch_size=512 --config.train.jit_compile=true \\
        --config.augment.blur_prob=0.5     # for images of 64 px and more

Every other key is the shared setting (``tfcontrast configs show base``). To
use another method, change ``base("simclr")`` to its name (``tfcontrast
configs`` lists them): the ``model`` section (and the ``train`` batch keys)
then start from that method's registered defaults; unknown keys are refused.
"""

from tfcontrast.config import base


def get_config():
    c = base("simclr")
    c.model.projection_dim = 128  # projector output width (SimCLR paper: 128)
    c.model.hidden_dim = 512  # projector hidden width
    c.model.temperature = 0.2  # NT-Xent temperature, > 0

    c.data.name = "image_folder"  # image_folder | npz | digits
    c.data.path = ""  # REQUIRED: the image folder (image_folder) or the .npz file (npz)
    c.data.image_size = (32, 32)  # (height, width) every image of the folder is resized to
    c.data.color_mode = "rgb"  # rgb | grayscale: channels read from the folder

    c.encoder.name = "digits_cnn"  # digits_cnn (CPU-sized) | resnet18 (GPU-sized) | mlp
    c.encoder.features = 128  # digits_cnn: width of the representation
    c.encoder.width = 32  # digits_cnn: filters of the first convolution
    c.encoder.stem = "cifar"  # resnet18: cifar (3x3 stride 1, images up to ~64 px) | imagenet (7x7 stride 2 + pool)

    c.augment.crop_scale = (0.2, 1.0)  # random resized crop: (min, max) area fraction, in (0, 1]
    c.augment.flip = True  # random horizontal flips (turn off for text, digits, ...)
    c.augment.jitter_strength = 1.0  # multiplies the recipe's jitter (SimCLR's CIFAR strength s = 0.5)
    c.augment.grayscale_prob = 0.2  # probability of turning a view grey
    c.augment.blur_prob = 0.0  # probability of Gaussian blur (SimCLR drops it at 32 px; use 0.5 for larger images)
    c.augment.max_shift = 0  # integer shifts up to this many pixels per axis
    c.augment.max_degrees = 0.0  # rotations up to this many degrees

    c.optimizer.name = "adamw"  # adamw | adam | sgd | lamb | lion (SimCLR: LARS/LAMB for large batches)
    c.optimizer.lr = 2e-3  # peak learning rate, > 0
    c.optimizer.warmup_steps = 50  # linear warm-up from 0, < train.steps

    c.train.steps = 1000  # optimizer steps in all
    c.train.steps_per_epoch = 100  # an epoch: one progress bar, one log line, one checkpoint; divides steps
    c.train.batch_size = 64  # images per step (each seen as two views)
    c.train.jit_compile = False  # XLA: turn on for a GPU/TPU (slower than oneDNN for small CNNs on a CPU)

    c.eval.batch_size = 256  # images per forward pass when embedding
    c.eval.map_method = "tsne"  # 2-D map of the test embeddings: pca | tsne (slow beyond ~10,000 images)
    return c
