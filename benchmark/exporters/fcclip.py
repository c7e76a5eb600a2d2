"""FC-CLIP's per-query outputs, captured before its geometric ensemble and post-processing, in predictions
format v3 (benchmark/models/cached/format.py), for exactly the images a stream uses:

    cd fc-clip    # a checkout of bytedance/fc-clip with detectron2 installed, and this project installed
    python -m benchmark export-fcclip --config-file configs/coco/panoptic-segmentation/fcclip/\\
        fcclip_convnext_large_eval_a847.yaml --weights fcclip_cocopan.pth --out predictions/ade847 \\
        stream=ade847_10steps data.root=DATASETS
    python -m benchmark run method=zeroshot model=cached model.predictions_dir=predictions/ade847 stream=ade847_10steps

Run it from the fc-clip folder: FC-CLIP opens its class files relative to the working directory. Offline, add
`--fcclip-opt MODEL.FC_CLIP.CLIP_PRETRAINED_WEIGHTS=` (FC-CLIP's checkpoint holds the CLIP weights; otherwise
open_clip downloads them first). `--weights ""` exports a random model seeded with `--seed`. Resumable like
`export-predictions`. The command line is this module's `main`; it reads the stream's images through the library
(benchmark/exporters/images.py), never through the CLI.

`fcclip_image_arrays` is the conversion from FC-CLIP's tensors to the format: a pure function, tested in this
project on tensors of FC-CLIP's shapes. Everything else needs detectron2 and FC-CLIP and runs only where
they are installed; it hooks into FC-CLIP's own code (bytedance/fc-clip `fcclip/fcclip.py` at 7791b83,
`FCCLIP.forward`, inference branch, l. 349-402) without copying it:

- a forward hook on `model.sem_seg_head` reads `outputs["pred_logits"]` (B, Q, K + 1), the in-vocabulary class
  logits with void (l. 350), and `outputs["pred_masks"]` (B, Q, H_pad/4, W_pad/4), the mask logits (l. 351);
- a forward pre-hook on `model.backbone` reads the padded batch `images.tensor` (its (H_pad, W_pad)), a forward
  hook its `clip_vis_dense` grid (for ENSEMBLE_ON_VALID_MASK's valid masks, l. 355-356, 377);
- `fcclip.fcclip.get_classification_logits` is wrapped to keep its first argument `pooled_clip_feature`
  (B, Q, D), each query's mask-pooled CLIP embedding, and its result, the out-of-vocabulary logits (l. 365);
- the ensemble settings are the model's own: `geometric_ensemble_alpha`, `_beta`, `ensemble_on_valid_mask`,
  `category_overlapping_mask` (in the test classes' order);
- `model.semantic_inference` is wrapped to keep FC-CLIP's final `mask_cls_results` (l. 402), once per image
  (TEST.SEMANTIC_ON is switched on for this): the export checks that this project's ensemble
  (`mask_inference.fcclip_class_logits`) on the captured logits reproduces it bit for bit, and says if not.

The images are read by this project's dataset readers and fed as detectron2's DefaultPredictor does
(`fcclip_inputs`; detectron2/engine/defaults.py: ResizeShortestEdge(MIN_SIZE_TEST, MAX_SIZE_TEST), INPUT.FORMAT channel order,
"height"/"width" of the original image). Class columns are FC-CLIP's test classes in its contiguous order,
which must be the vocabulary file's order: checked by count, and each class's synonym set against FC-CLIP's
(its `*_with_prompt_eng.txt` lists, split at commas as FC-CLIP's `prepare_class_names_from_metadata` does).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from benchmark.errors import UserError
from benchmark.models.cached.format import image_arrays
from benchmark.models.mask_inference import fcclip_class_logits


def fcclip_image_arrays(class_logits: torch.Tensor, out_vocab_logits: torch.Tensor, mask_pred: torch.Tensor,
                        input_size: Sequence[int], padded_size: Sequence[int],
                        clip_embeddings: torch.Tensor | None = None, valid_masks: torch.Tensor | None = None,
                        mask_dtype: str = "float16") -> dict[str, np.ndarray]:
    """One image's format v3 arrays from FC-CLIP's tensors before its ensemble: class_logits (Q, K + 1) the
    in-vocabulary logits with void last (`outputs["pred_logits"]`), out_vocab_logits (Q, K + 1) what
    `get_classification_logits` returns (its void column is dropped, as FC-CLIP does, l. 367); mask_pred
    (Q, h, w) mask logits on the output grid, which covers the padded input (H_pad, W_pad) = `padded_size` at
    stride 4; `input_size` the resized image before padding; clip_embeddings (Q, D) the pooled CLIP features,
    or None; valid_masks (Q,) bool with ENSEMBLE_ON_VALID_MASK, else None."""
    num_queries, height, width = mask_pred.shape
    if class_logits.ndim != 2 or class_logits.shape[0] != num_queries:
        raise ValueError(f"class_logits must be (Q={num_queries}, K + 1), got {tuple(class_logits.shape)}")
    if tuple(out_vocab_logits.shape) != tuple(class_logits.shape):
        raise ValueError(f"out_vocab_logits must be {tuple(class_logits.shape)} like class_logits (void last), got "
                         f"{tuple(out_vocab_logits.shape)}")
    if padded_size[0] % height or padded_size[1] % width or padded_size[0] // height != padded_size[1] // width:
        raise ValueError(f"the mask grid {height}x{width} does not cover the padded input {tuple(padded_size)} "
                         f"at one stride")
    return image_arrays(mask_pred, class_logits, input_size, padded_size, clip_embeddings,
                        out_vocab_logits=out_vocab_logits[..., :-1], valid_masks=valid_masks, mask_dtype=mask_dtype)


def synonym_sets_differ(ours: Sequence[Sequence[str]], fcclip_names: Sequence[str]) -> list[int]:
    """Positions whose synonym set differs from FC-CLIP's class name there, split as FC-CLIP splits it
    (fcclip/fcclip.py l. 143-144: `x_.replace(', ', ',').split(',')`)."""
    return [i for i, (synonyms, name) in enumerate(zip(ours, fcclip_names))
            if set(synonyms) != set(name.replace(", ", ",").split(","))]


def folder_metadata(vocabulary) -> dict:
    """FC-CLIP's test metadata for a folder dataset (stream=folder), which FC-CLIP has no dataset of: one
    `stuff_classes` entry per class of classes.yaml, its synonyms joined with ", " (FC-CLIP's
    `prepare_class_names_from_metadata` splits them back), and the `thing` classes for its panoptic inference."""
    things = [c.id for c in vocabulary.classes if c.isthing]
    return {"stuff_classes": [", ".join(c.synonyms) for c in vocabulary.classes],
            "thing_classes": [vocabulary.classes[i].name for i in things],
            "thing_dataset_id_to_contiguous_id": {i: i for i in things},
            "stuff_dataset_id_to_contiguous_id": {i: i for i in vocabulary.ids}}


def import_error_message(exc: ImportError) -> str:
    """One line for a failed import of detectron2 or FC-CLIP. FC-CLIP's error for its missing compiled op
    (fcclip/modeling/pixel_decoder/ops/functions/ms_deform_attn_func.py l. 21-29) names no module."""
    if exc.name == "MultiScaleDeformableAttention" or "MultiScaleDeformableAttention" in str(exc):
        return ("FC-CLIP cannot import its compiled op MultiScaleDeformableAttention; build it: cd "
                "fcclip/modeling/pixel_decoder/ops && sh make.sh (FC-CLIP's INSTALL.md)")
    missing = exc.name or " ".join(str(exc).split())
    return (f"the FC-CLIP exporter runs inside an FC-CLIP checkout with detectron2 installed (cannot import "
            f"{missing}); see benchmark/exporters/fcclip.py")


class FcclipCapture:  # pragma: no cover - needs detectron2 and FC-CLIP (see the module doc)
    """Runs a built FC-CLIP model on images and returns each image's `fcclip_image_arrays`; `mismatches` counts
    images whose final class scores this project's ensemble did not reproduce bit for bit."""

    def __init__(self, model, mask_dtype: str = "float16") -> None:
        import fcclip.fcclip as fcclip_module

        self.model = model
        self.mask_dtype = mask_dtype
        self.mismatches = 0
        self.captured: dict = {}
        model.sem_seg_head.register_forward_hook(
            lambda _m, _i, out: self.captured.update(class_logits=out["pred_logits"], masks=out["pred_masks"]))
        model.backbone.register_forward_pre_hook(lambda _m, args: self.captured.__setitem__("padded", args[0].shape[-2:]))
        model.backbone.register_forward_hook(
            lambda _m, _i, out: self.captured.__setitem__("clip_grid", out["clip_vis_dense"].shape[-2:]))
        original_logits = fcclip_module.get_classification_logits

        def classification_logits(pooled, *args, **kwargs):
            result = original_logits(pooled, *args, **kwargs)
            self.captured.update(embeddings=pooled, out_vocab_logits=result)
            return result

        fcclip_module.get_classification_logits = classification_logits
        original_semantic = model.semantic_inference

        def semantic_inference(mask_cls, mask_pred):
            self.captured.setdefault("mask_cls_results", []).append(mask_cls)
            return original_semantic(mask_cls, mask_pred)

        model.semantic_inference = semantic_inference

    def valid_masks(self) -> torch.Tensor | None:
        """(B, Q) bool FC-CLIP's valid masking (l. 355-356, 377), with ENSEMBLE_ON_VALID_MASK only."""
        if not self.model.ensemble_on_valid_mask:
            return None
        mask_for_pooling = F.interpolate(self.captured["masks"], size=self.captured["clip_grid"], mode="bilinear",
                                         align_corners=False)
        return (mask_for_pooling > 0).to(mask_for_pooling).sum(-1).sum(-1) > 0

    @torch.no_grad()
    def __call__(self, inputs: list[dict]) -> list[dict[str, np.ndarray]]:
        self.captured = {}
        self.model(inputs)
        padded = tuple(int(s) for s in self.captured["padded"])
        valid = self.valid_masks()
        out = []
        for i, item in enumerate(inputs):
            class_logits, out_vocab = self.captured["class_logits"][i], self.captured["out_vocab_logits"][i]
            ours = fcclip_class_logits(class_logits, out_vocab[..., :-1], self.model.category_overlapping_mask.to(
                class_logits.device), self.model.geometric_ensemble_alpha, self.model.geometric_ensemble_beta,
                valid[i] if valid is not None else None)
            self.mismatches += not torch.equal(ours, self.captured["mask_cls_results"][i].to(ours))
            out.append(fcclip_image_arrays(class_logits.cpu(), out_vocab.cpu(), self.captured["masks"][i].cpu(),
                                           tuple(item["image"].shape[-2:]), padded,
                                           self.captured["embeddings"][i].cpu(),
                                           valid[i].cpu() if valid is not None else None, self.mask_dtype))
        return out


