"""Architectures from torchvision and timm.

* ``tv_resnet{18,34,50,101,152}``: torchvision's ImageNet ResNets (7×7 stride-2 stem and max-pool).
* ``torchvision:<name>``: any torchvision classification architecture
  (``torchvision.models.get_model(name, weights=None, num_classes=…)``).
* ``timm:<name>``: any timm architecture (``timm.create_model(name, pretrained=…, num_classes=…,
  in_chans=…)``); ``vit…`` names that are not the zoo's own ViTs also go to timm.

Weights are downloaded only with the option ``pretrained=True`` (when they are not cached and their
server accepts no connection within :data:`CONNECT_TIMEOUT` seconds, at once with an error that names
``weights``, instead of the libraries' minute of retries); ``weights=PATH`` loads them from a
local state_dict file instead (for machines without internet), with the same adaptation of the head
and the first convolution as downloaded weights get. When ``in_channels`` differs from 3,
torchvision models get a new first convolution of the right width (timm does this itself); with
pretrained weights its kernel is the RGB kernel averaged over the colour channels and scaled by
``3 / in_channels``, so a grey image gives the response of the same grey RGB image.

torchvision ResNets (``tv_resnet*`` and ``torchvision:resnet*``/``wide_resnet*``/``resnext*``) get
``stitchable_layers = layer{s}.{b}``; other external models leave it unset, and the layer-cutting
code derives their layers generically.
"""

from __future__ import annotations

import functools
import os
import socket
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

from ..errors import StitchkitError, unknown_name

# weights-only reading and its one-line errors
from .checkpoint import load_state_into, read_checkpoint_file, strip_prefixes
from .resnet_cifar import resnet_layer_names


@functools.cache
def torchvision_names() -> tuple[str, ...]:
    """torchvision's classification architectures (not detection/segmentation/video)."""
    import torchvision  # deferred: torchvision loads only for its models

    return tuple(torchvision.models.list_models(module=torchvision.models))


@functools.cache
def timm_names() -> tuple[str, ...]:
    import timm  # deferred: timm is optional and slow to import

    return tuple(timm.list_models())


def is_torchvision_name(name: str) -> bool:
    return name in torchvision_names()


def is_timm_name(name: str) -> bool:
    import timm  # deferred: timm is optional and slow to import

    return bool(timm.is_model(name))


def check_torchvision_name(name: str) -> None:
    if not is_torchvision_name(name):
        raise unknown_name("torchvision model", name, torchvision_names())


def check_timm_name(name: str) -> None:
    if not is_timm_name(name):
        raise unknown_name("timm model", name, timm_names())


def _replace_module(model: nn.Module, qualname: str, new: nn.Module) -> None:
    parent_name, _, child = qualname.rpartition(".")
    setattr(model.get_submodule(parent_name) if parent_name else model, child, new)


def adapt_first_conv(model: nn.Module, in_channels: int, pretrained: bool) -> None:
    """Give the first Conv2d ``in_channels`` inputs (see the module docstring)."""
    first = next(((name, m) for name, m in model.named_modules() if isinstance(m, nn.Conv2d)), None)
    if first is None:
        raise StitchkitError(f"cannot adapt {type(model).__name__} to {in_channels} input channels: it has no Conv2d")
    qualname, m = first
    if m.in_channels == in_channels:
        return
    if m.groups != 1:
        raise StitchkitError(f"cannot adapt the grouped first convolution {qualname!r} to {in_channels} channels")
    new = nn.Conv2d(
        in_channels,
        m.out_channels,
        m.kernel_size,
        stride=m.stride,
        padding=m.padding,
        dilation=m.dilation,
        bias=m.bias is not None,
        padding_mode=m.padding_mode,
    )
    with torch.no_grad():
        if pretrained:
            w = m.weight.mean(dim=1, keepdim=True) * (m.in_channels / in_channels)
            new.weight.copy_(w.expand(-1, in_channels, -1, -1))
            if m.bias is not None:
                new.bias.copy_(m.bias)
        else:
            nn.init.kaiming_normal_(new.weight, mode="fan_out", nonlinearity="relu")
            if new.bias is not None:
                nn.init.zeros_(new.bias)
    _replace_module(model, qualname, new)


def resize_classifier(model: nn.Module, num_classes: int, name: str) -> None:
    """Replace the last Linear layer by a fresh one with ``num_classes`` outputs (if it differs)."""
    last = None
    for qualname, m in model.named_modules():
        if isinstance(m, nn.Linear):
            last = (qualname, m)
    if last is None:
        raise StitchkitError(
            f"torchvision:{name} with pretrained weights has no Linear head to resize to {num_classes} classes"
        )
    qualname, m = last
    if m.out_features != num_classes:
        _replace_module(model, qualname, nn.Linear(m.in_features, num_classes, bias=m.bias is not None))


