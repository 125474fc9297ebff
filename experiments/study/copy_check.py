"""Does a K-BERT export read its branches? Loss and accuracy on the training sentences with only their
copyable object spans masked (text copies of a branch object, masked whole), in trees with branches
and in the same masked sentences without them.

    PYTHONPATH=. python experiments/study/copy_check.py DATA MODEL_DIR     # DATA: experiments/study/prepare.py --out
"""

from __future__ import annotations

import sys

import torch
from transformers import BertForMaskedLM

from kept.data.examples import LinkedCorpus
from kept.fusion.kbert import BranchTable, KBertMaskingCollator, SentenceTreeBuilder, tree_forward
from kept.masking import UnitMaskingCollator
from kept.train.data import load_tokenizer


def scores(model, batch: dict, labels: torch.Tensor) -> tuple[float, float, int]:
    """(cross-entropy, accuracy, predicted tokens) of ``model`` on ``labels`` (-100 elsewhere)."""
    with torch.no_grad():
        logits = tree_forward(model, batch).logits
    at = labels != -100
    loss = torch.nn.functional.cross_entropy(logits[at], labels[at]).item()
    return round(loss, 3), round((logits[at].argmax(-1) == labels[at]).float().mean().item(), 3), int(at.sum())


def main(data: str, model_dir: str, max_length: int = 64, examples: int = 200) -> dict:
    torch.set_num_threads(1)
    tok = load_tokenizer(model_dir)
    model = BertForMaskedLM.from_pretrained(model_dir, attn_implementation="sdpa").eval()
    corpus = LinkedCorpus(data + "/corpus")
    sample = [corpus[i] for i in range(0, len(corpus), 4)][:examples]
    masking = UnitMaskingCollator(tok, max_length=max_length, level="token", mask_prob=0.0, seed=0)
    branches = BranchTable(data + "/store", tok, "en", 2, True, 0)
    collate = KBertMaskingCollator(masking, SentenceTreeBuilder(tok, branches, max_length), branch_object_prob=1.0)
    full = collate(sample, generator=torch.Generator().manual_seed(0))
    # the same masked sentences as plain trees (no branch), labels moved to the sentence positions
    text = [full["input_ids"][r][~full["is_branch"][r] & (full["attention_mask"][r] > 0)][1:-1].numpy()
            for r in range(len(sample))]
    plain = SentenceTreeBuilder(tok, None, max_length)(sample, input_ids=text)
    labels = torch.full(plain.input_ids.shape, -100)
    for r in range(len(sample)):
        row = full["labels"][r][~full["is_branch"][r]]
        n = min(len(row), labels.shape[1])
        labels[r, :n] = row[:n]
    return {"with branches": scores(model, full, full["labels"]), "without": scores(model, plain.as_dict(), labels)}


if __name__ == "__main__":
    print(sys.argv[2], main(sys.argv[1], sys.argv[2]))
