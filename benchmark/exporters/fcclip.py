"""FC-CLIP's per-query outputs, captured before its post-processing, in predictions format v2
(benchmark/models/cached.py), for exactly the images a stream uses:

    cd fc-clip    # a checkout of bytedance/fc-clip with detectron2 installed, and this project installed
    python -m benchmark.exporters.fcclip --config-file configs/coco/panoptic-segmentation/fcclip/\\
        fcclip_convnext_large_eval_ade20k.yaml --weights fcclip_cocopan.pth --out predictions/ade847 \\
        --fcclip-opt DATASETS.TEST='("openvocab_ade20k_full_sem_seg_val",)' stream=ade847_10steps data.root=DATASETS
    python -m benchmark run method=zeroshot model=cached model.predictions_dir=predictions/ade847 stream=ade847_10steps

(`python -m benchmark export-fcclip ...` is the same command.) Resumable like `export-predictions`.

`fcclip_image_arrays` is the conversion from FC-CLIP's tensors to the format: a pure function, tested in this
project on tensors of FC-CLIP's shapes. Everything else needs detectron2 and FC-CLIP and runs only where
they are installed; it hooks into FC-CLIP's own code (bytedance/fc-clip `fcclip/fcclip.py` at 7791b83,
`FCCLIP.forward`, inference branch) without copying it:

- a forward hook on `model.sem_seg_head` reads `outputs["pred_masks"]` (B, Q, H_pad/4, W_pad/4): the mask
  logits `mask_pred_results` before "# upsample masks" (`F.interpolate(mask_pred_results, size=(images.tensor
  .shape[-2], images.tensor.shape[-1]), ...)`);
- a forward pre-hook on `model.backbone` reads the padded batch `images.tensor` (its (H_pad, W_pad));
- `fcclip.fcclip.get_classification_logits` is wrapped to keep its first argument `pooled_clip_feature`
  (B, Q, D): each query's mask-pooled CLIP embedding (the mask embeddings of the format);
- `model.semantic_inference` is wrapped to keep its `mask_cls_result` (Q, K + 1), once per image: the final
  `mask_cls_results = torch.log(mask_cls_probs + 1e-8)` after the geometric ensemble and the void composition,
  i.e. FC-CLIP's class log-probabilities with void last. (TEST.SEMANTIC_ON is switched on for this.)

The images are read by this project's dataset readers and fed as detectron2's DefaultPredictor does
(detectron2/engine/defaults.py: ResizeShortestEdge(MIN_SIZE_TEST, MAX_SIZE_TEST), INPUT.FORMAT channel order,
"height"/"width" of the original image). Class columns are FC-CLIP's test classes in its contiguous order,
which must be the vocabulary file's order (checked by count; names that differ are reported).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from benchmark.errors import UserError
from benchmark.models.cached import image_arrays


def fcclip_image_arrays(mask_cls: torch.Tensor, mask_pred: torch.Tensor, input_size: Sequence[int],
                        padded_size: Sequence[int], clip_embeddings: torch.Tensor | None = None) -> dict[str, np.ndarray]:
    """One image's format v2 arrays from FC-CLIP's tensors before post-processing:
    mask_cls (Q, K + 1) final class log-probabilities with void last; mask_pred (Q, h, w) mask logits on the
    output grid, which covers the padded input (H_pad, W_pad) = `padded_size` at stride 4; `input_size` the
    resized image before padding; clip_embeddings (Q, D) the pooled CLIP features, or None."""
    num_queries, height, width = mask_pred.shape
    if mask_cls.ndim != 2 or mask_cls.shape[0] != num_queries:
        raise ValueError(f"mask_cls must be (Q={num_queries}, K + 1), got {tuple(mask_cls.shape)}")
    if padded_size[0] % height or padded_size[1] % width or padded_size[0] // height != padded_size[1] // width:
        raise ValueError(f"the mask grid {height}x{width} does not cover the padded input {tuple(padded_size)} "
                         f"at one stride")
    return image_arrays(mask_pred, mask_cls, input_size, padded_size, clip_embeddings)


class FcclipCapture:  # pragma: no cover - needs detectron2 and FC-CLIP (see the module doc)
    """Runs a built FC-CLIP model on images and returns each image's `fcclip_image_arrays`."""

    def __init__(self, model) -> None:
        import fcclip.fcclip as fcclip_module

        self.model = model
        self.captured: dict[str, list] = {}
        model.sem_seg_head.register_forward_hook(lambda _m, _i, out: self.captured.__setitem__("masks", out["pred_masks"]))
        model.backbone.register_forward_pre_hook(lambda _m, args: self.captured.__setitem__("padded", args[0].shape[-2:]))
        original_logits = fcclip_module.get_classification_logits

        def classification_logits(pooled, *args, **kwargs):
            self.captured["embeddings"] = pooled
            return original_logits(pooled, *args, **kwargs)

        fcclip_module.get_classification_logits = classification_logits
        original_semantic = model.semantic_inference

        def semantic_inference(mask_cls, mask_pred):
            self.captured.setdefault("classes", []).append(mask_cls)
            return original_semantic(mask_cls, mask_pred)

        model.semantic_inference = semantic_inference

    @torch.no_grad()
    def __call__(self, inputs: list[dict]) -> list[dict[str, np.ndarray]]:
        self.captured = {}
        self.model(inputs)
        padded = tuple(int(s) for s in self.captured["padded"])
        embeddings = self.captured.get("embeddings")
        return [fcclip_image_arrays(classes.cpu(), masks.cpu(), tuple(item["image"].shape[-2:]), padded,
                                    embeddings[i].cpu() if embeddings is not None else None)
                for i, (item, classes, masks) in enumerate(zip(inputs, self.captured["classes"],
                                                               self.captured["masks"]))]


