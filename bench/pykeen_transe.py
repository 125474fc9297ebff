"""PyKEEN 1.11 TransE on the triples of a kept store: the reference side of bench/transe.py.

Runs inside bench/.venv-pykeen (PyKEEN is never a dependency of kept). Input: an .npz
with int64 ``train``, ``valid``, ``test`` [n, 3] (h, r, t) and ``num_entities``,
``num_relations``, written by bench/transe.py from the store; settings as JSON.
Output (JSON on the last stdout line): seconds per epoch and, unless the settings say
``"evaluate": false``, evaluation seconds and the filtered test metrics of PyKEEN's
RankBasedEvaluator (realistic rank).

    bench/.venv-pykeen/bin/python bench/pykeen_transe.py triples.npz '{"dim": 100, ...}'
"""

from __future__ import annotations

import json
import sys
import time

import numpy as np
import torch
from pykeen.evaluation import RankBasedEvaluator
from pykeen.losses import MarginRankingLoss
from pykeen.models import TransE
from pykeen.training import SLCWATrainingLoop
from pykeen.triples import CoreTriplesFactory


def main(npz_path: str, settings_json: str) -> dict:
    s = json.loads(settings_json)
    torch.set_num_threads(s.get("threads", torch.get_num_threads()))
    torch.manual_seed(s["seed"])
    data = np.load(npz_path)
    n_entities, n_relations = int(data["num_entities"]), int(data["num_relations"])
    train, valid, test = (torch.from_numpy(data[k]).long() for k in ("train", "valid", "test"))
    factory = CoreTriplesFactory.create(train, num_entities=n_entities, num_relations=n_relations)

    # PyKEEN's TransE: entities renormalised to unit L2 norm (entity_constrainer), as in the paper
    model = TransE(triples_factory=factory, embedding_dim=s["dim"], scoring_fct_norm=s["norm"],
                   loss=MarginRankingLoss(margin=s["margin"]), random_seed=s["seed"])
    optimizer = torch.optim.Adam(model.parameters(), lr=s["lr"])
    loop = SLCWATrainingLoop(model=model, triples_factory=factory, optimizer=optimizer,
                             negative_sampler="basic", negative_sampler_kwargs={"num_negs_per_pos": s["negatives"]})
    start = time.perf_counter()
    losses = loop.train(triples_factory=factory, num_epochs=s["epochs"], batch_size=s["batch_size"], use_tqdm=False)
    train_seconds = time.perf_counter() - start

    result = {"train_seconds": train_seconds, "seconds_per_epoch": train_seconds / s["epochs"],
              "losses": [float(x) for x in losses], "torch_threads": torch.get_num_threads()}
    if s.get("save_vectors"):  # for evaluating other seeds with kept's (identical, faster) evaluation
        entity, relation = (rep().detach().numpy() for rep in (model.entity_representations[0],
                                                                 model.relation_representations[0]))
        np.savez(s["save_vectors"], entity=entity, relation=relation)
    if not s.get("evaluate", True):
        return result
    evaluator = RankBasedEvaluator(filtered=True)
    start = time.perf_counter()
    results = evaluator.evaluate(model, test, additional_filter_triples=[train, valid], use_tqdm=False)
    eval_seconds = time.perf_counter() - start

    def metric(side: str, name: str) -> float:
        return float(results.get_metric(f"{side}.realistic.{name}"))

    metrics = {side_out: {"mrr": metric(side, "inverse_harmonic_mean_rank"), "mr": metric(side, "arithmetic_mean_rank"),
                          **{f"hits@{k}": metric(side, f"hits_at_{k}") for k in (1, 3, 10)}}
               for side, side_out in (("head", "head"), ("tail", "tail"), ("both", "overall"))}
    return {**result, "eval_seconds": eval_seconds, "test": metrics}


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1], sys.argv[2])))
