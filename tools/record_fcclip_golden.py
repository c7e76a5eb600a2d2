"""Record the golden fixtures of tests/models/test_fcclip_golden.py by running the real FC-CLIP code (random weights):
FC-CLIP's exported predictions (this project's exporter) and FC-CLIP's own semantic and panoptic outputs, over
the full vocabulary and over subsets of the class names, for a few demo validation images (the public demo draw,
secret 0). Two sets: `--variant plain` (tests/fixtures/fcclip_golden) and `--variant void` (fcclip_golden_void:
void-winning queries and ENSEMBLE_ON_VALID_MASK with invalid masks). `--check` records into a temporary folder
and compares with the committed set byte for byte. See tools/README.md for the environment and the commands;
each set's recording.json says what was run, with every patch.

Not part of the package: it needs detectron2 and an FC-CLIP checkout, which the project does not depend on.
"""
from __future__ import annotations

import argparse
import filecmp
import hashlib
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import types
from importlib import metadata as package_metadata
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

REPO = Path(__file__).resolve().parents[1]
FCCLIP_COMMIT = "7791b83"  # fc-clip's fcclip/ must be this commit's (the code benchmark/exporters/fcclip.py hooks into)
EVAL = "configs/coco/panoptic-segmentation/fcclip"
# name: (FC-CLIP eval config, this project's vocabulary); A-847's config has panoptic inference off
CONFIGS = {"a847": (f"{EVAL}/fcclip_convnext_large_eval_a847.yaml", "ade20k_847"),
           "ade150": (f"{EVAL}/fcclip_convnext_large_eval_ade20k.yaml", "ade20k_150")}


def git_head(path: Path) -> str:
    return subprocess.run(["git", "-C", str(path), "rev-parse", "HEAD"], capture_output=True, text=True,
                          check=True).stdout.strip()


def git_blob(path: Path) -> str:
    return subprocess.run(["git", "hash-object", str(path)], capture_output=True, text=True, check=True).stdout.strip()


def check_fcclip_checkout(fcclip: Path) -> None:
    """fcclip/ must equal 7791b83's: the checkout may be at a later commit that changed only other files."""
    diff = subprocess.run(["git", "-C", str(fcclip), "diff", "--quiet", FCCLIP_COMMIT, "--", "fcclip"])
    if diff.returncode != 0:
        sys.exit(f"error: {fcclip}/fcclip differs from fc-clip {FCCLIP_COMMIT} (or that commit is missing)")


