"""ragkit as an MCP server: Claude Code, Claude Desktop and other MCP hosts search one index.

Tools (``ragkit mcp``, extra ``mcp``, the official ``mcp`` Python SDK):

- ``search``: query, ``k``, ``filter`` (a metadata filter mapping, see ``ragkit.filters``) and
  ``mode``; one text block per result headed by its chunk ID and source, plus the same results
  as structured output.
- ``list_documents``: document IDs with their path and title, a page at a time.
- ``get_chunk``: one chunk's text, document, heading path, metadata and neighbours.
- ``ask``: an answer from Claude citing chunk IDs (``ragkit.answer``); registered only when
  ``ANTHROPIC_API_KEY`` or ``ANTHROPIC_AUTH_TOKEN`` is set (or a client is passed to
  :func:`build_server`), the same rule as the library's.
- ``index``: index a folder into the open index; registered only with ``allow_index=True``.

MCP has no ``search_result`` content type (the Messages API's citable block), so each result is
a text block whose first lines carry the chunk ID and source, which a host's model can quote and
cite. The index is opened once and searched in memory; before each call the server reads the
index's saved version (``ragkit.stores.current_version``: a directory's ``CURRENT`` generation)
and reopens the index when ``ragkit index`` has saved a new one. A Postgres index is always
current. With ``watch=FOLDER`` the server runs :func:`ragkit.watch.watch_folder` in a thread
on the index it serves, and is then that index's writer. A bad argument comes back as a tool
error (``isError``) naming the problem; the server keeps running. Over stdio, a line that is not
a valid JSON-RPC message is answered with a JSON-RPC error (``ragkit.mcp_stdio``).

The result shapes and the text blocks are ``ragkit.mcp_results``. This module leaves out
retrieval and answering (``ragkit.index``, ``ragkit.answering``), the
protocol and its transports (the ``mcp`` SDK) and authentication: streamable HTTP binds to
127.0.0.1 only.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal, TypeVar

from .base import Query
from .errors import MissingDependencyError, RagkitError
from .index import Index, open_index
from .ingest import source_for, sync
from .mcp_results import (
    AnswerOutput,
    ChunkOutput,
    CitationOutput,
    DocumentsOutput,
    IndexOutput,
    SearchOutput,
    _document_info,
    _hit,
    _hit_text,
    _jsonable,
    _neighbour,
    _title,
    _tool_error,
    source_of,
)
from .plan import DEFAULT_MODEL, AnswerOptions, has_credentials
from .stores import current_version, redact

try:
    from mcp.server.mcpserver import MCPServer
    from mcp.server.mcpserver.exceptions import ToolError
    from mcp.types import CallToolResult, TextContent, ToolAnnotations
    from pydantic import Field
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise MissingDependencyError(
        "the MCP server needs the 'mcp' extra: pip install 'ragkit-claude[mcp]'"
    ) from exc

if TYPE_CHECKING:
    import anthropic

__all__ = ["MAX_K", "MAX_PAGE", "IndexHolder", "build_server", "serve"]

logger = logging.getLogger("ragkit")

MAX_K = 50
"""The most results one ``search`` call returns."""

MAX_PAGE = 500
"""The most documents one ``list_documents`` call returns."""

T = TypeVar("T")

INSTRUCTIONS = (
    "Searches the user's own documents indexed by ragkit. Each search result starts with its "
    "chunk id (like 'guide/install.md#3') and its source; quote the text you use and cite the "
    "chunk id. get_chunk reads a chunk in full and names its neighbours; list_documents shows "
    "what is indexed."
)


# -- the open index ----------------------------------------------------------------------------


class IndexHolder:
    """The index a server searches, reopened when ``ragkit index`` saves a new generation.

    Args:
        location: the index directory or ``postgresql://`` URL.
        index: an index already open at ``location`` (default: opened here).
        follow_disk: reopen when the saved version changes (``ragkit.stores.current_version``);
            ``False`` when this process is the index's only writer (watch mode).

    Raises:
        IndexFormatError: no index at ``location``, or a damaged one.
        SettingsMismatchError: the index's embedder is not available here.
    """

    def __init__(
        self, location: str | Path, *, index: Index | None = None, follow_disk: bool = True
    ) -> None:
        self.location = str(location)
        self._follow = follow_disk
        self._lock = threading.Lock()
        self._write_lock = threading.Lock()
        self._seen = self._read_pointer()
        self._index: Index | None = index if index is not None else Index.load(self.location)
        self.error: str | None = None

    @classmethod
    def unavailable(cls, location: str | Path, error: RagkitError) -> IndexHolder:
        """A holder for an index that could not be opened: every call answers with ``error``
        (what is wrong and what to do) until the index can be opened, e.g. once
        ``ragkit index`` has built it; then it is served."""
        holder = cls.__new__(cls)
        holder.location = str(location)
        holder._follow = True
        holder._lock = threading.Lock()
        holder._write_lock = threading.Lock()
        holder._seen = None
        holder._index = None
        holder.error = (
            f"the index at {redact(holder.location)} cannot be opened: {error}. Build it with "
            f"`ragkit index DIR --index {redact(holder.location)}`, or fix --index; the server "
            "picks it up without a restart"
        )
        return holder

    def _read_pointer(self) -> str | None:
        """The saved version at the location (``None``: always current, or not followed)."""
        return current_version(self.location) if self._follow else None

    def get(self) -> Index:
        """The index, reopened first when a new generation was saved since the last call.

        Raises:
            ToolError: the index could not be opened (see :meth:`unavailable`), with why.
        """
        with self._lock:
            if self._index is None:
                try:
                    self._index = Index.load(self.location)
                except RagkitError as exc:
                    raise ToolError(self.error or str(exc)) from exc
                logger.info("index at %s opened", redact(self.location))
                self._seen = self._read_pointer()
                self.error = None
                return self._index
            pointer = self._read_pointer()
            if pointer is not None and pointer != self._seen:
                try:
                    fresh = Index.load(self.location, embedder=self._index.embedder)
                except RagkitError as exc:
                    logger.warning("keeping the open index: reopening it failed: %s", exc)
                else:
                    logger.info("index at %s changed on disk: reopened", self.location)
                    self._index = fresh
                    self._seen = pointer
            return self._index

    def write(self, change: Callable[[Index], T]) -> T:
        """Run ``change`` on the index (one writer at a time), save it, and keep serving it."""
        with self._write_lock:
            index = self.get()
            result = change(index)
            index.save(self.location)
            with self._lock:
                self._seen = self._read_pointer()
            return result


# -- the server --------------------------------------------------------------------------------


class _Server(MCPServer[Any]):
    """The SDK's ``MCPServer`` whose stdio transport answers lines that are not valid JSON-RPC
    messages with a JSON-RPC error instead of dropping them (``ragkit.mcp_stdio``)."""

    async def run_stdio_async(self) -> None:
        """Run the server on stdio, as the SDK does, through :func:`serve_stdio`."""
        from .mcp_stdio import serve_stdio

        lowlevel = self._lowlevel_server

        async def run(read_stream: Any, write_stream: Any) -> None:
            await lowlevel.run(read_stream, write_stream, lowlevel.create_initialization_options())

        await serve_stdio(run)


_READ_ONLY = ToolAnnotations(read_only_hint=True, idempotent_hint=True, open_world_hint=False)


def build_server(
    holder: IndexHolder,
    *,
    allow_index: bool = False,
    client: anthropic.Anthropic | None = None,
    model: str | None = None,
) -> MCPServer[Any]:
    """An MCP server over the index in ``holder`` (not yet running; see :func:`serve`).

    Args:
        holder: the index to serve.
        allow_index: register the ``index`` tool, which writes to the index.
        client: the ``anthropic.Anthropic`` the ``ask`` tool uses; without it ``ask`` is
            registered only when ``ANTHROPIC_API_KEY`` or ``ANTHROPIC_AUTH_TOKEN`` is set.
        model: the Claude model for ``ask`` (default: ``$RAGKIT_MODEL`` or
            ``claude-haiku-4-5``).
    """
    from . import __version__

    server: MCPServer[Any] = _Server(
        "ragkit", instructions=INSTRUCTIONS, version=__version__, log_level="WARNING"
    )

    @server.tool(annotations=_READ_ONLY)
    def search(
        query: Annotated[str, Field(min_length=1, description="What to look for.")],
        k: Annotated[int, Field(ge=1, le=MAX_K, description="How many chunks.")] = 5,
        filter: Annotated[
            dict[str, Any] | None,
            Field(
                description='Metadata filter, e.g. {"path": {"$glob": "docs/api/**"}} or '
                '{"year": {"$gte": 2020}}; operators $eq $ne $gt $gte $lt $lte $in $nin '
                "$exists $glob $and $or $not."
            ),
        ] = None,
        mode: Annotated[
            Literal["hybrid", "bm25", "vector"] | None,
            Field(description="Default: hybrid when the index has vectors, else bm25."),
        ] = None,
    ) -> Annotated[CallToolResult, SearchOutput]:
        """Search the indexed documents; each result carries its chunk id and source."""
        index = holder.get()
        try:
            hits = index.search(query, k, where=filter, mode=mode)
        except (ValueError, TypeError, RagkitError) as exc:
            raise _tool_error(exc) from exc
        results = [_hit(rank, sc) for rank, sc in enumerate(hits, start=1)]
        used = mode or ("hybrid" if index.has_vectors else "bm25")
        content = [TextContent(type="text", text=_hit_text(h)) for h in results] or [
            TextContent(type="text", text=f"No chunks match {query!r}.")
        ]
        output: SearchOutput = {"query": query, "mode": used, "results": results}
        return CallToolResult(content=list(content), structured_content=dict(output))

    @server.tool(annotations=_READ_ONLY)
    def list_documents(
        offset: Annotated[int, Field(ge=0, description="Skip this many documents.")] = 0,
        limit: Annotated[int, Field(ge=1, le=MAX_PAGE, description="Page size.")] = 100,
    ) -> DocumentsOutput:
        """The indexed documents (id, path, title, metadata), sorted by id, a page at a time."""
        index = holder.get()
        ids = index.document_ids
        page = ids[offset : offset + limit]
        following = offset + len(page)
        return {
            "total": len(ids),
            "offset": offset,
            "next_offset": following if following < len(ids) else None,
            "documents": [_document_info(index, doc_id) for doc_id in page],
        }

    @server.tool(annotations=_READ_ONLY)
    def get_chunk(
        chunk_id: Annotated[
            str, Field(min_length=1, description="A chunk id from search, like 'guide.md#3'.")
        ],
    ) -> ChunkOutput:
        """One chunk in full: text, document, section headings, metadata and neighbours."""
        index = holder.get()
        try:
            chunk = index.chunk(chunk_id)
        except KeyError as exc:
            raise ToolError(
                f"no chunk {chunk_id!r} in this index; use a chunk id from search results "
                "(document id, '#', position)"
            ) from exc
        return {
            "chunk_id": chunk.id,
            "document_id": chunk.document_id,
            "source": source_of(chunk),
            "title": _title(chunk.metadata),
            "headings": list(chunk.headings),
            "start": chunk.start,
            "end": chunk.end,
            "text": chunk.text,
            "metadata": _jsonable(chunk.metadata),
            "previous_chunk_id": _neighbour(index, chunk, -1),
            "next_chunk_id": _neighbour(index, chunk, 1),
        }

    if client is not None or has_credentials():
        options = AnswerOptions(model=model or os.environ.get("RAGKIT_MODEL") or DEFAULT_MODEL)

        @server.tool(annotations=ToolAnnotations(read_only_hint=True, open_world_hint=True))
        def ask(
            question: Annotated[str, Field(min_length=1, description="The question.")],
            k: Annotated[int, Field(ge=1, le=MAX_K, description="Chunks to retrieve.")] = 5,
        ) -> Annotated[CallToolResult, AnswerOutput]:
            """Answer from the indexed documents with Claude, citing chunk ids (costs tokens)."""
            from .answering import answer

            index = holder.get()
            try:
                result = answer(Query(question, k), index, options, client=client)
            except (ValueError, TypeError, RagkitError) as exc:
                raise _tool_error(exc) from exc
            sources = {sc.chunk.id: source_of(sc.chunk) for sc in result.chunks}
            citations: list[CitationOutput] = [
                {
                    "chunk_id": c.chunk_id,
                    "source": sources.get(c.chunk_id, c.chunk_id.rpartition("#")[0]),
                    "cited_text": c.cited_text,
                }
                for c in result.citations
            ]
            text = result.text
            if citations:
                text += "\n\nSources:\n" + "\n".join(
                    f"- chunk {c['chunk_id']} ({c['source']}): {c['cited_text']}" for c in citations
                )
            elif result.strategy != "none":  # the gate's own text already says why
                # The host's model reads this text, not the structured flags: an answer that
                # cites nothing it was sent is not to be passed on as supported.
                text = (text + "\n\n" if text.strip() else "") + (
                    "(No retrieved chunk was cited: treat this as not supported by the documents.)"
                )
            if not result.complete:
                text += (
                    f"\n\n(The answer was cut off, stop reason {result.stop_reason}: it is "
                    "incomplete.)"
                )
            output: AnswerOutput = {
                "answer": result.text,
                "complete": result.complete,
                "abstained": result.abstained,
                "model": result.model,
                "citations": citations,
                "cost_usd": result.usage.cost_usd,
            }
            return CallToolResult(
                content=[TextContent(type="text", text=text)], structured_content=dict(output)
            )

    if allow_index:

        @server.tool(
            annotations=ToolAnnotations(
                read_only_hint=False, destructive_hint=True, idempotent_hint=True
            )
        )
        def index(
            folder: Annotated[str, Field(min_length=1, description="A folder on this machine.")],
            remove_missing: Annotated[
                bool,
                Field(description="Also remove indexed documents that are not in this folder."),
            ] = False,
            replace_source: Annotated[
                bool,
                Field(
                    description="With remove_missing: confirm removing documents that this "
                    "folder leaves out although their files still exist (another folder than "
                    "the index was built from). Without it such a call changes nothing and "
                    "lists them."
                ),
            ] = False,
        ) -> IndexOutput:
            """Index a folder's files into the open index (changed files only); then save it.

            The folder is read with the options the index recorded (include and exclude
            globs, hidden files), as `ragkit index` and `--watch` read it."""
            root = Path(folder).expanduser()
            if not root.is_dir():
                raise ToolError(f"{folder!r} is not a directory on the server's machine")

            def change(idx: Index) -> IndexOutput:
                source = source_for(idx, root)
                if remove_missing:
                    done = sync(idx, source, replace_source=replace_source)
                    update, loaded = done.update, done.loaded
                else:
                    loaded = source.load()
                    update = idx.add(loaded.documents)
                stats = idx.store.stats()
                return {
                    "documents": stats.documents,
                    "chunks": stats.chunks,
                    "added": list(update.added),
                    "replaced": list(update.replaced),
                    "removed": list(update.removed),
                    "unchanged": len(update.unchanged),
                    "skipped": [{"path": s.path, "reason": s.reason} for s in loaded.skipped],
                }

            try:
                return holder.write(change)
            except (ValueError, TypeError, OSError, RagkitError) as exc:
                raise _tool_error(exc) from exc

    return server


def _check_port(port: int) -> None:
    """Refuse a port that cannot be bound before announcing the server: uvicorn would log the
    error and end the process with status 3, after "serving ..." was already printed."""
    import socket

    from .errors import PortInUseError

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds
        try:
            probe.bind(("127.0.0.1", port))
        except OSError as exc:
            raise PortInUseError(
                f"cannot serve on 127.0.0.1:{port} ({exc.strerror or exc}); pick another port "
                "with --port"
            ) from exc


def serve(
    location: str | Path,
    *,
    http: bool = False,
    port: int = 8000,
    allow_index: bool = False,
    watch: str | Path | None = None,
    on_ready: Callable[[str], None] | None = None,
) -> None:
    """Serve the index at ``location`` over stdio (default) or streamable HTTP on 127.0.0.1.

    Args:
        location: the index directory or ``postgresql://`` URL.
        http: serve streamable HTTP at ``http://127.0.0.1:PORT/mcp`` instead of stdio.
        port: the HTTP port.
        allow_index: register the ``index`` tool.
        watch: a folder to keep the index in line with while serving (a new index is built
            there when none exists yet).
        on_ready: called with a one-line description once the index is open.

    An index that cannot be opened (missing, damaged, an embedder not installed) does not stop
    the server: the reason is logged on stderr and every tool call answers with it, until the
    index can be opened.

    Raises:
        RagkitError: ``watch`` is not a directory.
    """
    if isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536:
        raise ValueError(f"port ({port!r}) must be an integer from 1 to 65535")
    stop = threading.Event()
    thread: threading.Thread | None = None
    if watch is not None:
        from .watch import _watchfiles, watch_folder

        _watchfiles()
        if not Path(watch).is_dir():
            raise RagkitError(f"cannot watch {watch}: it is not a directory")
        holder = IndexHolder(location, index=open_index(location), follow_disk=False)

        def run_watch() -> None:
            try:
                watch_folder(watch, location, index=holder.get(), stop_event=stop)
            except RagkitError as exc:
                logger.error("watch stopped: %s", exc)

        thread = threading.Thread(target=run_watch, name="ragkit-watch", daemon=True)
        thread.start()
    else:
        try:
            holder = IndexHolder(location)
        except RagkitError as exc:
            # An MCP host shows a server that exits as "failed to connect", with no reason:
            # serve, say why on stderr, and answer every tool call with it.
            holder = IndexHolder.unavailable(location, exc)
            logger.error("%s", holder.error)
    server = build_server(holder, allow_index=allow_index)
    if http:
        _check_port(port)
    if on_ready is not None:
        where = f"http://127.0.0.1:{port}/mcp" if http else "stdio"
        on_ready(f"serving {redact(str(location))} over {where}")
    try:
        if http:
            server.run("streamable-http", host="127.0.0.1", port=port)
        else:
            server.run("stdio")
    finally:
        stop.set()
        if thread is not None:
            thread.join(timeout=5)
