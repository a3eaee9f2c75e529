"""What checkpointing costs ``index_folder``: a full build with checkpoints vs without.

Run: ``.venv/bin/python bench/bench_checkpoint.py [--docs 5183] [--repeats 3] [--embed-ms 0]``

The SciFact corpus is written as one markdown file per record and indexed into a new directory
by ``index_folder`` with a hashing embedder (no model: embedding costs ~nothing, so checkpoint
saves weigh the most they can; ``--embed-ms`` adds a simulated cost per chunk). Compared, in
the same run and alternating: no checkpoint (``checkpoint_every=inf``), a checkpoint after
every batch (``checkpoint_every=0``, the worst case: one save per million characters), and the
default (``CHECKPOINT_SECONDS``). Prints medians and ratios against no checkpoint.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import corpus  # noqa: E402

import ragkit.index  # noqa: E402
import ragkit.ingest  # noqa: E402
from ragkit.ingest import CHECKPOINT_SECONDS, index_folder  # noqa: E402


class HashEmbedder:
    name, dim, batch_size, max_input_tokens = "hash-64", 64, 256, 512

    def __init__(self, embed_ms: float) -> None:
        self.embed_ms = embed_ms

    def embed_documents(self, texts: Sequence[str]) -> np.ndarray:
        if self.embed_ms:
            time.sleep(self.embed_ms * len(texts) / 1e3)
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for row, text in enumerate(texts):
            for word in text.split():
                out[row, hash(word) % self.dim] += 1.0
        out /= np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-9)
        return out

    def embed_query(self, text: str) -> np.ndarray:
        return self.embed_documents([text])[0]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--docs", type=int, default=5183)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--embed-ms", type=float, default=0.0)
    args = parser.parse_args()
    configs = {"none": math.inf, "every_batch": 0.0, "default": CHECKPOINT_SECONDS}
    saves: dict[str, int] = {}
    times: dict[str, list[float]] = {k: [] for k in configs}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "docs"
        folder.mkdir()
        with open(corpus.SCIFACT / "corpus.jsonl", encoding="utf-8") as fh:
            for i, line in enumerate(fh):
                if i >= args.docs:
                    break
                r = json.loads(line)
                (folder / f"{r['_id']}.md").write_text(f"# {r['title']}\n\n{r['text']}\n")
        real_save = ragkit.index.Index.save
        for rep in range(args.repeats):
            for name, every in configs.items():
                count = [0]

                def counting(
                    self: ragkit.index.Index, path: object = None, count: list[int] = count
                ) -> object:
                    count[0] += 1
                    return real_save(self, path)  # type: ignore[arg-type]

                ragkit.index.Index.save = counting  # type: ignore[method-assign, assignment]
                t = time.perf_counter()
                index = index_folder(
                    folder,
                    Path(tmp) / f"{name}-{rep}",
                    embedder=HashEmbedder(args.embed_ms),
                    checkpoint_every=every,
                )
                times[name].append(time.perf_counter() - t)
                ragkit.index.Index.save = real_save  # type: ignore[method-assign]
                saves[name] = count[0]
        chunks = len(index)
    med = {k: statistics.median(v) for k, v in times.items()}
    print(
        json.dumps(
            {
                "documents": args.docs,
                "chunks": chunks,
                "embed_ms_per_chunk": args.embed_ms,
                "seconds": {k: round(v, 3) for k, v in med.items()},
                "saves": saves,
                "ratio_vs_none": {k: round(v / med["none"], 3) for k, v in med.items()},
                "batch_chars": ragkit.ingest._BATCH_CHARS,
            },
            indent=1,
        )
    )


if __name__ == "__main__":
    main()