class Diversifier:
    """Seeded edits of a randomly initialised FC-CLIP so that its maps hold several classes and several
    panoptic segments (pure seed-0 weights give one-class maps: every query points the same way). Every edit is
    listed in `PATCHES` and recorded; FC-CLIP's own code computes everything from the edited model."""

    PATCHES = [
        "MultiScaleDeformableAttention: an empty stub module, so FC-CLIP imports without its compiled op (its "
        "ms_deform_attn.py falls back to ms_deform_attn_core_pytorch when the op fails, as on CPU)",
        "test_text_classifier: a seeded N(0, 1) matrix, one row per class synonym (sum of test_num_templates rows, "
        "EMBED_DIM columns), L2-normalised, instead of the random text encoder (which would need hours on CPU); "
        "for a subset of the classes, the rows of its classes' synonyms",
        "in-vocabulary logit scale sem_seg_head.predictor.logit_scale = ln 100 (clamped exp: 100); out-of-vocabulary "
        "CLIP logit scale backbone.clip_model.logit_scale = ln 10, so the query-specific in-vocabulary classifier "
        "decides most classes",
        "transformer decoder: the residual output projections zeroed (self-attention and cross-attention out_proj, "
        "FFN linear2, weights and biases), so each query's decoder output stays its own query feature",
        "twin queries: query_feat and query_embed rows 1, 3, 5, ... copied from rows 0, 2, 4, ..., so pairs of "
        "queries share their class evidence (stuff classes of two surviving queries merge; things give instances)",
        "mask features (forward hook on sem_seg_head.pixel_decoder.mask_features): channels 0-3 replaced by "
        "1, y, x, y^2 + x^2 over the padded input (y, x in [0, 1])",
        "mask embeddings (forward hook on sem_seg_head.predictor.mask_embed): channels 0-3 replaced by "
        "S (r_q^2 - |c_q|^2), 2 S c_q, -S with S = 200 and seeded centres c_q ~ U[0, 1]^2 and radii "
        "r_q ~ U[0.08, 0.25], so query q's mask logit is S (r_q^2 - |p - c_q|^2) plus the random model's own "
        "term: a blob of radius ~r_q around c_q",
    ]
    OUT_VOCAB_SCALE, BLOB_SCALE, RADII = 10.0, 200.0, (0.08, 0.25)

    def __init__(self, model, seed: int) -> None:
        generator = torch.Generator().manual_seed(seed)
        predictor = model.sem_seg_head.predictor
        rows = sum(model.test_num_templates)
        self.synonym_rows = F.normalize(torch.randn(rows, model.backbone.dim_latent, generator=generator), dim=-1)
        queries = predictor.query_feat.weight.shape[0]
        self.centres = torch.rand(queries, 2, generator=generator)
        self.radii = self.RADII[0] + (self.RADII[1] - self.RADII[0]) * torch.rand(queries, generator=generator)
        with torch.no_grad():
            predictor.logit_scale.fill_(math.log(100.0))
            model.backbone.clip_model.logit_scale.fill_(math.log(self.OUT_VOCAB_SCALE))
            for layer in predictor.transformer_self_attention_layers:
                layer.self_attn.out_proj.weight.zero_(), layer.self_attn.out_proj.bias.zero_()
            for layer in predictor.transformer_cross_attention_layers:
                layer.multihead_attn.out_proj.weight.zero_(), layer.multihead_attn.out_proj.bias.zero_()
            for layer in predictor.transformer_ffn_layers:
                layer.linear2.weight.zero_(), layer.linear2.bias.zero_()
            predictor.query_feat.weight[1::2] = predictor.query_feat.weight[0::2]
            predictor.query_embed.weight[1::2] = predictor.query_embed.weight[0::2]
        model.sem_seg_head.pixel_decoder.mask_features.register_forward_hook(self.position_features)
        predictor.mask_embed.register_forward_hook(self.blob_embeddings)
        self.model = model
        self.full_templates = list(model.test_num_templates)
        self.use_classes(range(len(self.full_templates)))

    @staticmethod
    def position_features(_module, _inputs, out: torch.Tensor) -> torch.Tensor:
        height, width = out.shape[-2:]
        ys, xs = torch.meshgrid(torch.linspace(0, 1, height), torch.linspace(0, 1, width), indexing="ij")
        out = out.clone()
        out[:, 0], out[:, 1], out[:, 2], out[:, 3] = 1.0, ys, xs, ys ** 2 + xs ** 2
        return out

    def blob_embeddings(self, _module, _inputs, out: torch.Tensor) -> torch.Tensor:
        scale, (cy, cx) = self.BLOB_SCALE, self.centres.T
        out = out.clone()
        out[..., 0] = scale * (self.radii ** 2 - cy ** 2 - cx ** 2)
        out[..., 1], out[..., 2], out[..., 3] = 2 * scale * cy, 2 * scale * cx, -scale
        return out

    def use_classes(self, columns) -> None:
        """The text classifier of these class columns (after `model.set_metadata` for a subset)."""
        starts = np.cumsum([0] + self.full_templates)
        rows = [r for c in columns for r in range(starts[c], starts[c + 1])]
        self.model.test_text_classifier = self.synonym_rows[rows]


