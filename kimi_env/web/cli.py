"""``kimi-env corpus import`` and ``kimi-env serve``: register with :func:`register` on an argparse subparsers object.

Each command sets ``func`` (``args.func(args) -> int`` exit code).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

__all__ = ["register"]


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``corpus`` (with ``import``) and ``serve`` commands."""
    corpus = subparsers.add_parser("corpus", help="build and inspect offline-web corpora")
    corpus_sub = corpus.add_subparsers(dest="corpus_command", metavar="{import,info}")
    corpus_sub.required = True

    imp = corpus_sub.add_parser(
        "import", help="build a corpus from a JSONL file (url, title, text|html per line) or a folder of HTML pages"
    )
    imp.add_argument("path", metavar="PATH", help="a .jsonl file or a directory of saved .html pages")
    imp.add_argument("--out", required=True, metavar="DIR", help="corpus directory to write")
    imp.add_argument("--name", default=None, help="corpus name for the manifest (default: DIR's name)")
    imp.add_argument(
        "--base-url",
        default=None,
        help="URL prefix for HTML pages that declare no URL (default: https://offline.invalid/ + the file's path)",
    )
    imp.add_argument("--overwrite", action="store_true", help="replace an existing corpus at DIR")
    imp.add_argument(
        "--on-duplicate", choices=("error", "first", "last"), default="error", help="what to do with repeated URLs"
    )
    imp.add_argument(
        "--max-page-mb", type=float, default=None, metavar="MB",
        help="refuse pages bigger than this (default 10 MB of HTML or text per page)",
    )
    imp.add_argument("--index", action="store_true", help="also build the search index now")
    imp.set_defaults(func=_cmd_import)

    info = corpus_sub.add_parser("info", help="print a corpus manifest")
    info.add_argument("dir", metavar="DIR")
    info.set_defaults(func=_cmd_info)

    serve = subparsers.add_parser(
        "serve",
        help="serve a corpus over HTTP: a search page and browsable pages for people, /raw and /search for programs",
    )
    serve.add_argument("--corpus", required=True, metavar="DIR", help="corpus directory")
    serve.add_argument("--port", type=int, default=8080, help="port (0 picks a free one)")
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default loopback)")
    serve.add_argument(
        "--allow-host", action="append", default=[], metavar="NAME",
        help="also answer requests whose Host header is NAME (repeatable; default: only the bound address, and "
        "localhost on loopback; other names get 421, which stops DNS rebinding)",
    )
    serve.add_argument(
        "--max-connections", type=int, default=None, metavar="N",
        help="open connections at most (default: half the descriptor limit, at most 1024)",
    )
    serve.add_argument(
        "--idle-timeout", type=float, default=30.0, metavar="S",
        help="close a connection that sends no complete request for S seconds (default 30)",
    )
    serve.set_defaults(func=_cmd_serve)


def _cmd_import(args: argparse.Namespace) -> int:
    from .corpus import Corpus  # noqa: PLC0415
    from .importers import import_path  # noqa: PLC0415

    from .corpus import _is_our_corpus  # noqa: PLC0415

    out = Path(args.out).expanduser()
    if not args.overwrite and not out.is_symlink() and (out / "manifest.json").is_file() and _is_our_corpus(out)[0]:
        # before the import starts; a folder that is not our corpus is refused by Corpus.build (even with --overwrite)
        from ..cli import UsageError  # noqa: PLC0415

        raise UsageError(
            f"{args.out} already holds a corpus. Fix: add --overwrite to replace it, or choose another --out."
        )
    start = time.perf_counter()
    skipped = _SkipReport()
    cap = None if args.max_page_mb is None else int(args.max_page_mb * 1_000_000)
    report: dict = {}
    try:
        corpus = Corpus.build(
            import_path(args.path, base_url=args.base_url, report=report, on_skip=skipped, max_document_bytes=cap),
            args.out,
            name=args.name,
            overwrite=args.overwrite,
            on_duplicate=args.on_duplicate,
            source=args.path,
            max_document_bytes=cap,
        )
    except OSError as exc:  # errors of ours (CorpusError, ...) are printed by kimi_env.cli.main
        print(f"kimi-env: error: {exc}", file=sys.stderr)
        return 2
    print(
        f"Wrote {len(corpus)} document{'' if len(corpus) == 1 else 's'} to {corpus.path} "
        f"(content hash {corpus.content_hash[:16]}) "
        f"in {time.perf_counter() - start:.1f} s."
    )
    skipped.summary()
    if report.get("derived"):
        how = "given with --base-url" if args.base_url else "the placeholder host; pass --base-url for real URLs"
        print(
            f"{report['derived']} of {report['files']} pages declare no URL "
            f"(<link rel=canonical>, <base href>, og:url): their URLs are their file paths under "
            f"{report['base_url']} ({how})."
        )
    if args.index:
        from .index import BM25Index  # noqa: PLC0415

        index = BM25Index.load_or_build(corpus)
        print(f"Search index at {index.path} ({index.size_bytes() / 1e6:.1f} MB).")
    return 0


class _SkipReport:
    """``on_skip`` of the importers: one stderr line per skipped file (the first 20), then a count on stdout."""

    SHOWN = 20

    def __init__(self) -> None:
        self.count = 0

    def __call__(self, file: object, reason: str) -> None:
        self.count += 1
        if self.count <= self.SHOWN:
            print(f"skipped {file}: {reason}", file=sys.stderr)  # stderr escapes undecodable names

    def summary(self) -> None:
        if self.count:
            more = f" ({self.count - self.SHOWN} not listed)" if self.count > self.SHOWN else ""
            print(f"Skipped {self.count} file(s) that link outside the imported folder or dangle{more}; see stderr.")


def _cmd_info(args: argparse.Namespace) -> int:
    import json  # noqa: PLC0415

    from .corpus import Corpus  # noqa: PLC0415

    print(json.dumps(Corpus.open(args.dir).manifest, indent=2))
    return 0


def _cmd_serve(args: argparse.Namespace) -> int:
    from .corpus import Corpus  # noqa: PLC0415
    from .server import ServerLimits, serve  # noqa: PLC0415

    corpus = Corpus.open(args.corpus)
    limits = ServerLimits(idle_timeout=args.idle_timeout, max_connections=args.max_connections)
    try:
        serve(corpus, host=args.host, port=args.port, limits=limits, allowed_hosts=args.allow_host)
    except OSError as exc:
        print(f"kimi-env: error: cannot listen on {args.host}:{args.port} ({exc}). Fix: choose another --port.",
              file=sys.stderr)
        return 2
    return 0
