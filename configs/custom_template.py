"""Template: your own images (a folder of class sub-folders, or a .npz file).

    tfcontrast train --config configs/custom_template.py --workdir runs/mine \\
        --config.data.path=/path/to/images

``data.path`` is a folder laid out ``<path>/<class name>/<image files>``
(png, jpeg, bmp, gif; read with ``tfcontrast.data.load_image_folder``, every
image resized to ``data.image_size``), or, with ``--config.data.name=npz``, a
``.npz`` file holding images under ``x`` (or ``images``) and integer labels
under ``y`` (or ``labels``) (``tfcontrast.data.load_npz``; uint8 images are
divided by 255). The folder names (or labels) are used only to evaluate, never
to train the self-supervised methods.

This template trains SimCLR on a CIFAR-style ResNet-18 (32x32 RGB): sized for
a GPU; on a CPU start with ``--config.encoder.name=digits_cnn`` and fewer
steps. To use another method, copy its ``model`` section (and its ``train``
batch keys) from ``configs/<method>_digits.py``: those keys differ per method,
and unknown keys are refused.
"""

import ml_collections


def get_config() -> ml_collections.ConfigDict:
    c = ml_collections.ConfigDict()
    c.method = "simclr"  # siamese | triplet | supcon | simclr | byol | directpred | simsiam
    c.seed = 0  # seeds the initial weights, the batches and the augmentation draws

    c.data = ml_collections.ConfigDict()
    c.data.name = "image_folder"  # image_folder | npz | digits
    c.data.path = ""  # REQUIRED: the image folder (image_folder) or the .npz file (npz)
    c.data.test_fraction = 0.2  # share of each class held out as test queries, in (0, 1)
    c.data.split_seed = 0  # seed of the stratified train/test split
    c.data.image_size = (32, 32)  # (height, width) every image of the folder is resized to
    c.data.color_mode = "rgb"  # rgb | grayscale: channels read from the folder

    c.encoder = ml_collections.ConfigDict()
    c.encoder.name = "resnet18"  # resnet18 | digits_cnn | mlp
    c.encoder.features = 128  # digits_cnn: width of the representation (last convolution)
    c.encoder.width = 32  # digits_cnn: filters of the first convolution (the second has twice)
    c.encoder.widths = (512, 256)  # mlp: Dense widths, the last is the representation
    c.encoder.stem = "cifar"  # resnet18: cifar (3x3 stride 1, images up to ~64 px) | imagenet (7x7 stride 2 + pool)

    c.model = ml_collections.ConfigDict()
    c.model.projection_dim = 128  # projector output width (SimCLR paper: 128)
    c.model.hidden_dim = 512  # projector hidden width
    c.model.temperature = 0.2  # NT-Xent temperature, > 0

    c.augment = ml_collections.ConfigDict()  # the two views (tfcontrast.augment.TwoViewAugmentation)
    c.augment.enabled = True  # must be True for self-supervised methods
    c.augment.recipe = "simclr"  # simclr | byol: defaults of colour jitter, blur, solarisation
    c.augment.crop_scale = (0.2, 1.0)  # random resized crop: (min, max) area fraction, in (0, 1]
    c.augment.flip = True  # random horizontal flips (turn off for text, digits, ...)
    c.augment.jitter_prob = 0.8  # probability of colour jitter
    c.augment.jitter_strength = 1.0  # multiplies the recipe's jitter (SimCLR's CIFAR strength s = 0.5)
    c.augment.grayscale_prob = 0.2  # probability of turning a view grey
    c.augment.blur_prob = 0.0  # probability of Gaussian blur (SimCLR drops it at 32 px; use 0.5 for larger images)
    c.augment.solarize_prob = 0.0  # probability of solarisation (BYOL: 0.2 on the second view)
    c.augment.max_shift = 0  # integer shifts up to this many pixels per axis
    c.augment.max_degrees = 0.0  # rotations up to this many degrees

    c.optimizer = ml_collections.ConfigDict()
    c.optimizer.name = "lamb"  # adamw | adam | sgd | lamb | lion (SimCLR: LARS/LAMB for large batches)
    c.optimizer.lr = 2e-3  # peak learning rate, > 0
    c.optimizer.weight_decay = 1e-4  # decoupled weight decay, >= 0
    c.optimizer.momentum = 0.9  # sgd only: momentum, in [0, 1)
    c.optimizer.schedule = "cosine"  # cosine (decay to 0) | constant, after the warm-up
    c.optimizer.warmup_steps = 200  # linear warm-up from 0, < train.steps

    c.train = ml_collections.ConfigDict()
    c.train.steps = 5000  # optimizer steps in all
    c.train.steps_per_epoch = 250  # an epoch: one progress bar, one log line, one checkpoint; divides steps
    c.train.batch_size = 256  # images per step (each seen as two views)
    c.train.stop_after_steps = 0  # stop (resumably) after this many steps, 0 = never
    c.train.jit_compile = True  # compile the train step with XLA

    c.eval = ml_collections.ConfigDict()
    c.eval.knn_k = 20  # neighbours of the distance-weighted kNN vote
    c.eval.recall_ks = (1, 5, 10)  # cut-offs of recall@k and precision@k
    c.eval.batch_size = 256  # images per forward pass when embedding
    c.eval.map_method = "tsne"  # 2-D map of the test embeddings: pca | tsne (slow beyond ~10,000 images)
    c.eval.grid_queries = 10  # test queries (one per class in turn) in the neighbour grid
    c.eval.grid_neighbors = 8  # neighbours shown per query in the grid
    c.eval.nuisance_max_shift = 2  # robustness check: test queries shifted up to this many pixels...
    c.eval.nuisance_max_degrees = 10.0  # ... and rotated up to this many degrees
    c.eval.nuisance_seed = 0  # seed of the nuisance draws

    c.index = ml_collections.ConfigDict()
    c.index.metric = "cosine"  # cosine | euclidean | inner_product
    c.index.backend = "exact"  # exact | hnsw | ivf (faiss; approximate for large collections)
    c.index.lookup_k = 10  # neighbours returned by the exported `lookup` signature
    return c
