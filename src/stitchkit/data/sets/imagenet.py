"""ImageNet ILSVRC-2012 from class folders, normalised with ImageNet's statistics."""

from __future__ import annotations

from ...declarations import declare
from .. import sources
from ..base import LoadRequest
from ..datasets import ImageDataset
from ..transforms import IMAGENET_MEAN, IMAGENET_STD


@declare(
    "dataset",
    "imagenet",
    order=9,
    num_classes=1000,
    shape=(3, 224, 224),
    description="ImageNet ILSVRC-2012 from class folders, normalised with ImageNet statistics.",
    expected_files="imagenet/training_data/<class>/* and imagenet/validation_data/<class>/* "
    "(or training_data/ and validation_data/ directly in the data root)",
    how_to_get="download ILSVRC-2012 from https://image-net.org and arrange the train and val images as one sub-folder "
    "per class (e.g. n01440764/) in {root}/imagenet/training_data and {root}/imagenet/validation_data.",
    train_transform="imagenet_train",
    eval_transform="imagenet_eval",
    mean_std=(IMAGENET_MEAN, IMAGENET_STD),
)
def load_imagenet(req: LoadRequest) -> ImageDataset:
    return sources.load_imagenet(req)
