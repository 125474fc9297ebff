"""WordPiece tokenizers from local files: a ``vocab.txt`` (cased or not, detected) or a saved tokenizer folder."""

from __future__ import annotations

from pathlib import Path

from kept.errors import InputError

#: tokens every BERT vocabulary must have (the collators and the MLM objective use them)
SPECIAL_TOKENS = ("[UNK]", "[CLS]", "[SEP]", "[PAD]", "[MASK]")


def load_tokenizer(vocab: str | Path):
    """A BERT WordPiece tokenizer from a ``vocab.txt`` file or a saved tokenizer directory (local only).

    InputError (``<path>: <problem>``) for a vocabulary that is not UTF-8 text, is empty, lacks
    one of :data:`SPECIAL_TOKENS`, or a directory without readable tokenizer files."""
    from transformers import AutoTokenizer, BertTokenizer

    path = Path(vocab)
    if path.is_dir():
        if not any((path / f).is_file() for f in ("tokenizer.json", "vocab.txt", "tokenizer_config.json")):
            raise InputError(f"{path}: a directory without tokenizer files (vocab.txt or tokenizer.json); "
                             "pass a vocab.txt file or a saved tokenizer directory")
        if (path / "vocab.txt").is_file():
            check_vocab_file(path / "vocab.txt")
        try:
            return AutoTokenizer.from_pretrained(path, local_files_only=True)
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise InputError(f"{path}: unreadable tokenizer files ({str(exc).splitlines()[0][:200]})") from None
    if not path.exists():
        raise FileNotFoundError(f"no vocabulary at {path}")
    check_vocab_file(path)
    return BertTokenizer(vocab=str(path), do_lower_case=vocab_is_uncased(path))


def check_vocab_file(path: Path) -> None:
    """InputError unless ``path`` is a UTF-8 WordPiece vocabulary with the special tokens."""
    data = path.read_bytes()
    if not data.strip():
        raise InputError(f"{path}: empty vocabulary")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise InputError(f"{path}:{line}: not UTF-8 text; a vocabulary is a vocab.txt, one token a line") from None
    if "\x00" in text:
        line = text.count("\n", 0, text.index("\x00")) + 1
        raise InputError(f"{path}:{line}: NUL byte; a vocabulary is a vocab.txt, one token a line")
    tokens = {line.strip() for line in text.splitlines()}
    missing = [t for t in SPECIAL_TOKENS if t not in tokens]
    if missing:
        raise InputError(f"{path}: not a BERT vocabulary (no {', '.join(missing)} token)")


def vocab_is_uncased(path: str | Path) -> bool:
    """True when a WordPiece ``vocab.txt`` has no token with an ASCII capital letter (outside
    ``[SPECIAL]`` tokens): an uncased vocabulary, whose tokenizer must lowercase the text.

    Only ASCII counts: uncased vocabularies keep non-ASCII symbols such as 'ℝ' that Python
    calls upper-case, while a cased vocabulary (bert-base-cased) has hundreds of "The"-like tokens.
    """
    with open(path, encoding="utf-8") as f:
        for line in f:
            token = line.strip()
            if token.startswith("[") and token.endswith("]"):
                continue
            if any("A" <= c <= "Z" for c in token):
                return False
    return True
