"""Embedding throughput of the default embedder against the one it replaced, in one run.

Issue 17 part 3: ``ragkit index`` spends most of its time in the MiniLM graph. This bench times,
on the same real texts and in alternating rounds (so both sides see the same machine load):

1. ``embed_documents`` chunks/s of the baseline (``minilm.py`` as committed at ``--baseline-ref``,
   by default 8780ad2, before graph version 2; loaded from git as a module; with no git, graph
   version 1 of this checkout, which is the same graph), of graph version 2 (the default) and of
   graph version 3 (``new``, opt-in), medians and the median of the per-round ratios to the
   baseline. Texts: SciFact abstracts and the ``docs/`` pages, chunked with ragkit's defaults
   exactly as an index chunks them.
2. The vectors: the baseline's against version 1 of this checkout (must be identical), version 3's
   against the baseline's and version 2's (cosine), and its batch independence (each text
   alone against the same text in the whole batch, and in reverse order).
3. The floor under any graph of this model at these precisions, in the same run: the 36 int8
   matmuls (onnxruntime's dynamic-quantisation kernels, the model's shapes, random weights)
   and the 12 fp32 per-head attention matmuls (QK^T, AV) of six layers, for each chunk's token
   count, one thread, nothing else (no softmax, GELU, layer norm, copies): CPU ms per chunk,
   against the baseline's. The baseline's CPU time per chunk over this floor is the largest
   speed-up a rewrite at int8 matmuls and fp32 attention could reach on this CPU.
4. ``ragkit index FOLDER`` as a fresh process on a folder of SciFact abstracts (one markdown
   file each), alternating ``--embedder minilm-l6-v2-int8/384`` (graph version 1, the
   baseline's graph), ``--embedder minilm-l6-v2-int8/v2/384`` and ``--embedder
   minilm-l6-v2-int8/v3/384``, each into an empty index: end-to-end chunks/s (process start,
   loading, chunking, embedding, saving), and the cores each process kept busy.

    PYTHONPATH=$PWD .venv/bin/python bench/bench_index_throughput.py [--docs 200] [--rounds 5]

Prints a markdown table and writes bench/out/index_throughput.json. It leaves out quality
(SciFact nDCG@10 is ``ragkit eval``'s job; the numbers are in bench/RESULTS.md).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import random
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

from corpus import SCIFACT  # noqa: E402

V1_NAME = "minilm-l6-v2-int8/384"
V2_NAME = "minilm-l6-v2-int8/v2/384"
V3_NAME = "minilm-l6-v2-int8/v3/384"
# Issue 17's baseline: minilm.py before graph version 2.
BASELINE_REF = "8780ad2"
LABELS = ("baseline", "v2", "new")


def _order(r: int) -> list[int]:
    """Round r's order of the three contenders: each goes first, second and last in turn."""
    return [(r + i) % 3 for i in range(3)][:: 1 if r % 2 == 0 else -1]


def _load() -> str:
    with open("/proc/loadavg", encoding="ascii") as fh:
        return " ".join(fh.read().split()[:3])


