"""Build a linked corpus from raw text: tokenise, segment into units, link entities.

``build_linked_corpus`` reads texts (``.txt`` one per line, ``.jsonl`` with a text
field, ``.tsv`` with a header naming a ``text``/``text_a`` column; any of them
gzip/bz2-compressed), learns collocation phrases over them when asked, and then
processes chunks of texts in worker processes (each with its own tokenizer, unit
segmenter and entity linker). Results are written in order as a
:class:`~kept.data.examples.LinkedCorpus`.

The output records a cache key (hash of the input file, vocabulary, store and
options): building again with the same inputs returns at once, so a second run
does not redo the work.
"""

from __future__ import annotations

import csv
import hashlib
import json
import multiprocessing as mp
import shutil
import sys
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

from tqdm.auto import tqdm

from kept.data.examples import LinkedCorpus, LinkedExample, write_corpus
from kept.kg.outputs import check_output, is_kept_dir, prepare_output, publish
from kept.kg.sources.errors import BadLines, SourceError
from kept.kg.sources.inputs import InputFile, strip_compression

TEXT_COLUMNS = ("text", "text_a", "sentence", "content")


@dataclass(frozen=True)
class CorpusOptions:
    """How texts become linked examples.

    lang: "en" (wordpiece words, default) or "zh" (jieba words, Chinese linking rules).
    max_tokens: wordpieces kept per text (default 510: a BERT sequence with [CLS]/[SEP]).
    phrases: "learn" (default: NPMI collocations learned from this corpus), a saved
        phrase table (JSON), or None for no phrase units.
    min_phrase_count: least occurrences of a learned phrase (default 5).
    text_field: JSONL field or TSV column of the text (default: "text", or the first of
        text/text_a/sentence/content in a TSV header).
    link_threshold: lowest linker score kept (default 0.0).
    jieba_boundaries: link Chinese names only on jieba word boundaries (default False).
    chunk_size: texts per work item of a worker (default 256).
    """

    lang: str = "en"
    max_tokens: int = 510
    phrases: str | None = "learn"
    min_phrase_count: int = 5
    text_field: str | None = None
    link_threshold: float = 0.0
    jieba_boundaries: bool = False
    chunk_size: int = 256


def read_texts(path: str | Path, field_name: str | None = None) -> Iterator[str]:
    """Texts of a corpus file: ``.txt`` lines, ``.jsonl`` objects or ``.tsv`` rows (see module doc)."""
    path = Path(path)
    name = strip_compression(path).lower()
    bad = BadLines()
    with InputFile(path) as f:
        if name.endswith(".jsonl"):
            key = field_name or "text"
            for line in f.text_lines(bad):
                if not line.strip():
                    continue
                try:
                    yield json.loads(line)[key]
                except (ValueError, KeyError, TypeError) as exc:
                    raise SourceError(path, f.lineno, f"expected a JSON object with a {key!r} field ({exc})") from None
        elif name.endswith(".tsv"):
            lines = f.text_lines(bad)
            header = next(lines).split("\t")
            names = [field_name] if field_name else TEXT_COLUMNS
            column = next((header.index(c) for c in names if c in header), None)
            if column is None:
                raise SourceError(path, 1, f"no text column in the header {header}; give the column name")
            for row in csv.reader(lines, delimiter="\t", quoting=csv.QUOTE_NONE):
                if len(row) > column and row[column].strip():
                    yield row[column]
        else:
            for line in f.text_lines(bad):
                if line.strip():
                    yield line