def build_fcclip(config_file: str, weights: str, options: list[str], device: str, seed: int):  # pragma: no cover
    """FC-CLIP's model as its train_net.py sets it up (detectron2 config + FC-CLIP's config keys); its random
    initialisation (all of it with `weights` ""; what the checkpoint leaves out otherwise) seeded with `seed`."""
    try:
        from detectron2.checkpoint import DetectionCheckpointer
        from detectron2.config import get_cfg
        from detectron2.data import MetadataCatalog
        from detectron2.modeling import build_model
        from detectron2.projects.deeplab import add_deeplab_config
        from fcclip import add_fcclip_config, add_maskformer2_config
    except ImportError as exc:
        raise UserError(import_error_message(exc)) from None
    cfg = get_cfg()
    add_deeplab_config(cfg)
    add_maskformer2_config(cfg)
    add_fcclip_config(cfg)
    cfg.merge_from_file(config_file)
    cfg.merge_from_list([part for option in options for part in option.split("=", 1)])
    cfg.MODEL.WEIGHTS = weights
    cfg.MODEL.DEVICE = device
    cfg.MODEL.MASK_FORMER.TEST.SEMANTIC_ON = True  # semantic_inference is where the final class scores are checked
    cfg.freeze()
    torch.manual_seed(seed)
    model = build_model(cfg).eval()
    DetectionCheckpointer(model).load(weights)
    return cfg, model, MetadataCatalog.get(cfg.DATASETS.TEST[0])


