"""Shared sections every packaged config starts from (not a run by itself: it names no method).

A config file calls ``tfcontrast.config.base(METHOD)``: these sections plus the
method's registered ``model`` section, its batch keys in ``train`` and, for a
method compiled with a loss, a ``loss`` section, all at their registered
defaults (``tfcontrast configs`` lists the configs; the docs of the method keys
are in the method's registration). The values here are the self-supervised
setting on the bundled digits.
"""

import ml_collections


def get_config() -> ml_collections.ConfigDict:
    c = ml_collections.ConfigDict()
    c.seed = 0  # seeds the initial weights, the batches and the augmentation draws

    c.data = ml_collections.ConfigDict()
    c.data.name = "digits"  # digits (bundled, 1,797 8x8 images) | image_folder | npz
    c.data.path = ""  # folder of class sub-folders (image_folder) or .npz file (npz); '' for digits
    c.data.test_fraction = 0.2  # share of each class held out as test queries, in (0, 1)
    c.data.split_seed = 0  # seed of the stratified train/test split
    c.data.image_size = (8, 8)  # (height, width) image_folder images are resized to (unused for digits/npz)
    c.data.color_mode = "grayscale"  # grayscale | rgb, channels read from an image_folder

    c.encoder = ml_collections.ConfigDict()
    c.encoder.name = "digits_cnn"  # digits_cnn | mlp | resnet18
    c.encoder.features = 128  # digits_cnn: width of the representation (last convolution)
    c.encoder.width = 32  # digits_cnn: filters of the first convolution (the second has twice)
    c.encoder.widths = (256, 128)  # mlp: Dense widths, the last is the representation
    c.encoder.stem = "cifar"  # resnet18: cifar (3x3 stride 1, small images) | imagenet (7x7 stride 2 + pool)

    c.augment = ml_collections.ConfigDict()  # the views (tfcontrast.augment.TwoViewAugmentation)
    c.augment.enabled = True  # two views per image for self-supervised methods; one view per step for labelled ones
    c.augment.recipe = "simclr"  # simclr | byol: defaults of colour jitter, blur, solarisation
    c.augment.crop_scale = (0.5, 1.0)  # random resized crop: (min, max) area fraction, in (0, 1]
    c.augment.flip = False  # random horizontal flips (off: digits are not mirror-symmetric)
    c.augment.jitter_prob = 0.8  # probability of colour jitter (on grey images: brightness and contrast)
    c.augment.jitter_strength = 0.5  # multiplies the recipe's jitter (brightness, contrast, saturation, hue)
    c.augment.grayscale_prob = 0.0  # probability of turning a view grey (no-op on grey images)
    c.augment.blur_prob = 0.0  # probability of Gaussian blur (an 8 px image has no room for it)
    c.augment.solarize_prob = 0.0  # probability of solarisation
    c.augment.max_shift = 2  # integer shifts up to this many pixels per axis
    c.augment.max_degrees = 15.0  # rotations up to this many degrees

    c.optimizer = ml_collections.ConfigDict()
    c.optimizer.name = "adamw"  # adamw | adam | sgd | lamb | lion
    c.optimizer.lr = 2e-3  # peak learning rate, > 0
    c.optimizer.weight_decay = 1e-4  # decoupled weight decay, >= 0
    c.optimizer.momentum = 0.9  # sgd only: momentum, in [0, 1)
    c.optimizer.schedule = "cosine"  # cosine (decay to 0) | constant, after the warm-up
    c.optimizer.warmup_steps = 50  # linear warm-up from 0, < train.steps

    c.train = ml_collections.ConfigDict()  # plus the batch keys of the method's batch kind
    c.train.steps = 500  # optimizer steps in all
    c.train.steps_per_epoch = 50  # an epoch: one progress bar, one log line, one checkpoint; divides steps
    c.train.stop_after_steps = 0  # stop (resumably) after this many steps, 0 = never; for tests and demos
    c.train.jit_compile = False  # compile the train step with XLA (slower than oneDNN for small CNNs on CPU)

    c.eval = ml_collections.ConfigDict()
    c.eval.knn_k = 20  # neighbours of the distance-weighted kNN vote
    c.eval.recall_ks = (1, 5, 10)  # cut-offs of recall@k and precision@k
    c.eval.batch_size = 512  # images per forward pass when embedding
    c.eval.map_method = "tsne"  # 2-D map of the test embeddings: pca | tsne
    c.eval.grid_queries = 10  # test queries (one per class in turn) in the neighbour grid
    c.eval.grid_neighbors = 8  # neighbours shown per query in the grid
    c.eval.nuisance_max_shift = 2  # robustness check: test queries shifted up to this many pixels...
    c.eval.nuisance_max_degrees = 10.0  # ... and rotated up to this many degrees
    c.eval.nuisance_seed = 0  # seed of the nuisance draws

    c.index = ml_collections.ConfigDict()
    c.index.metric = "cosine"  # cosine | euclidean | inner_product
    c.index.backend = "exact"  # exact | hnsw | ivf (faiss, in the run folder) | milvus (a Milvus collection)
    c.index.uri = ""  # milvus: server URI (http://host:19530) or Milvus Lite file (*.db); '' = <workdir>/milvus.db
    c.index.collection = ""  # milvus: collection name; '' = one named after the run folder
    c.index.lookup_k = 10  # neighbours returned by the exported `lookup` signature
    return c
