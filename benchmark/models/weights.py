"""Pretrained open_clip weights that cannot be had fail in one line, at once.

Without network, open_clip's download retries for about a minute and ends in a long traceback. Before it
starts, `check_open_clip_weights` looks for the weights in the local caches (Hugging Face's hub cache, or
open_clip's ~/.cache/clip for URL downloads) and, when they are not there, whether their host answers within
a few seconds (`HF_HUB_OFFLINE` set: not tried).
"""
from __future__ import annotations

import os
import socket
from pathlib import Path
from urllib.parse import urlsplit

from benchmark.errors import UserError

CONNECT_SECONDS = 5.0


def reachable(url: str, timeout: float = CONNECT_SECONDS) -> bool:
    """A TCP connection to the URL's host opens within `timeout` seconds."""
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        with socket.create_connection((parts.hostname, port), timeout=timeout):
            return True
    except (OSError, ValueError):
        return False


def _hub_offline() -> bool:
    from huggingface_hub import constants

    return bool(constants.HF_HUB_OFFLINE) or os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes")


def check_open_clip_weights(arch: str, tag: str) -> None:
    """UserError in one line when open_clip cannot get the weights `tag` of `arch`: an unknown tag, or weights
    in no local cache while their host cannot be reached."""
    from open_clip import constants, pretrained

    source = pretrained.get_pretrained_cfg(arch, tag)
    if not source:
        tags = pretrained.list_pretrained_tags_by_model(arch)
        raise UserError(f"model.pretrained={tag} is not one of open_clip's weights for {arch} "
                        f"(available: {', '.join(tags) or 'none'})")
    if source.get("file"):
        return
    hub = source.get("hf_hub", "") if pretrained.has_hf_hub() else ""
    if hub:  # open_clip prefers the hub: 'org/model/' (its default file names) or 'org/model/file'
        from huggingface_hub import constants as hub_constants, try_to_load_from_cache

        repo, filename = os.path.split(hub)
        names = [filename] if filename else [constants.HF_SAFE_WEIGHTS_NAME, constants.HF_WEIGHTS_NAME]
        if filename.endswith((".bin", ".pth")):
            names.append(filename[:-4] + ".safetensors")
        if any(isinstance(try_to_load_from_cache(repo, name), str) for name in names):
            return
        url, offline = hub_constants.ENDPOINT, _hub_offline()
    else:
        url, offline = source["url"], False
        if (Path("~/.cache/clip").expanduser() / os.path.basename(url)).is_file():
            return
    if not offline and reachable(url):
        return
    why = "HF_HUB_OFFLINE is set" if offline else f"{urlsplit(url).hostname} cannot be reached"
    raise UserError(f"model.pretrained={tag}: open_clip's {arch} weights are not in the local cache and {why}; "
                    "download them once with network access, or set model.pretrained=null for random weights")