def _sha256(path: Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def cache_key(input_path: Path, vocab: Path, store: Path | None, options: CorpusOptions) -> str:
    """Hash of everything the built corpus depends on."""
    from kept.data.tokenizer import vocab_is_uncased

    payload = {"input": _sha256(input_path), "vocab": _sha256(vocab), "uncased": vocab_is_uncased(vocab),
               "options": asdict(options),
               "store": json.loads((store / "meta.json").read_text()) if store else None}
    return hashlib.sha256(json.dumps(payload, sort_keys=True, ensure_ascii=False).encode()).hexdigest()[:20]


# ---- worker side -----------------------------------------------------------------------------
_WORKER: dict = {}


def _init_worker(vocab: str, store: str | None, options: CorpusOptions, phrases: str | None) -> None:
    from kept.data.tokenizer import load_tokenizer
    from kept.masking.units import UnitSegmenter

    tokenizer = load_tokenizer(vocab)
    _WORKER["segmenter"] = UnitSegmenter(tokenizer, lang=options.lang, phrases=phrases,
                                         max_tokens=options.max_tokens)
    _WORKER["linker"] = None
    if store is not None:
        from kept.kg.linking.linker import EntityLinker, LinkerConfig

        config = LinkerConfig(language=options.lang, threshold=options.link_threshold,
                              jieba_boundaries=options.jieba_boundaries)
        _WORKER["linker"] = EntityLinker.from_store(store, config)


def _process(texts: list[str]) -> list[LinkedExample]:
    """Tokenise, segment and link one chunk of texts (in a worker)."""
    from kept.data.linked import attach_entities

    examples = _WORKER["segmenter"](texts)
    linker = _WORKER["linker"]
    if linker is None:
        return examples
    return [attach_entities(ex, *links) for ex, links in zip(examples, linker.link_batch(texts))]


def _chunks(texts: Iterator[str], size: int) -> Iterator[list[str]]:
    chunk: list[str] = []
    for text in texts:
        chunk.append(text)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def build_linked_corpus(input_path: str | Path, out: str | Path, vocab: str | Path, store: str | Path | None = None,
                        options: CorpusOptions | None = None, workers: int | None = None,
                        progress: bool = True, overwrite: bool = False) -> LinkedCorpus:
    """Build (or reuse) the linked corpus of ``input_path`` at ``out``.

    vocab: BERT ``vocab.txt``. store: KG store to link entities against (None: no entities).
    workers: worker processes (default: all cores; 0 runs in this process).
    overwrite: replace an existing linked corpus built from other inputs (never anything else:
        a folder that is not a linked corpus, or that holds an input, is an error).
    Returns the opened corpus. Built atomically; an up-to-date corpus at ``out`` is reused.
    :raises FileExistsError: ``out`` exists (and is not up to date) without ``overwrite``.
    :raises OutputError: ``out`` is not a linked corpus, holds an input, or cannot be written.
    """
    options = options or CorpusOptions()
    input_path, out, vocab = Path(input_path), Path(out), Path(vocab)
    store = Path(store) if store is not None else None
    key = cache_key(input_path, vocab, store, options)
    if is_linked_corpus(out) and json.loads((out / "meta.json").read_text()).get("cache_key") == key:
        print(f"{out}: reused (built before from the same input, vocabulary, store and options)", file=sys.stderr)
        return LinkedCorpus(out)
    inputs = [input_path, vocab, *([store] if store else [])]
    check_output(out, overwrite=overwrite, is_ours=is_linked_corpus, what="linked corpus", inputs=inputs)
    phrases = options.phrases
    if phrases == "learn":
        from kept.masking.phrases import learn_phrases

        texts = tqdm(read_texts(input_path, options.text_field), desc="learning phrases", unit=" texts",
                     disable=not progress or None, mininterval=0.5)
        table = learn_phrases(texts, min_count=options.min_phrase_count, lang=options.lang)
        texts.close()
    tmp = prepare_output(out, overwrite=overwrite, is_ours=is_linked_corpus, what="linked corpus", inputs=inputs)
    try:
        if options.phrases == "learn":
            phrases = str(tmp / "phrases.json")
            table.save(phrases)
        workers = mp.cpu_count() if workers is None else workers
        init_args = (str(vocab), str(store) if store else None, options, phrases)
        chunks = _chunks(read_texts(input_path, options.text_field), options.chunk_size)
        if progress:  # the workers' start (each loads the tokenizer and the store's linker) takes seconds
            print(f"{'linking' if store else 'segmenting'} {input_path} with {workers or 'no'} worker process"
                  f"{'' if workers == 1 else 'es'}{f' against {store}' if store else ''}", file=sys.stderr, flush=True)
        bar = tqdm(desc="linking" if store else "segmenting", unit=" texts", disable=not progress or None,
                   mininterval=0.5)

        def results() -> Iterator[LinkedExample]:
            if workers == 0:
                _init_worker(*init_args)
                mapped = map(_process, chunks)
            else:
                pool = mp.get_context("spawn").Pool(workers, initializer=_init_worker, initargs=init_args)
                mapped = pool.imap(_process, chunks)
            try:
                for examples in mapped:
                    bar.update(len(examples))
                    yield from examples
            finally:
                if workers:
                    pool.terminate()
                bar.close()

        meta = {"cache_key": key, "input": str(input_path), "vocab": str(vocab),
                "store": str(store) if store else None, "options": asdict(options)}
        write_corpus(results(), tmp / "corpus", meta)
        if options.phrases == "learn":
            Path(phrases).replace(tmp / "corpus" / "phrases.json")
        publish(tmp / "corpus", out, overwrite=overwrite, is_ours=is_linked_corpus, what="linked corpus")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return LinkedCorpus(out)


def is_linked_corpus(path: Path) -> bool:
    """Whether ``path`` is a linked corpus (a directory whose ``meta.json`` has its format and counts)."""
    return is_kept_dir(path, "format_version", "examples", "tokens")


__all__ = ["CorpusOptions", "build_linked_corpus", "cache_key", "is_linked_corpus", "read_texts"]
