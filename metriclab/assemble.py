"""Config → data and model: what a run needs rebuilt, without any training code.

These read a :class:`~metriclab.config.Config` and return the data set, its class-disjoint splits
and the untrained model it describes. They sit above ``config``, ``data`` and ``models`` (which
never import config) and below run folders, evaluation, galleries and training, which all use them.
"""

from __future__ import annotations

import torch
from torch import nn

from metriclab.config import DISK_COPIES, Config, ConfigError
from metriclab.data.augment import mirrors_as_classes, rotations_as_classes
from metriclab.data.images import LabeledImages
from metriclab.data.registry import DATA_SETS, load_dataset
from metriclab.distances import build_distance
from metriclab.models.backbones import backbone
from metriclab.models.comparators import build_comparator
from metriclab.models.nets import EmbeddingNet, SiameseNet


def load_data(
    config: Config, progress: bool = False, skipped: list[str] | None = None
) -> LabeledImages:
    """The whole data set a config names, before any split (decoded once, cached on disk).

    Under ``data.skip_bad`` the paths of the files left out are appended to ``skipped``.
    """
    return load_dataset(
        config.data.name,
        config.data.path,
        config.data.size,
        config.data.channels,
        config.data.params,
        progress=progress,
        storage=config.data.storage,
        memory_budget=config.data.memory_budget,
        skip_bad=config.data.skip_bad,
        skipped=skipped,
    )


def build_data(config: Config) -> tuple[LabeledImages, LabeledImages]:
    """The (train, test) class-disjoint split a config describes; validation stays in train."""
    return split_test(load_data(config), config)


def split_test(data: LabeledImages, config: Config) -> tuple[LabeledImages, LabeledImages]:
    """The (train, test) split of ``data`` that ``config.data`` draws; validation stays in train."""
    if config.data.test_groups:
        train, test = data.split_groups(config.data.test_groups)
    else:
        train, test = data.split_classes(
            config.data.test_fraction,
            seed=config.data.split_seed,
            test_classes=config.data.test_classes,
        )
    check_n_way(config, test)
    return train, test


def check_n_way(config: Config, test: LabeledImages) -> None:
    """Refuse an ``eval.n_way`` larger than the number of unseen classes."""
    if config.eval.n_way > test.num_classes:
        raise ConfigError(
            f"eval.n_way={config.eval.n_way} exceeds the {test.num_classes} unseen classes; "
            f"choose eval.n_way between 2 and {test.num_classes}"
        )


def split_validation(
    train: LabeledImages, config: Config
) -> tuple[LabeledImages, LabeledImages | None]:
    """Carve validation classes off the training classes (none when ``data.val_fraction`` is 0)."""
    if config.data.val_fraction == 0.0 and not config.data.val_groups:
        return train, None
    if config.data.val_groups:
        return train.split_validation(groups=config.data.val_groups)
    fit, val = train.split_validation(
        fraction=config.data.val_fraction, seed=config.data.split_seed + 1
    )
    if val.num_classes < 2:
        raise ConfigError(
            f"data.val_fraction={config.data.val_fraction} leaves {val.num_classes} validation "
            "class; validation episodes need at least 2"
        )
    return fit, val


def training_classes(train: LabeledImages, config: Config) -> LabeledImages:
    """The classes the objective trains on: ``train``, rotated and mirrored as the config says.

    ``data.rotations`` adds rotated copies of every class, then ``data.mirror`` mirrored copies of
    all of those, each as new classes. Both multiply the training classes only, after every
    split, so no rotated or mirrored copy of a validation or test class leaks into training.
    Images streamed from disk (``data.storage=auto`` that chose disk) are refused by name.
    """
    if (config.data.rotations or config.data.mirror) and not isinstance(train.images, torch.Tensor):
        raise ConfigError(DISK_COPIES.format(storage="data.storage=auto (over data.memory_budget)"))
    if config.data.rotations:
        train = rotations_as_classes(train, config.data.rotations)
    return mirrors_as_classes(train) if config.data.mirror else train


def build_model(config: Config, in_channels: int, pretrained: bool = True) -> SiameseNet:
    """The embedding network and distance head a config describes.

    ``pretrained=False`` skips ``model.weights`` (a checkpoint is about to replace them, and the
    pretrained file need not exist where a finished run is evaluated). The input normalisation
    is the one the data set declares (its registry entry's mean and std), built into the network
    so training, evaluation, export and the bundle runtime all feed it alike.
    """
    model = config.model
    declared = DATA_SETS.get(config.data.name).preprocess(config.data.size, in_channels)
    embedding_net = EmbeddingNet(
        backbone(
            model.backbone,
            in_channels,
            width=model.width,
            weights=model.weights if pretrained else None,
            freeze_bn=model.freeze_bn,
        ),
        dim=config.model.dim,
        in_channels=in_channels,
        image_size=config.data.size,
        normalize=config.model.normalize,
        sigmoid=config.model.sigmoid,
        mean=declared.mean,
        std=declared.std,
    )
    if config.train.whiten != "none":
        # Present from the start (inactive, so training is unchanged) so every checkpoint of
        # the run has the same state keys; training fits it at the end (train.whiten).
        try:  # layers that the backbone does not have are known only once it is built
            embedding_net.attach_whitening(
                config.train.whiten_from, config.train.whiten_dim, config.train.whiten_layers or ()
            )
        except ValueError as failure:
            raise ConfigError(str(failure)) from None
    distance = build_distance(config.model.distance, config.model.dim, config.model.distance_init)
    siamese = SiameseNet(embedding_net, distance)
    comparator = _comparator(config)
    if comparator is not None:  # a submodule, so its weights travel in the model's state
        siamese.comparator = comparator
    return siamese


def _comparator(config: Config) -> nn.Module | None:
    """``model.comparator`` built for ``model.dim``, or None; bad params → :class:`ConfigError`."""
    try:
        return build_comparator(
            config.model.comparator, config.model.dim, dict(config.model.comparator_params)
        )
    except ValueError as failure:
        raise ConfigError(str(failure)) from None
