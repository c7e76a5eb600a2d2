"""`python -m benchmark perf retrieval`: kNN-CLIP's database at stream scale. For N entries of dimension D
(default 768) drawn from a clustered distribution carrying class labels, and held-out queries from the same
distribution, it measures per index: ingest rate (training included), queries/s, recall@k against exact
search, agreement of the majority label over the k neighbours with exact search's, and bytes per entry
(serialised index + int32 label); faiss Flat and a plain torch matmul + topk run in the same process as
references. Default sizes 10k and 100k take a few minutes on 2 cores; add 1M with `--sizes 10000,100000,1000000`
(3 GB per float32 copy, ~10+ minutes on 2 cores).

Data: a two-level Gaussian mixture on the sphere: `classes` class centres, `modes` modes around each (instances
of a class differ), points around the modes; with spread 1, a point's cosine similarity is ~0.5 to points of
its mode, ~0.25 to other modes of its class, ~0 to other classes.
"""
from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from benchmark.errors import UserError
from methods.knnclip.database import majority_labels, torch_topk  # what kNN-CLIP runs is what is measured

INGEST_CHUNK = 50_000  # vectors per database.add call


def clustered_vectors(count: int, dim: int, classes: int, modes: int, spread: float, seed: int,
                      centres: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(count, dim) float32 unit vectors, their (count,) int32 class labels, and the (classes*modes, dim) mode
    centres (drawn when not given): each class a unit centre, its modes the centre plus noise of norm
    `spread` (renormalised), each point its mode plus noise of norm `spread` (renormalised)."""
    rng = np.random.default_rng(seed)

    def jitter(points: np.ndarray) -> np.ndarray:
        noisy = points + rng.standard_normal(points.shape, dtype=np.float32) * np.float32(spread / np.sqrt(dim))
        return noisy / np.linalg.norm(noisy, axis=1, keepdims=True)

    if centres is None:
        class_centres = rng.standard_normal((classes, dim), dtype=np.float32)
        class_centres /= np.linalg.norm(class_centres, axis=1, keepdims=True)
        centres = jitter(np.repeat(class_centres, modes, axis=0))  # (classes * modes, dim)
    mode = rng.integers(0, len(centres), count)
    vectors = np.empty((count, dim), dtype=np.float32)
    for start in range(0, count, 100_000):  # chunks keep the temporary noise small at 1M entries
        vectors[start:start + 100_000] = jitter(centres[mode[start:start + 100_000]])
    return vectors, (mode // modes).astype(np.int32), centres


def recall_at_k(found: np.ndarray, exact: np.ndarray) -> float:
    """Mean over queries of |found ∩ exact| / k."""
    return float(np.mean([len(np.intersect1d(f, e)) / exact.shape[1] for f, e in zip(found, exact)]))


def measure_faiss(spec: str, vectors: np.ndarray, labels: np.ndarray, queries: np.ndarray, k: int, nprobe: int,
                  ef_search: int, train_size: int) -> dict:
    """Build `spec` over `vectors` (training on the first vectors as the database does), then search."""
    import faiss

    from methods.knnclip.database import RetrievalDatabase

    database = RetrievalDatabase(vectors.shape[1], spec, train_size, nprobe, ef_search)
    started = time.perf_counter()
    for start in range(0, len(vectors), INGEST_CHUNK):  # in chunks, as a stream's batches arrive
        database.add(torch.from_numpy(vectors[start:start + INGEST_CHUNK]), labels[start:start + INGEST_CHUNK])
    ingest = time.perf_counter() - started
    searched = database.index if database.index.ntotal else database.pending  # the database's own choice
    started = time.perf_counter()
    _, ids = searched.search(queries, k)  # (Q, k)
    search = time.perf_counter() - started
    size = faiss.serialize_index(database.index).nbytes + faiss.serialize_index(database.pending).nbytes
    return {"ids": ids, "labels": np.where(ids >= 0, database.labels[np.maximum(ids, 0)], -1), "ingest_s": ingest,
            "search_s": search, "bytes": size + database.labels.nbytes}


def run_size(count: int, args: argparse.Namespace) -> list[dict]:
    vectors, labels, centres = clustered_vectors(count, args.dim, args.classes, args.modes, args.spread, args.seed)
    queries, _, _ = clustered_vectors(args.queries, args.dim, args.classes, args.modes, args.spread, args.seed + 1,
                                      centres)
    k = args.k
    rows = []
    started = time.perf_counter()
    database = torch.from_numpy(vectors)  # ingest for torch = holding the float32 matrix (a copy, as a database would)
    database = database.clone()
    ingest = time.perf_counter() - started
    started = time.perf_counter()
    torch_ids = torch_topk(database, torch.from_numpy(queries), k)[1].numpy()
    torch_search = time.perf_counter() - started
    del database
    rows.append({"index": "torch matmul+topk", "ids": torch_ids, "labels": labels[torch_ids], "ingest_s": ingest,
                 "search_s": torch_search, "bytes": vectors.nbytes + labels.nbytes})
    specs = ["Flat", *[s.replace("{nlist}", str(nlist_for(count))) for s in args.indexes]]
    for spec in specs:
        if spec.startswith("HNSW") and count > args.hnsw_max:
            continue
        result = measure_faiss(spec, vectors, labels, queries, k, args.nprobe, args.ef_search, args.train_size)
        rows.append({"index": spec, **result})
    exact = next(r for r in rows if r["index"] == "Flat")
    exact_majority = majority_labels(exact["labels"])
    flat_qps = args.queries / exact["search_s"]
    torch_qps = args.queries / torch_search
    table = []
    for row in rows:
        qps = args.queries / row["search_s"]
        table.append({
            "entries": count, "index": row["index"],
            "bytes/entry": row["bytes"] / count,
            "ingest/s": count / row["ingest_s"] if row["ingest_s"] > 0 else float("inf"),
            "queries/s": qps, "x Flat": qps / flat_qps, "x torch": qps / torch_qps,
            f"recall@{k}": recall_at_k(row["ids"], exact["ids"]),
            "majority agrees": float(np.mean(majority_labels(row["labels"]) == exact_majority)),
        })
    return table


def nlist_for(count: int) -> int:
    """IVF lists for `count` entries: ~sqrt(N), a power of two, at most count / 39 (enough training points)."""
    nlist = 2 ** int(round(np.log2(max(np.sqrt(count), 1))))
    while nlist > 1 and nlist * 39 > count:
        nlist //= 2
    return nlist


def format_table(rows: list[dict]) -> str:
    import pandas as pd

    frame = pd.DataFrame(rows)
    formats = {"bytes/entry": "{:.1f}", "ingest/s": "{:,.0f}", "queries/s": "{:,.0f}", "x Flat": "{:.2f}",
               "x torch": "{:.2f}"}
    for column, fmt in formats.items():
        frame[column] = frame[column].map(fmt.format)
    for column in frame.columns:
        if column.startswith("recall") or column == "majority agrees":
            frame[column] = frame[column].map("{:.3f}".format)
    return frame.to_string(index=False)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmark perf retrieval", description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="10000,100000", help="database sizes, comma separated (default 10000,100000)")
    parser.add_argument("--dim", type=int, default=768)
    parser.add_argument("--queries", type=int, default=1000, help="held-out queries per size (default 1000)")
    parser.add_argument("--k", type=int, default=16, help="neighbours (default 16)")
    parser.add_argument("--indexes", nargs="+", default=["SQfp16", "HNSW32", "IVF{nlist},PQ128x4fs"],
                        help="faiss factory strings besides Flat; {nlist} = ~sqrt(N) (default SQfp16 HNSW32 IVF{nlist},PQ128x4fs)")
    parser.add_argument("--nprobe", type=int, default=16, help="IVF lists visited per query (default 16)")
    parser.add_argument("--ef-search", type=int, default=64, help="HNSW efSearch (default 64)")
    parser.add_argument("--train-size", type=int, default=0, help="training vectors; 0 = 39 per centroid")
    parser.add_argument("--hnsw-max", type=int, default=200_000, help="skip HNSW above this size (slow to build on few cores)")
    parser.add_argument("--classes", type=int, default=1000, help="classes of the clustered data (default 1000)")
    parser.add_argument("--modes", type=int, default=4, help="Gaussian modes per class (default 4)")
    parser.add_argument("--spread", type=float, default=1.0, help="noise norm relative to the unit mode centre")
    parser.add_argument("--threads", type=int, default=0, help="threads for torch and faiss; 0 = all cores")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    try:
        sizes = [int(s) for s in args.sizes.split(",") if s]
    except ValueError:
        raise UserError(f"--sizes={args.sizes} must be comma-separated integers, e.g. 10000,100000") from None
    if args.threads:
        import faiss

        faiss.omp_set_num_threads(args.threads)
        torch.set_num_threads(args.threads)
    print(f"clustered data: dim {args.dim}, {args.classes} classes x {args.modes} modes, spread {args.spread}; "
          f"{args.queries} queries, k={args.k}, nprobe={args.nprobe}, efSearch={args.ef_search}, "
          f"{torch.get_num_threads()} threads; recall and majority label against exact search (Flat)")
    rows = []
    for count in sizes:
        rows.extend(run_size(count, args))
        print(format_table([r for r in rows if r["entries"] == count]), flush=True)
        print()
    return 0
