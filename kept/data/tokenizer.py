"""WordPiece tokenizers from local files: a ``vocab.txt`` (cased or not, detected) or a saved tokenizer folder."""

from __future__ import annotations

from pathlib import Path


def load_tokenizer(vocab: str | Path):
    """A BERT WordPiece tokenizer from a ``vocab.txt`` file or a saved tokenizer directory (local only)."""
    from transformers import AutoTokenizer, BertTokenizer

    path = Path(vocab)
    if path.is_dir():
        return AutoTokenizer.from_pretrained(path, local_files_only=True)
    if not path.exists():
        raise FileNotFoundError(f"no vocabulary at {path}")
    return BertTokenizer(vocab=str(path), do_lower_case=vocab_is_uncased(path))


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
