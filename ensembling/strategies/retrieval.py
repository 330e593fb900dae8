from ensembling.errors import EnsemblingError
from ensembling.strategies import register
from ensembling.strategies.base import Composition, Family, Needs, Strategy


@register
class Retrieval(Strategy):
    """AdapterSoup / LoraRetriever-style selection: the sources whose tasks' data look most like the target's.

    The k sources with the highest cosine between their dataset embedding and the target's
    (`Candidate.similarity`; the target embedded from the examples it is given, the k-shot
    sample in a fair run), composed with equal weights. k is the pool size random-pool draws,
    so that the two differ only in how the k sources are chosen. Ties go to the older module.
    """

    name = "retrieval"
    summary = "uniform weights over the k sources whose dataset embeddings are nearest the target's"
    family = Family.PEER
    composition = Composition.UNIFORM
    needs = frozenset({Needs.SIMILARITY})

    def select(self, candidates, context):
        unranked = [candidate for candidate in candidates if candidate.similarity is None]
        if unranked:
            raise EnsemblingError(
                f"retrieval ranks sources by dataset-embedding similarity, but {unranked[0].label} has none; build candidates with their similarity to the target"
            )
        ranked = sorted(candidates, key=lambda candidate: (-candidate.similarity, candidate.id))
        return ranked[: context.pool_size]
