"""`perf stream`'s table from its children's reports (the runs themselves are too slow for the test suite)."""
from benchmark.perf.stream import format_runs


def _run(label, eval_s, rss_mb, cache_mb, entries=None, memory=0):
    caches = {role: {"peak_bytes": int(mb * 2**20), "entries": 10} for role, mb in zip(("validation", "training"), cache_mb)}
    return {"label": label, "learn_s": [1.0, 3.0], "eval_s": eval_s, "final_miou": 10.0, "peak_rss": rss_mb * 2**20,
            "passes": {"backbone_images": 8, "embedder_images": None, "distinct_images": 8}, "caches": caches,
            "database_entries": entries, "memory_bytes": memory, "index_reports": []}


def test_table_relates_eval_time_to_zeroshot_and_shows_the_caches_share_of_rss():
    table = format_runs([_run("zeroshot", [5.0, 2.0, 2.0], 1000, (10, 0)),
                         _run("knnclip", [5.0, 3.0, 3.0], 1500, (10, 20), entries=100, memory=51_600)])
    header, zeroshot, knnclip = table.splitlines()
    assert "caches peak MB" in header and "eval 2..T vs zeroshot" in header
    assert knnclip.split()[:5] == ["knnclip", "2.00", "3.67", "1.50", "10.00"]  # learn, eval, (3+3)/(2+2), mIoU
    assert "30.00" in knnclip.split() and "10.00" in zeroshot.split()  # 10 + 20 MB of caches
    assert "516.00" in knnclip.split()  # database bytes per entry