class VoidDiversifier(Diversifier):
    """The plain edits plus two that make FC-CLIP's void step and its ENSEMBLE_ON_VALID_MASK decide outputs:
    void-winning queries and queries whose mask is nowhere positive on the CLIP grid (`VOID_PATCHES`)."""

    VOID_PATCHES = [
        "void (forward hook on sem_seg_head.predictor.class_embed): query q's class embedding e_q replaced by "
        "sqrt(1 - rho_q^2) e_perp + rho_q v, with v the L2-normalised void_embedding and e_perp the unit part of "
        "e_q orthogonal to v, so its in-vocabulary void logit is 100 rho_q whatever classes are asked; seeded "
        "rho_q ~ U[0.16, 0.3] for a quarter of the queries (void wins) and U[0, 0.06] for the others",
        "invalid masks (in the mask-embedding hook): for a seeded sixth of the queries, channels 0-3 give "
        "-b_q - s_q |p - c_q|^2 (b_q ~ U[0.5, 2], s_q ~ U[2, 8]) and channels 4+ are zeroed, so the mask logit is "
        "negative everywhere (not valid for ENSEMBLE_ON_VALID_MASK) yet its sigmoid, up to 0.38, decides pixels "
        "far from the blobs",
    ]
    VOID_SHARE, VOID_RHO, OTHER_RHO, INVALID_SHARE = 1 / 4, (0.16, 0.3), (0.0, 0.06), 1 / 6

    def __init__(self, model, seed: int) -> None:
        super().__init__(model, seed)
        generator = torch.Generator().manual_seed(seed + 1000)
        queries = len(self.centres)
        order = torch.randperm(queries, generator=generator)
        self.void_queries = order[:round(queries * self.VOID_SHARE)]
        low, high = torch.full((queries,), self.OTHER_RHO[0]), torch.full((queries,), self.OTHER_RHO[1])
        low[self.void_queries], high[self.void_queries] = self.VOID_RHO
        self.rho = low + (high - low) * torch.rand(queries, generator=generator)
        self.invalid = torch.randperm(queries, generator=generator)[:round(queries * self.INVALID_SHARE)]
        self.offsets = 0.5 + 1.5 * torch.rand(queries, generator=generator)
        self.spreads = 2.0 + 6.0 * torch.rand(queries, generator=generator)
        model.sem_seg_head.predictor.class_embed.register_forward_hook(self.void_embeddings)

    def void_embeddings(self, _module, _inputs, out: torch.Tensor) -> torch.Tensor:
        void = F.normalize(self.model.void_embedding.weight[0], dim=-1)
        perpendicular = F.normalize(out - (out @ void)[..., None] * void, dim=-1)
        rho = self.rho[:, None]
        return torch.sqrt(1 - rho ** 2) * perpendicular + rho * void

    def blob_embeddings(self, module, inputs, out: torch.Tensor) -> torch.Tensor:
        out = super().blob_embeddings(module, inputs, out)
        q, (cy, cx) = self.invalid, self.centres[self.invalid].T
        spread = self.spreads[q]
        out[..., q, :] = 0.0
        out[..., q, 0] = -self.offsets[q] - spread * (cy ** 2 + cx ** 2)
        out[..., q, 1], out[..., q, 2], out[..., q, 3] = 2 * spread * cy, 2 * spread * cx, -spread
        return out


# name: (Diversifier class, extra FC-CLIP options, subsets, the subsets' top-2 margins kept, default --out folder)
VARIANTS = {"plain": (Diversifier, [], 1, True, "fcclip_golden"),
            "void": (VoidDiversifier, ["MODEL.FC_CLIP.ENSEMBLE_ON_VALID_MASK=True"], 2, False, "fcclip_golden_void")}


def subset_metadata(name: str, metadata, columns: list[int]):
    """A detectron2 metadata entry holding FC-CLIP's class names of `columns` only (in their order): FC-CLIP
    run with a shortened class list. Things keep their thing status (FC-CLIP's panoptic inference reads
    thing_dataset_id_to_contiguous_id's values as contiguous class indices)."""
    from detectron2.data import MetadataCatalog

    entry = MetadataCatalog.get(name)
    entry.set(stuff_classes=[metadata.stuff_classes[c] for c in columns])
    things = set(getattr(metadata, "thing_dataset_id_to_contiguous_id", {}).values())
    entry.set(thing_dataset_id_to_contiguous_id={c: i for i, c in enumerate(columns) if c in things})
    return entry