def baseline_embedder(ref: str) -> tuple[Any, str]:
    """``MiniLMEmbedder`` from ``minilm.py`` at git ``ref``, or graph version 1 of this checkout."""
    from ragkit.embedders.minilm import MiniLMEmbedder

    try:
        source = subprocess.run(
            ["git", "show", f"{ref}:ragkit/embedders/minilm.py"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        return MiniLMEmbedder(version=1), "graph version 1 of this checkout"
    folder = Path(tempfile.mkdtemp(prefix="ragkit-baseline-"))
    path = folder / "_minilm_baseline.py"
    path.write_text(source, encoding="utf-8")
    # A module of the ragkit.embedders package, so that its relative imports resolve.
    spec = importlib.util.spec_from_file_location("ragkit.embedders._minilm_baseline", path)
    if spec is None or spec.loader is None:
        raise SystemExit(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    module._TOKENIZER = ROOT / "ragkit" / "embedders" / module._TOKENIZER.name  # beside the copy
    return module.MiniLMEmbedder(), f"minilm.py at {ref}"


def chunks(docs: list[dict[str, str]]) -> list[str]:
    """The texts an index embeds for these SciFact records and for docs/*.md."""
    from ragkit.chunking import chunk_text

    out = []
    for doc in docs:
        text = f"# {doc['title'].strip()}\n\n{doc['text']}"
        out += [c.text for c in chunk_text(text, document_id=doc["_id"])]
    for page in sorted((ROOT / "docs").glob("*.md")):
        out += [c.text for c in chunk_text(page.read_text(encoding="utf-8"), document_id=page.name)]
    return out


def in_process(texts: list[str], rounds: int, ref: str) -> dict[str, Any]:
    from ragkit.embedders.minilm import MiniLMEmbedder

    base, base_from = baseline_embedder(ref)
    new = MiniLMEmbedder(version=3)
    v1 = MiniLMEmbedder(version=1)
    v2 = MiniLMEmbedder(version=2)
    for emb in (base, new, v1, v2):
        emb.embed_documents(texts[:4])  # load and warm up
    rates: dict[str, list[float]] = {label: [] for label in LABELS}
    per_cpu_s: dict[str, list[float]] = {label: [] for label in LABELS}
    loads = [_load()]
    vectors: dict[str, np.ndarray] = {}
    for r in range(rounds):
        contenders = [("baseline", base), ("v2", v2), ("new", new)]
        for label, emb in (contenders[i] for i in _order(r)):
            started, cpu = time.perf_counter(), time.process_time()
            vectors[label] = emb.embed_documents(texts)
            rates[label].append(len(texts) / (time.perf_counter() - started))
            per_cpu_s[label].append(len(texts) / (time.process_time() - cpu))
        print(f"round {r}: " + " / ".join(f"{rates[k][-1]:.1f}" for k in LABELS) + " chunks/s",
              file=sys.stderr, flush=True)  # fmt: skip
    loads.append(_load())
    ratios = [n / b for n, b in zip(rates["new"], rates["baseline"], strict=True)]
    v2_ratios = [n / b for n, b in zip(rates["v2"], rates["baseline"], strict=True)]
    cosines = (vectors["new"] * vectors["baseline"]).sum(axis=1)
    sample = texts[:: max(1, len(texts) // 24)]
    alone = np.stack([new.embed_documents([t])[0] for t in sample])
    batched = new.embed_documents(sample)
    reversed_ = new.embed_documents(sample[::-1])[::-1]
    queries = np.stack([new.embed_query(t) for t in sample])
    return {
        "baseline_from": base_from,
        "texts": len(texts),
        "words_mean": round(float(np.mean([len(t.split()) for t in texts])), 1),
        "rounds": rounds,
        "chunks_per_s": {k: [round(x, 1) for x in v] for k, v in rates.items()},
        "median_chunks_per_s": {k: round(statistics.median(v), 1) for k, v in rates.items()},
        "ratio_of_medians": round(
            statistics.median(rates["new"]) / statistics.median(rates["baseline"]), 2
        ),
        "median_per_round_ratio": round(statistics.median(ratios), 2),
        "per_round_ratios": [round(x, 2) for x in ratios],
        "v2_median_per_round_ratio": round(statistics.median(v2_ratios), 2),
        # CPU seconds (all threads) per chunk: what a busy machine inflates least.
        "median_chunks_per_cpu_s": {
            k: round(statistics.median(v), 2) for k, v in per_cpu_s.items()
        },
        "cpu_ratio": round(
            statistics.median(per_cpu_s["new"]) / statistics.median(per_cpu_s["baseline"]), 2
        ),
        "v2_cpu_ratio": round(
            statistics.median(per_cpu_s["v2"]) / statistics.median(per_cpu_s["baseline"]), 2
        ),
        "baseline_equals_v1": bool(np.array_equal(vectors["baseline"], v1.embed_documents(texts))),
        "cosine_new_vs_baseline": {
            "min": round(float(cosines.min()), 4),
            "median": round(float(np.median(cosines)), 4),
        },
        "cosine_new_vs_v2_min": round(float((vectors["new"] * vectors["v2"]).sum(axis=1).min()), 4),
        "batch_independence_max_abs": float(
            max(
                np.abs(alone - batched).max(),
                np.abs(alone - reversed_).max(),
                np.abs(alone - queries).max(),
            )
        ),  # fmt: skip
        "loadavg": loads,
    }


def matmul_floor(texts: list[str], rounds: int = 3) -> dict[str, Any]:
    """CPU ms per chunk of the model's matmuls alone (item 3 of the module docstring)."""
    import onnx
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper
    from tokenizers import Tokenizer

    from ragkit.embedders import minilm

    tokenizer = Tokenizer.from_file(str(minilm._TOKENIZER))
    tokenizer.enable_truncation(minilm.MiniLMEmbedder.max_input_tokens)
    lengths = [len(enc.ids) for enc in tokenizer.encode_batch(texts)]
    hidden, ffn, heads, head = 384, 1536, 12, 32
    rng = np.random.default_rng(0)
    nodes, inits, outputs = [], [], []
    # Per layer: q, k and v (384 x 384, one quantised input between them), the attention
    # output (384 x 384), the FFN's up (384 x 1536) and down (1536 x 384) projections.
    shapes = [("x", "qkv", hidden, hidden)] * 3 + [
        ("x", "out", hidden, hidden),
        ("x", "up", hidden, ffn),
        ("h", "down", ffn, hidden),
    ]
    for layer in range(6):
        for i, (source, group, rows, cols) in enumerate(shapes):
            name, quantised = f"l{layer}m{i}", f"l{layer}{group}"
            if i == 0 or group != "qkv":
                outs = [quantised + "q", quantised + "s", quantised + "z"]
                nodes.append(helper.make_node("DynamicQuantizeLinear", [source], outs))
            weight = rng.integers(-127, 128, (rows, cols), dtype=np.int8)
            scale = np.full(cols, 1e-3, np.float32)
            inits += [
                numpy_helper.from_array(weight, name + "w"),
                numpy_helper.from_array(scale, name + "ws"),
            ]
            nodes += [
                helper.make_node(
                    "MatMulInteger", [quantised + "q", name + "w", quantised + "z"], [name + "a"]
                ),
                helper.make_node("Cast", [name + "a"], [name + "f"], to=TensorProto.FLOAT),
                helper.make_node("Mul", [quantised + "s", name + "ws"], [name + "sc"]),
                helper.make_node("Mul", [name + "f", name + "sc"], [name]),
            ]
            outputs.append(name)
        nodes += [helper.make_node("MatMul", ["q", "kt"], [f"l{layer}s"]),
                  helper.make_node("MatMul", ["p", "v"], [f"l{layer}o"])]  # fmt: skip
        outputs += [f"l{layer}s", f"l{layer}o"]
    dims = {"x": ["n", hidden], "h": ["n", ffn], "q": [heads, "n", head], "kt": [heads, head, "n"],
            "p": [heads, "n", "n"], "v": [heads, "n", head]}  # fmt: skip
    graph = helper.make_graph(
        nodes,
        "matmuls",
        [helper.make_tensor_value_info(k, TensorProto.FLOAT, d) for k, d in dims.items()],
        [helper.make_tensor_value_info(o, TensorProto.FLOAT, None) for o in outputs],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    options = ort.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = 1
    options.log_severity_level = 3
    session = ort.InferenceSession(
        onnx.shape_inference.infer_shapes(model).SerializeToString(), options,
        providers=["CPUExecutionProvider"],
    )  # fmt: skip
    feeds = {}
    for n in sorted(set(lengths)):
        arrays = {k: rng.standard_normal([n if d == "n" else d for d in shape]).astype(np.float32)
                  for k, shape in dims.items()}  # fmt: skip
        feeds[n] = {k: ort.OrtValue.ortvalue_from_numpy(a) for k, a in arrays.items()}
    session.run_with_ort_values(outputs, feeds[lengths[0]])  # warm up
    per_chunk = []
    for _ in range(rounds):
        cpu = time.process_time()
        for n in lengths:
            session.run_with_ort_values(outputs, feeds[n])
        per_chunk.append((time.process_time() - cpu) / len(lengths) * 1000)
    return {
        "tokens_mean": round(float(np.mean(lengths)), 1),
        "cpu_ms_per_chunk": round(min(per_chunk), 2),  # a floor: the best round
        "rounds": [round(x, 2) for x in per_chunk],
    }


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def end_to_end(docs: list[dict[str, str]], rounds: int) -> dict[str, Any]:
    work = Path(tempfile.mkdtemp(prefix="ragkit-index-bench-"))
    folder = work / "corpus"
    folder.mkdir()
    for doc in docs:
        (folder / f"{doc['_id']}.md").write_text(
            f"# {doc['title'].strip()}\n\n{doc['text']}\n", encoding="utf-8"
        )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    shim = "import sys; from ragkit.cli import main; main(sys.argv[1:])"
    rates: dict[str, list[float]] = {label: [] for label in LABELS}
    busy: dict[str, list[float]] = {label: [] for label in LABELS}  # CPU seconds per second
    loads = [_load()]
    try:
        for r in range(rounds):
            contenders = [
                ("baseline", ["--embedder", V1_NAME]),
                ("v2", ["--embedder", V2_NAME]),
                ("new", ["--embedder", V3_NAME]),
            ]
            for label, extra in (contenders[i] for i in _order(r)):
                index = work / f"index-{label}-{r}"
                cmd = [sys.executable, "-c", shim, "index", str(folder), "--index", str(index)]
                started, children = time.perf_counter(), _children_cpu()
                proc = subprocess.run(
                    cmd + extra + ["--json"], capture_output=True, text=True, env=env, check=False
                )
                wall = time.perf_counter() - started
                busy[label].append((_children_cpu() - children) / wall)
                if proc.returncode:
                    raise SystemExit(f"ragkit index failed:\n{proc.stderr[-2000:]}")
                report = json.loads(proc.stdout)
                rates[label].append(report["chunks_embedded"] / wall)
                shutil.rmtree(index, ignore_errors=True)
            print(f"index round {r}: " + " / ".join(f"{rates[k][-1]:.1f}" for k in LABELS),
                  file=sys.stderr, flush=True)  # fmt: skip
    finally:
        shutil.rmtree(work, ignore_errors=True)
    loads.append(_load())
    ratios = [n / b for n, b in zip(rates["new"], rates["baseline"], strict=True)]
    v2_ratios = [n / b for n, b in zip(rates["v2"], rates["baseline"], strict=True)]
    return {
        "documents": len(docs),
        "v2_median_per_round_ratio": round(statistics.median(v2_ratios), 2),
        "chunks_per_s": {k: [round(x, 1) for x in v] for k, v in rates.items()},
        "median_chunks_per_s": {k: round(statistics.median(v), 1) for k, v in rates.items()},
        "median_per_round_ratio": round(statistics.median(ratios), 2),
        # Cores kept busy on average (process CPU time over wall time; 2 = both cores).
        "median_cores_busy": {k: round(statistics.median(v), 2) for k, v in busy.items()},
        "loadavg": loads,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--docs", type=int, default=200, help="SciFact abstracts (seeded sample)")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--index-docs", type=int, default=150, help="files for `ragkit index`")
    ap.add_argument("--index-rounds", type=int, default=3)
    ap.add_argument(
        "--baseline-ref", default=BASELINE_REF, help="git ref of the baseline minilm.py"
    )
    args = ap.parse_args()

    with open(SCIFACT / "corpus.jsonl", encoding="utf-8") as fh:
        corpus = [json.loads(line) for line in fh]
    rng = random.Random(17)
    sample = rng.sample(corpus, args.docs)
    texts = chunks(sample)
    report = {
        "cpus": len(os.sched_getaffinity(0)),
        "embed_documents": in_process(texts, args.rounds, args.baseline_ref),
        "matmul_floor": matmul_floor(texts),
    }
    if args.index_rounds:
        report["ragkit_index"] = end_to_end(rng.sample(corpus, args.index_docs), args.index_rounds)
    out = HERE / "out" / "index_throughput.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(report, indent=1))
    emb = report["embed_documents"]
    print(f"{report['cpus']} cores; baseline: {emb['baseline_from']}; load {emb['loadavg']}")
    print("| path | baseline chunks/s | v2 chunks/s | new chunks/s | v2 ratio | new ratio |")
    print("|---|---:|---:|---:|---:|---:|")
    m = emb["median_chunks_per_s"]
    c = emb["median_chunks_per_cpu_s"]
    print(f"| embed_documents, {emb['texts']} chunks x {emb['rounds']} rounds "
          f"| {m['baseline']} | {m['v2']} | {m['new']} | {emb['v2_median_per_round_ratio']} "
          f"| {emb['median_per_round_ratio']} |")  # fmt: skip
    print(f"| embed_documents, chunks per CPU second | {c['baseline']} | {c['v2']} | {c['new']} "
          f"| {emb['v2_cpu_ratio']} | {emb['cpu_ratio']} |")  # fmt: skip
    if "ragkit_index" in report:
        e2e = report["ragkit_index"]
        m = e2e["median_chunks_per_s"]
        rounds = len(e2e["chunks_per_s"]["new"])
        print(f"| `ragkit index`, {e2e['documents']} files x {rounds} rounds "
              f"| {m['baseline']} | {m['v2']} | {m['new']} | {e2e['v2_median_per_round_ratio']} "
              f"| {e2e['median_per_round_ratio']} |")  # fmt: skip
        print("`ragkit index` cores busy (CPU s / wall s):", e2e["median_cores_busy"])
    floor = report["matmul_floor"]
    base_ms = 1000 / c["baseline"]
    bound = base_ms / floor["cpu_ms_per_chunk"]
    print(f"| matmuls alone (int8, fp32 attention): CPU ms per chunk | {base_ms:.2f} (baseline) "
          f"| | {floor['cpu_ms_per_chunk']} | | bound {bound:.2f} |")  # fmt: skip
    print("ratios: median of per-round ratios to the baseline; per round:", emb["per_round_ratios"])
    print(json.dumps({k: emb[k] for k in ("baseline_equals_v1", "cosine_new_vs_baseline",
                                          "cosine_new_vs_v2_min",
                                          "batch_independence_max_abs")}))  # fmt: skip


if __name__ == "__main__":
    main()