def _set_resnet_layers(model: nn.Module) -> nn.Module:
    import torchvision  # deferred: torchvision loads only for its models

    if isinstance(model, torchvision.models.ResNet):
        model.stitchable_layers = resnet_layer_names([len(getattr(model, f"layer{s}")) for s in (1, 2, 3, 4)])
    return model


def read_local_weights(path: str | Path) -> dict[str, torch.Tensor]:
    """The state_dict in a local weights file, read weights-only: a plain state_dict, one under
    ``"state_dict"`` or ``"model"`` (other trainers' wrappers), or a stitchkit checkpoint; ``module.``
    (DataParallel) and ``_orig_mod.`` (torch.compile) prefixes are stripped."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise StitchkitError(
            f"weights file {str(path)!r} does not exist" + (" (it is a folder)" if path.is_dir() else "")
        )
    obj = read_checkpoint_file(path)

    def is_state(x: Any) -> bool:
        return (
            isinstance(x, Mapping)
            and len(x) > 0
            and all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in x.items())
        )

    if isinstance(obj, Mapping) and not is_state(obj):
        obj = next((obj[k] for k in ("state_dict", "model") if is_state(obj.get(k))), obj)
    if not is_state(obj):
        keys = f"; its keys: {', '.join(map(str, list(obj)[:8]))}" if isinstance(obj, Mapping) else ""
        raise StitchkitError(
            f"weights file {str(path)!r} holds no state_dict (expected a dict of tensors, or one under 'state_dict' "
            f"or 'model'){keys}"
        )
    return strip_prefixes(obj)


def _first_conv_name(model: nn.Module) -> str | None:
    return next((q for q, m in model.named_modules() if isinstance(m, nn.Conv2d)), None)


def _dim(state: Mapping[str, torch.Tensor], module: str | None, axis: int) -> int | None:
    weight = state.get(f"{module}.weight") if module is not None else None
    return int(weight.shape[axis]) if weight is not None and weight.dim() > axis else None


def _with_local_weights(
    build: Callable[[int, int], nn.Module],
    head_name: Callable[[nn.Module], str | None],
    reset_head: Callable[[nn.Module, int], None],
    num_classes: int,
    in_channels: int,
    path: str | Path,
    label: str,
) -> nn.Module:
    """The model with the weights of ``path``. Weights made for another class count or input channel
    count (e.g. an ImageNet head) load into a model of their own shape first; then the head is replaced
    by a fresh one and the first convolution adapted, exactly as for downloaded pretrained weights."""
    state = read_local_weights(path)
    source = f"weights file {str(path)!r} (for {label})"
    model = build(num_classes, in_channels)
    file_classes = _dim(state, head_name(model), 0) or num_classes
    file_channels = _dim(state, _first_conv_name(model), 1) or in_channels
    if (file_classes, file_channels) == (num_classes, in_channels):
        load_state_into(model, state, source=source)
        return model
    model = build(file_classes, file_channels)
    load_state_into(model, state, source=source)
    if file_classes != num_classes:
        reset_head(model, num_classes)
    if file_channels != in_channels:
        adapt_first_conv(model, in_channels, pretrained=True)
    return model


def _last_linear_name(model: nn.Module) -> str | None:
    names = [q for q, m in model.named_modules() if isinstance(m, nn.Linear)]
    return names[-1] if names else None


#: where local weights go instead of a download, in every interface
LOCAL_WEIGHTS = (
    "without internet, load them from a local file: --weights PATH (the model option weights=PATH; "
    'weights = "PATH" under [networks] in a study config; model_options={"weights": PATH} in the Python API)'
)
#: seconds to wait for the weights' server to accept a connection before saying it is unreachable
CONNECT_TIMEOUT = 3.0


def download_error(label: str, reason: str) -> StitchkitError:
    return StitchkitError(f"could not download the pretrained weights of {label}: {reason}; {LOCAL_WEIGHTS}")


def unreachable(url: str, timeout: float = CONNECT_TIMEOUT) -> str | None:
    """Why ``url``'s server (or the HTTPS proxy the environment names) accepts no connection within
    ``timeout`` seconds; None when it does. One attempt: the libraries' own retries spend about a
    minute before they give up on a machine without internet."""
    target = urllib.parse.urlsplit(urllib.request.getproxies().get("https") or url)
    host, port = target.hostname, target.port or (443 if target.scheme == "https" else 80)
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return None
    except OSError as exc:
        return f"{host} is not reachable ({exc.strerror or exc or type(exc).__name__})"


def _check_download(label: str, url: str, cached: bool) -> None:
    """Fail at once, naming the local alternative, when the weights are not in the local cache and their
    server cannot be reached (or the Hugging Face hub is set offline)."""
    if cached:
        return
    if "huggingface" in url and os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on"):
        raise download_error(label, "HF_HUB_OFFLINE is set and they are not in the local cache")
    reason = unreachable(url)
    if reason:
        raise download_error(label, f"{reason}, and they are not in the local cache")


def _in_torch_hub_cache(url: str) -> bool:
    import torch.hub  # deferred: only for downloads

    return (Path(torch.hub.get_dir()) / "checkpoints" / Path(urllib.parse.urlsplit(url).path).name).is_file()


def _check_torchvision_download(name: str) -> None:
    import torchvision  # deferred: torchvision loads only for its models

    url = torchvision.models.get_model_weights(name).DEFAULT.url
    _check_download(f"torchvision:{name}", url, _in_torch_hub_cache(url))


def _check_timm_download(name: str) -> None:
    from timm.models import get_pretrained_cfg  # deferred: timm is optional and slow to import

    cfg = get_pretrained_cfg(name)
    if cfg is None:
        return  # no known weights: timm says so itself
    if cfg.hf_hub_id:  # timm prefers the hub
        import huggingface_hub  # deferred: a dependency of timm, needed only for downloads

        files = [cfg.hf_hub_filename] if cfg.hf_hub_filename else ["model.safetensors", "pytorch_model.bin"]
        repo = cfg.hf_hub_id.split("@")[0]
        cached = any(isinstance(huggingface_hub.try_to_load_from_cache(repo, f), str) for f in files)
        _check_download(f"timm:{name}", huggingface_hub.constants.ENDPOINT, cached)
    elif cfg.url:
        _check_download(f"timm:{name}", cfg.url, _in_torch_hub_cache(cfg.url))


def _check_weight_source(label: str, pretrained: bool, weights: str | None) -> None:
    if pretrained and weights:
        raise StitchkitError(
            f"{label}: give either pretrained=true (download the weights) or weights=PATH (a local file), not both"
        )


def build_torchvision(
    name: str,
    num_classes: int,
    in_channels: int,
    pretrained: bool = False,
    weights: str | None = None,
    kwargs: dict[str, Any] | None = None,
) -> nn.Module:
    import torchvision  # deferred: torchvision loads only for its models

    check_torchvision_name(name)
    _check_weight_source(f"torchvision:{name}", pretrained, weights)
    kwargs = dict(kwargs or {})

    def plain(classes: int, channels: int) -> nn.Module:
        model = torchvision.models.get_model(name, weights=None, num_classes=classes, **kwargs)
        if channels != 3:
            adapt_first_conv(model, channels, pretrained=False)
        return model

    try:
        if weights:
            model = _with_local_weights(
                plain,
                _last_linear_name,
                lambda m, n: resize_classifier(m, n, name),
                num_classes,
                in_channels,
                weights,
                f"torchvision:{name}",
            )
        elif pretrained:
            _check_torchvision_download(name)
            model = torchvision.models.get_model(name, weights="DEFAULT", **kwargs)
            resize_classifier(model, num_classes, name)
            if in_channels != 3:
                adapt_first_conv(model, in_channels, pretrained=True)
        else:
            model = plain(num_classes, in_channels)
    except (TypeError, ValueError) as e:
        raise StitchkitError(f"torchvision:{name} could not be built with {kwargs}: {e}") from e
    except OSError as e:  # URLError and friends: no network or no cache
        raise download_error(f"torchvision:{name}", str(e)) from e
    return _set_resnet_layers(model)


def _timm_head_name(model: nn.Module) -> str | None:
    head = model.get_classifier() if hasattr(model, "get_classifier") else None
    return next((q for q, m in model.named_modules() if m is head), None) if isinstance(head, nn.Module) else None


def build_timm(
    name: str,
    num_classes: int,
    in_channels: int,
    pretrained: bool = False,
    weights: str | None = None,
    kwargs: dict[str, Any] | None = None,
) -> nn.Module:
    import timm  # deferred: timm is optional and slow to import

    check_timm_name(name)
    _check_weight_source(f"timm:{name}", pretrained, weights)
    kwargs = dict(kwargs or {})

    def plain(classes: int, channels: int) -> nn.Module:
        return timm.create_model(name, pretrained=False, num_classes=classes, in_chans=channels, **kwargs)

    try:
        if weights:
            return _with_local_weights(
                plain,
                _timm_head_name,
                lambda m, n: m.reset_classifier(n),
                num_classes,
                in_channels,
                weights,
                f"timm:{name}",
            )
        if pretrained:
            _check_timm_download(name)
        return timm.create_model(name, pretrained=pretrained, num_classes=num_classes, in_chans=in_channels, **kwargs)
    except (TypeError, ValueError) as e:
        raise StitchkitError(f"timm:{name} could not be built with {kwargs}: {e}") from e
    except OSError as e:  # network and Hugging Face hub errors
        raise download_error(f"timm:{name}", str(e)) from e
