"""python -m indexing build | search | stats

python -m indexing build --corpus data/corpus --index data/index
python -m indexing search "how do I redirect stderr to a file" -k 5 --json
python -m indexing search --queries questions.txt --json     # one JSON line per query
python -m indexing stats
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from core.config import add_settings_args, settings_from_args, settings_in
from core.errors import BookwormError


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m indexing", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)

    build = sub.add_parser("build", help="index the PDFs of a folder (incremental)")
    add_settings_args(build, *settings_in("indexing"))
    build.add_argument("--no-progress", action="store_true", help="no progress bars")

    search = sub.add_parser("search", help="dense search over the index")
    search.add_argument("query", nargs="?", help="the question")
    search.add_argument("-k", type=int, default=5, help="hits per query (default: 5)")
    search.add_argument("--queries", help="file with one query per line; prints one JSON line per query")
    search.add_argument("--json", action="store_true", help="JSON output")
    add_settings_args(search, "index_dir", "embedder", "embed_batch_size")

    stats = sub.add_parser("stats", help="what the index holds and how it was built")
    stats.add_argument("--json", action="store_true", help="print the manifest as JSON")
    add_settings_args(stats, "index_dir")
    return parser


def cmd_build(args: argparse.Namespace) -> int:
    from indexing.build import build_index

    s = settings_from_args(args)
    report = build_index(
        s.corpus_dir,
        s.index_dir,
        embedder=s.embedder,
        embed_backend=s.embed_backend,
        extractor=s.extractor,
        workers=s.workers,
        chunk_tokens=s.chunk_tokens,
        chunk_overlap=s.chunk_overlap,
        batch_size=s.embed_batch_size,
        approx_threshold=s.approx_threshold,
        progress=not args.no_progress,
    )
    print(report.summary())
    return 0 if report.indexed else 1


def cmd_search(args: argparse.Namespace) -> int:
    from indexing.embed import encoder_for_index
    from indexing.search import search_many
    from indexing.store import Store

    s = settings_from_args(args)
    if (args.query is None) == (args.queries is None):
        raise BookwormError("give either a query or --queries FILE")
    if args.queries:
        try:
            with open(args.queries, encoding="utf-8") as f:
                queries = [line.strip() for line in f if line.strip()]
        except (OSError, UnicodeDecodeError) as e:
            reason = e.strerror if isinstance(e, OSError) and e.strerror else str(e)
            raise BookwormError(f"cannot read --queries {args.queries}: {reason}") from e
    else:
        queries = [args.query]
    store = Store.load(s.index_dir, embedder=s.embedder)
    embedder = encoder_for_index(store.manifest)
    results = search_many(store, embedder, queries, args.k)
    for query, hits in zip(queries, results, strict=True):
        if args.json:
            print(json.dumps([h.as_json() for h in hits], ensure_ascii=False))
            continue
        print(f"# {query}")
        for h in hits:
            pages = f"p. {h.chunk.page_start}" + (
                f"-{h.chunk.page_end}" if h.chunk.page_end != h.chunk.page_start else ""
            )
            print(f"{h.rank}. {h.score:.3f}  {h.chunk.file} {pages}  {h.chunk.text[:160]}")
    return 0


def cmd_stats(args: argparse.Namespace) -> int:
    from core.layout import IndexFiles
    from indexing.store import Store, chunks_sha256

    s = settings_from_args(args)
    store = Store.load(s.index_dir)
    m = store.manifest
    if args.json:
        print(json.dumps(m, indent=2, ensure_ascii=False))
        return 0
    c = m["counts"]
    print(f"Index: {s.index_dir} ({m['index_type']}, built {m['built_at']} in {m['build_seconds']} s)")
    e = m["embedder"]
    print(f"Embedder: {e['name']} (dim {e['dim']}, at most {e['max_tokens']} tokens per chunk)")
    print(f"Chunking: {json.dumps(m['chunking'])}")
    print(f"Files: {c['files']} indexed, {c['skipped']} skipped; pages {c['pages']}; chunks {c['chunks']}")
    for rel, e in m["files"].items():
        detail = f"{e['pages']} pages, {e['chunks']} chunks" if e["status"] == "indexed" else e["reason"]
        print(f"  {e['status']:8} {rel}: {detail}")
    print(f"{IndexFiles.CHUNKS} sha256: {chunks_sha256(s.index_dir)}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return {"build": cmd_build, "search": cmd_search, "stats": cmd_stats}[args.command](args)
    except BookwormError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; the previous index (if any) is unchanged", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