def build_fcclip(config_file: str, weights: str, options: list[str], device: str):  # pragma: no cover
    """FC-CLIP's model as its train_net.py sets it up (detectron2 config + FC-CLIP's config keys)."""
    try:
        from detectron2.checkpoint import DetectionCheckpointer
        from detectron2.config import get_cfg
        from detectron2.data import MetadataCatalog
        from detectron2.modeling import build_model
        from detectron2.projects.deeplab import add_deeplab_config
        from fcclip import add_fcclip_config, add_maskformer2_config
    except ImportError as exc:
        raise UserError(f"the FC-CLIP exporter runs inside an FC-CLIP checkout with detectron2 installed "
                        f"(cannot import {exc.name}); see benchmark/exporters/fcclip.py") from None
    cfg = get_cfg()
    add_deeplab_config(cfg)
    add_maskformer2_config(cfg)
    add_fcclip_config(cfg)
    cfg.merge_from_file(config_file)
    cfg.merge_from_list([part for option in options for part in option.split("=", 1)])
    cfg.MODEL.WEIGHTS = weights
    cfg.MODEL.DEVICE = device
    cfg.MODEL.MASK_FORMER.TEST.SEMANTIC_ON = True  # semantic_inference is where the class log-probs are read
    cfg.freeze()
    model = build_model(cfg).eval()
    DetectionCheckpointer(model).load(weights)
    return cfg, model, MetadataCatalog.get(cfg.DATASETS.TEST[0])


def main(argv: list[str]) -> int:  # pragma: no cover - the parts that need FC-CLIP
    parser = argparse.ArgumentParser(prog="python -m benchmark.exporters.fcclip",
                                     description="Export FC-CLIP's predictions (format v2) for model=cached.")
    parser.add_argument("--config-file", required=True, help="FC-CLIP config (its configs/ folder)")
    parser.add_argument("--weights", required=True, help="FC-CLIP checkpoint (.pth)")
    parser.add_argument("--out", required=True, help="folder to write (created; resumable)")
    parser.add_argument("--fcclip-opt", action="append", default=[], metavar="KEY=VALUE",
                        help="FC-CLIP config override, e.g. DATASETS.TEST='(\"openvocab_ade20k_full_sem_seg_val\",)'")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("overrides", nargs="*", help="this project's overrides choosing the images: stream=..., data.root=...")
    args = parser.parse_args(argv)
    from benchmark.cli import stream_images
    from benchmark.config import load_config
    from benchmark.models.cached import check_folder, export_images, write_meta

    out = Path(args.out).expanduser()
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} is a file, not a folder")
    cfg = load_config(args.overrides)
    fcclip_cfg, model, metadata = build_fcclip(args.config_file, args.weights, args.fcclip_opt, args.device)
    images, vocabulary, progress = stream_images(cfg)
    names = list(metadata.stuff_classes)
    if len(names) != len(vocabulary):
        raise UserError(f"FC-CLIP's test dataset {fcclip_cfg.DATASETS.TEST[0]} has {len(names)} classes, the "
                        f"stream's vocabulary {vocabulary.name} {len(vocabulary)}; set --fcclip-opt DATASETS.TEST")
    differ = sum(ours.name.lower() not in theirs.lower() for ours, theirs in zip(vocabulary.classes, names))
    if differ:
        print(f"note: {differ} of {len(names)} class names differ between FC-CLIP's {fcclip_cfg.DATASETS.TEST[0]} "
              f"and {vocabulary.name} (columns are matched by position)", file=sys.stderr)
    producer = f"fc-clip config={args.config_file} weights={args.weights} test={fcclip_cfg.DATASETS.TEST[0]}"
    out.mkdir(parents=True, exist_ok=True)
    check_folder(out, producer, vocabulary.name)
    # FCCLIP.__init__: `nn.Embedding(1, backbone.dim_latent)` is the void class in the pooled CLIP space
    # FCCLIP.forward: semantic inference before or after resizing, as FC-CLIP's config has it (A-847: after)
    write_meta(out, vocabulary.name, vocabulary.ids, void=True, embedding_dim=int(model.backbone.dim_latent),
               producer=producer, semantic_at_input=not model.sem_seg_postprocess_before_inference,
               object_threshold=model.object_mask_threshold, overlap_threshold=model.overlap_threshold)
    import detectron2.data.transforms as T

    resize = T.ResizeShortestEdge([fcclip_cfg.INPUT.MIN_SIZE_TEST] * 2, fcclip_cfg.INPUT.MAX_SIZE_TEST)
    capture = FcclipCapture(model)

    def predict(samples):
        inputs = []
        for sample in samples:
            image = sample.image if fcclip_cfg.INPUT.FORMAT == "RGB" else sample.image[:, :, ::-1]
            image = resize.get_transform(image).apply_image(image)
            inputs.append({"image": torch.as_tensor(image.astype("float32").transpose(2, 0, 1)),
                           "height": sample.height, "width": sample.width})
        return capture(inputs)

    written, kept = export_images(images, out, 1, predict, progress.bar)
    print(f"wrote {written} image(s), kept {kept} already exported, under {out}; use them with: "
          f"python -m benchmark run model=cached model.predictions_dir={out} stream={cfg.stream.name} ...")
    return 0


if __name__ == "__main__":  # pragma: no cover
    from benchmark.__main__ import main as benchmark_main

    sys.exit(benchmark_main(["export-fcclip", *sys.argv[1:]]))
