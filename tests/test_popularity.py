import numpy as np

from mfsoftmax.models import Popularity, Queries
from tests.contract import RecommenderContract, checkerboard


class TestPopularity(RecommenderContract):
    def make_model(self):
        return Popularity()


def test_popularity_ranks_by_count():
    data = checkerboard()
    model = Popularity().fit(data)
    ids, _ = model.recommend(Queries([0], data.matrix[:0].__class__((1, data.n_items), dtype=np.float32)), k=data.n_items)
    pops = data.item_popularity()[ids[0]]
    assert np.all(np.diff(pops) <= 0)
