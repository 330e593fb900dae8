from collections.abc import Sequence

from ensembling.candidates import Candidate
from ensembling.strategies import register
from ensembling.strategies.base import Composition, Family, Needs, Strategy


@register
class Retrieval(Strategy):
    """AdapterSoup / LoraRetriever-style selection: the sources whose tasks' data look most like the target's.

    The k sources with the highest cosine between their dataset embedding and the target's
    (`Candidate.similarity`; the target embedded from the examples it is given, the k-shot
    sample in a fair run), composed with equal weights. k is the pool size random-pool draws,
    so that the two differ only in how the k sources are chosen. Ties go to the older module.
    A source without a similarity (a module registered without a dataset has no dataset
    embedding) is ranked after every source that has one, oldest first: chosen only when
    fewer than k sources can be ranked.
    """

    name = "retrieval"
    summary = "uniform weights over the k sources whose dataset embeddings are nearest the target's"
    family = Family.PEER
    composition = Composition.UNIFORM
    needs = frozenset({Needs.SIMILARITY})

    def select(self, candidates, context):
        return nearest(candidates, context.pool_size)


def nearest(candidates: Sequence[Candidate], k: int) -> list[Candidate]:
    """The k candidates of highest similarity; ties to the older module, those without a similarity last."""
    return sorted(candidates, key=lambda candidate: (candidate.similarity is None, -(candidate.similarity or 0.0), candidate.id))[:k]