def fcclip_inputs(samples, fcclip_cfg) -> list[dict]:  # pragma: no cover - needs detectron2
    """FC-CLIP's input dicts for this project's samples, as detectron2's DefaultPredictor makes them
    (detectron2/engine/defaults.py): ResizeShortestEdge(MIN_SIZE_TEST, MAX_SIZE_TEST), INPUT.FORMAT channel
    order, the original "height" and "width"."""
    import detectron2.data.transforms as T

    resize = T.ResizeShortestEdge([fcclip_cfg.INPUT.MIN_SIZE_TEST] * 2, fcclip_cfg.INPUT.MAX_SIZE_TEST)
    inputs = []
    for sample in samples:
        image = sample.image if fcclip_cfg.INPUT.FORMAT == "RGB" else sample.image[:, :, ::-1]
        image = resize.get_transform(image).apply_image(image)
        inputs.append({"image": torch.as_tensor(image.astype("float32").transpose(2, 0, 1)),
                       "height": sample.height, "width": sample.width})
    return inputs


def main(argv: list[str]) -> int:  # pragma: no cover - the parts that need FC-CLIP
    parser = argparse.ArgumentParser(prog="python -m benchmark export-fcclip",
                                     description="Export FC-CLIP's predictions (format v3) for model=cached.")
    parser.add_argument("--config-file", required=True, help="FC-CLIP config (its configs/ folder)")
    parser.add_argument("--weights", required=True, help='FC-CLIP checkpoint (.pth); "" = random weights from --seed')
    parser.add_argument("--seed", type=int, default=0, help="torch seed of the model's random initialisation")
    parser.add_argument("--mask-dtype", choices=("float16", "float32"), default="float16",
                        help="mask logits: float16 (probabilities within 1.1e-4) or float32 (exact, twice the bytes)")
    parser.add_argument("--out", required=True, help="folder to write (created; resumable)")
    parser.add_argument("--fcclip-opt", action="append", default=[], metavar="KEY=VALUE",
                        help="FC-CLIP config override, e.g. MODEL.FC_CLIP.CLIP_PRETRAINED_WEIGHTS= (offline)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("overrides", nargs="*", help="this project's overrides choosing the images: stream=..., data.root=...")
    args = parser.parse_args(argv)
    from benchmark.config import load_config
    from benchmark.exporters.images import stream_images
    from benchmark.models.cached.format import check_folder, ensemble_settings, export_images, write_meta

    out = Path(args.out).expanduser()
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} is a file, not a folder")
    cfg = load_config(args.overrides)
    fcclip_cfg, model, metadata = build_fcclip(args.config_file, args.weights, args.fcclip_opt, args.device, args.seed)
    images, vocabulary, progress = stream_images(cfg)
    if cfg.stream.dataset in ("folder", "folder_panoptic"):  # the classes and synonyms of the user's classes.yaml
        from detectron2.data.catalog import Metadata

        metadata = Metadata(name=f"covseg_{vocabulary.name}", **folder_metadata(vocabulary))
        model.set_metadata(metadata)
    names = list(metadata.stuff_classes)
    if len(names) != len(vocabulary):
        raise UserError(f"FC-CLIP's test dataset {metadata.name} has {len(names)} classes, the "
                        f"stream's vocabulary {vocabulary.name} {len(vocabulary)}; set --fcclip-opt DATASETS.TEST")
    differ = synonym_sets_differ([c.synonyms for c in vocabulary.classes], names)
    if differ:
        first = differ[0]
        print(f"note: {len(differ)} of {len(names)} classes have other synonyms in FC-CLIP's "
              f"{metadata.name} than in {vocabulary.name} (columns are matched by position), e.g. "
              f"column {first}: {names[first]!r} vs {vocabulary.classes[first].name!r}", file=sys.stderr)
    weights = args.weights or f"random(seed={args.seed})"
    producer = f"fc-clip config={args.config_file} weights={weights} test={metadata.name}"
    out.mkdir(parents=True, exist_ok=True)
    check_folder(out, producer, vocabulary.name)
    # FCCLIP.__init__: `nn.Embedding(1, backbone.dim_latent)` is the void class in the pooled CLIP space
    # FCCLIP.forward: semantic inference before or after resizing, as FC-CLIP's config has it (A-847: after)
    ensemble = ensemble_settings(model.geometric_ensemble_alpha, model.geometric_ensemble_beta,
                                 model.ensemble_on_valid_mask, model.category_overlapping_mask.tolist())
    write_meta(out, vocabulary.name, vocabulary.ids, void=True, embedding_dim=int(model.backbone.dim_latent),
               producer=producer, ensemble=ensemble, semantic_at_input=not model.sem_seg_postprocess_before_inference,
               object_threshold=model.object_mask_threshold, overlap_threshold=model.overlap_threshold)
    capture = FcclipCapture(model, args.mask_dtype)
    written, kept = export_images(images, out, 1, lambda samples: capture(fcclip_inputs(samples, fcclip_cfg)),
                                  progress.bar)
    if capture.mismatches:
        print(f"warning: on {capture.mismatches} of {written} image(s) FC-CLIP's final class scores differ from "
              f"mask_inference.fcclip_class_logits on its captured logits: model=cached will not be exact",
              file=sys.stderr)
    print(f"wrote {written} image(s), kept {kept} already exported, under {out}; use them with: "
          f"python -m benchmark run model=cached model.predictions_dir={out} stream={cfg.stream.name} ...")
    return 0