def choose_subset(predicted: set[int], num_classes: int, seed: int) -> list[int]:
    """Half of the classes FC-CLIP predicted over the full vocabulary and 20 others (seeded), sorted: the
    subset changes predictions at the dropped classes and, through the ensemble's softmaxes, elsewhere."""
    rng = np.random.default_rng(seed)
    shown = sorted(predicted)
    kept = rng.choice(shown, size=len(shown) // 2, replace=False).tolist()
    others = sorted(set(range(num_classes)) - predicted)
    return sorted(set(kept) | set(rng.choice(others, size=20, replace=False).tolist()))


def choose_small_subset(predicted: set[int], num_classes: int, seed: int, size: int = 13) -> list[int]:
    """A second, smaller subset (seeded, another draw): up to half of it among the classes FC-CLIP predicted."""
    rng = np.random.default_rng([seed, size])
    shown = sorted(predicted)
    kept = rng.choice(shown, size=min(len(shown), size // 2), replace=False).tolist()
    others = sorted(set(range(num_classes)) - set(kept))
    return sorted(set(kept) | set(rng.choice(others, size=size - len(kept), replace=False).tolist()))


def fcclip_result_arrays(result: dict, prefix: str, margin: bool = True) -> tuple[dict[str, np.ndarray], list[dict]]:
    """FC-CLIP's own outputs for one image: the semantic argmax (as detectron2's SemSegEvaluator takes it), its
    top-2 score margin (with `margin`), and the panoptic map with its segments_info."""
    scores = result["sem_seg"]
    arrays = {f"{prefix}sem": scores.argmax(0).numpy().astype(np.uint16)}
    if margin:
        top2 = scores.topk(2, dim=0).values
        arrays[f"{prefix}sem_margin"] = (top2[0] - top2[1]).numpy().astype(np.float32)
    segments = []
    if "panoptic_seg" in result:
        pan, segments = result["panoptic_seg"]
        arrays[f"{prefix}pan"] = pan.numpy().astype(np.uint16)
    return arrays, [dict(s) for s in segments]


def record_config(name: str, args, samples, vocabulary_name: str, config_file: str) -> dict:
    from benchmark.data.types import Vocabulary
    from benchmark.exporters.fcclip import FcclipCapture, build_fcclip, fcclip_inputs
    from benchmark.models.cached.format import ensemble_settings, write_image_predictions, write_meta

    diversifier_class, variant_options, num_subsets, subset_margins, _ = VARIANTS[args.variant]
    options = ["MODEL.FC_CLIP.CLIP_PRETRAINED_WEIGHTS=", f"MODEL.MASK_FORMER.NUM_OBJECT_QUERIES={args.queries}",
               f"INPUT.MIN_SIZE_TEST={args.short_side}", *variant_options]
    fcclip_cfg, model, metadata = build_fcclip(config_file, "", options, "cpu", args.seed)
    diversifier = diversifier_class(model, args.patch_seed)
    vocabulary = Vocabulary.load(vocabulary_name)
    if len(metadata.stuff_classes) != len(vocabulary):
        sys.exit(f"error: {config_file} tests {len(metadata.stuff_classes)} classes, {vocabulary_name} has "
                 f"{len(vocabulary)}")
    folder = args.out / name
    shutil.rmtree(folder, ignore_errors=True)
    predictions = folder / "predictions"
    predictions.mkdir(parents=True)
    producer = f"fc-clip {FCCLIP_COMMIT} config={config_file} weights=random(seed={args.seed}) + golden patches"
    ensemble = ensemble_settings(model.geometric_ensemble_alpha, model.geometric_ensemble_beta,
                                 model.ensemble_on_valid_mask, model.category_overlapping_mask.tolist())
    write_meta(predictions, vocabulary.name, vocabulary.ids, void=True, embedding_dim=int(model.backbone.dim_latent),
               producer=producer, ensemble=ensemble, semantic_at_input=not model.sem_seg_postprocess_before_inference,
               object_threshold=model.object_mask_threshold, overlap_threshold=model.overlap_threshold)
    capture = FcclipCapture(model, "float32")  # unquantised: the test quantises a copy itself
    results = {}
    model.register_forward_hook(lambda _module, _inputs, out: results.__setitem__("last", out))
    inputs = fcclip_inputs(samples, fcclip_cfg)  # one image per forward, as the exporter runs FC-CLIP
    arrays, segments, predicted = {}, {}, set()
    for sample, item in zip(samples, inputs):
        write_image_predictions(predictions, sample.image_id, capture([item])[0])
        image_arrays, segments[sample.image_id] = fcclip_result_arrays(results["last"][0], "")
        arrays.update({f"{sample.image_id}/{key}": value for key, value in image_arrays.items()})
        predicted |= set(np.unique(image_arrays["sem"]).tolist())
        print(f"{name} {sample.image_id}: {len(np.unique(image_arrays['sem']))} classes, "
              f"{len(segments[sample.image_id])} segments", flush=True)

    if capture.mismatches:
        sys.exit(f"error: on {capture.mismatches} image(s) the exporter's ensemble did not reproduce FC-CLIP's class "
                 f"scores bit for bit")
    recorded = {"config_file": config_file, "vocabulary": vocabulary.name, "predictions": f"{name}/predictions",
                "fcclip_outputs": f"{name}/fcclip_outputs.npz"}
    subsets = {"subset": choose_subset(predicted, len(vocabulary), args.seed),
               "subset2": choose_small_subset(predicted, len(vocabulary), args.seed)}
    subset_segments = {}
    for prefix in list(subsets)[:num_subsets]:  # prefixes of the arrays and recording.json keys
        recorded[f"{prefix}_class_ids"] = subsets[prefix]
        model.set_metadata(subset_metadata(f"golden_{name}_{args.variant}_{prefix}", metadata, subsets[prefix]))
        diversifier.use_classes(subsets[prefix])
        subset_segments[prefix] = {}
        with torch.no_grad():
            for sample, item in zip(samples, inputs):
                image_arrays, subset_segments[prefix][sample.image_id] = fcclip_result_arrays(
                    model([item])[0], f"{prefix}_", subset_margins)
                arrays.update({f"{sample.image_id}/{key}": value for key, value in image_arrays.items()})
    np.savez_compressed(folder / "fcclip_outputs.npz", **arrays)
    return {**recorded, "queries": args.queries, "min_size_test": fcclip_cfg.INPUT.MIN_SIZE_TEST,
            "max_size_test": fcclip_cfg.INPUT.MAX_SIZE_TEST, "panoptic": bool(model.panoptic_on),
            "semantic_at_input": not model.sem_seg_postprocess_before_inference,
            "segments": segments, **{f"{prefix}_segments": value for prefix, value in subset_segments.items()}}


# recording.json's keys that name where and from which commit of this project it was recorded, not what
PROVENANCE = ("command", "this_project")


def compare_recordings(recorded: Path, committed: Path) -> list[str]:
    """The files of two recorded sets that differ (byte for byte; recording.json less its PROVENANCE keys)."""
    names = sorted({p.relative_to(folder).as_posix() for folder in (recorded, committed)
                    for p in folder.rglob("*") if p.is_file()})
    differ = []
    for name in names:
        ours, theirs = recorded / name, committed / name
        if not (ours.is_file() and theirs.is_file()):
            differ.append(f"{name} (only in {'the recording' if ours.is_file() else 'the committed set'})")
        elif name == "recording.json":
            loaded = [{k: v for k, v in json.loads(f.read_text()).items() if k not in PROVENANCE}
                      for f in (ours, theirs)]
            if loaded[0] != loaded[1]:
                keys = sorted(k for k in loaded[0].keys() | loaded[1].keys() if loaded[0].get(k) != loaded[1].get(k))
                differ.append(f"{name} ({', '.join(keys)})")
        elif not filecmp.cmp(ours, theirs, shallow=False):
            differ.append(name)
    return differ


def code_blobs() -> dict[str, str]:
    """git blob hashes of the code that wrote the files (they name it whatever commit it ends up in)."""
    paths = ["benchmark/exporters/fcclip.py", "tools/record_fcclip_golden.py",
             *sorted(p.relative_to(REPO).as_posix() for p in (REPO / "benchmark" / "models").rglob("*.py"))]
    return {path: git_blob(REPO / path) for path in paths}


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fcclip", type=Path, required=True, help="bytedance/fc-clip checkout (fcclip/ at 7791b83)")
    parser.add_argument("--detectron2", type=Path, required=True, help="the detectron2 checkout installed here")
    parser.add_argument("--variant", choices=sorted(VARIANTS), default="plain",
                        help="plain: fcclip_golden; void: void-winning queries, ENSEMBLE_ON_VALID_MASK, two subsets")
    parser.add_argument("--out", type=Path, help="default: tests/fixtures/<the variant's folder>")
    parser.add_argument("--check", action="store_true",
                        help="record into a temporary folder and compare with --out byte for byte (exit 1 if not)")
    parser.add_argument("--images", type=int, default=4, help="first N demo validation images")
    parser.add_argument("--short-side", type=int, default=128, help="INPUT.MIN_SIZE_TEST")
    # 36 x 848 A-847 class scores stay under torch's grain size (32768): no thread splits FC-CLIP's ensemble, whose
    # pow rounds differently where a split puts the vectorised loop's tail (mask_inference.fcclip_class_logits)
    parser.add_argument("--queries", type=int, default=36, help="MODEL.MASK_FORMER.NUM_OBJECT_QUERIES")
    parser.add_argument("--seed", type=int, default=0, help="FC-CLIP's random initialisation and the subset's choice")
    # patch seed 1: its twin queries give a stuff class in every image (seed 0's survivors are almost all things)
    parser.add_argument("--patch-seed", type=int, default=1, help="the Diversifier's seeded draws")
    args = parser.parse_args(argv)
    committed = (args.out or REPO / "tests" / "fixtures" / VARIANTS[args.variant][-1]).resolve()
    args.fcclip = args.fcclip.resolve()
    check_fcclip_checkout(args.fcclip)
    if not args.check:
        args.out = committed
        return record(args, argv)
    with tempfile.TemporaryDirectory() as scratch:
        args.out = Path(scratch) / committed.name
        record(args, argv)
        differ = compare_recordings(args.out, committed)
    for name in differ:
        print(f"differs: {committed / name}")
    print(f"{committed}: {'re-recorded byte for byte' if not differ else f'{len(differ)} file(s) differ'}")
    return 1 if differ else 0


def record(args, argv: list[str]) -> int:
    sys.path.insert(0, str(REPO))
    from benchmark.data.demo import claim_demo_secret, demo_dataset

    with tempfile.TemporaryDirectory() as data_root:
        claim_demo_secret(Path(data_root), 0, 0)  # the public demo draw (data.demo_secret=0)
        dataset = demo_dataset(Path(data_root), "validation", panoptic=False, seed=0)
        samples = [dataset.load(i) for i in range(args.images)]
    images = [{"image_id": s.image_id, "height": s.height, "width": s.width,
               "sha256": hashlib.sha256(np.ascontiguousarray(s.image).tobytes()).hexdigest()} for s in samples]
    sys.modules["MultiScaleDeformableAttention"] = types.ModuleType("MultiScaleDeformableAttention")
    os.chdir(args.fcclip)  # FC-CLIP opens its class files relative to the working directory
    sys.path.insert(0, str(args.fcclip))
    args.out.mkdir(parents=True, exist_ok=True)
    configs = {name: record_config(name, args, samples, vocabulary, config_file)
               for name, (config_file, vocabulary) in CONFIGS.items()}
    recording = {
        "command": "python tools/record_fcclip_golden.py " + " ".join(argv),
        "fcclip": {"repository": "bytedance/fc-clip", "head": git_head(args.fcclip),
                   "fcclip_dir_equals": FCCLIP_COMMIT},
        "detectron2": {"repository": "facebookresearch/detectron2", "head": git_head(args.detectron2)},
        # blob hashes name the code that wrote the files whatever commit it ends up in (rebases keep them)
        "this_project": {"head": git_head(REPO), "blobs": code_blobs()},
        "versions": {name: package_metadata.version(name) for name in ("torch", "torchvision", "open_clip_torch",
                                                                        "detectron2", "numpy")},
        "python": sys.version.split()[0], "device": "cpu", "seed": args.seed, "patch_seed": args.patch_seed,
        "weights": f"none: FC-CLIP built with torch.manual_seed({args.seed}), "
                   "MODEL.FC_CLIP.CLIP_PRETRAINED_WEIGHTS= (random CLIP), then the patches",
        "patches": Diversifier.PATCHES + (VoidDiversifier.VOID_PATCHES if args.variant == "void" else []),
        **({"variant": args.variant, "fcclip_options": VARIANTS["void"][1]} if args.variant == "void" else {}),
        "images": {"source": "this project's demo dataset (benchmark/data/demo.py, seed 0, public draw: secret 0), "
                             "validation split, read by its SemSegFolder reader; sha256 of the RGB pixels fed",
                   "list": images},
        "configs": configs,
    }
    (args.out / "recording.json").write_text(json.dumps(recording, indent=1) + "\n")
    total = sum(p.stat().st_size for p in args.out.rglob("*") if p.is_file())
    print(f"recorded {args.out} ({total / 1e6:.1f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
