"""How the planted-groups generator (``synthetic.py``) draws items: one CDF per (group, taste)
block searched in sorted order, exponential keys for the in-group items (``in_group="keys"``),
and the rounds that draw without replacement."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# draws per missing item in each round of topping up the users that drew an item twice
FACTORS = (1.0, 1.5, 2.0, 3.0, 4.0, 6.0, 8.0, 8.0, 8.0, 8.0, 8.0, 8.0)


def bits(n: int) -> int:
    return max(1, int(max(n, 1) - 1).bit_length())


def search_blocks(cdf: np.ndarray, block: np.ndarray, n_blocks: int, rng) -> np.ndarray:
    """Inverse-CDF draw of one position per entry of ``block`` in its block (block b spans
    [b, b + 1) of the concatenated ``cdf``). The queries are searched in sorted order (one value
    sort of packed block, uniform and position), which keeps the binary search in cache: several
    times faster than random order on a catalogue-sized CDF."""
    n = len(block)
    idx_bits, block_bits = bits(n), bits(n_blocks)
    u_bits = min(40, 63 - idx_bits - block_bits, 52 - block_bits)
    pos = np.empty(n, dtype=np.int64)
    if u_bits < 24:  # too many draws to pack: argsort the float queries instead
        query = block + rng.random(n)
        order = np.argsort(query)
        pos[order] = np.searchsorted(cdf, query[order], side="right")
        return pos
    packed = rng.integers(0, np.int64(1) << u_bits, size=n, dtype=np.int64)
    packed <<= idx_bits
    packed |= block.astype(np.int64) << (u_bits + idx_bits)
    packed |= np.arange(n, dtype=np.int64)
    packed.sort()
    order = packed & ((np.int64(1) << idx_bits) - 1)
    packed >>= idx_bits
    query = packed.astype(np.float64)  # block * 2**u_bits + uniform: exact below 2**53
    del packed
    query += 0.5
    query *= 1.0 / float(1 << u_bits)
    pos[order] = np.searchsorted(cdf, query, side="right")
    return pos


def in_group_by_keys(weights, item_groups, group_start, group_size, user_groups, primary,
                      secondary, share, k_in, n_items, rng, cells: int = 1 << 20) -> np.ndarray:
    """Sorted keys ``user * n_items + item`` of each user's ``k_in`` in-group items, drawn
    without replacement from its taste mixture ``share * p(primary) + (1 - share) *
    p(secondary)`` over its group's items (p: the taste's weights normalised in the group): the
    ``k_in`` smallest exponential keys ``E_i / p_i`` (Efraimidis-Spirakis), for blocks of users
    of one group at a time (at most ``cells`` user x item cells each; users sorted by ``k_in``
    so a block's partition depth fits its users)."""
    out = []
    for g in range(len(group_size)):
        lo, size = int(group_start[g]), int(group_size[g])
        w = weights[lo:lo + size]
        # (n_tastes, size): each taste's distribution in the group (float32: half the traffic)
        p = (w / w.sum(axis=0)).T.astype(np.float32)
        users = np.flatnonzero((user_groups == g) & (k_in > 0))
        users = users[np.argsort(k_in[users], kind="stable")]
        step = max(1, cells // size)
        for start in range(0, len(users), step):
            u = users[start:start + step]
            k = k_in[u]
            sh = share[u, None].astype(np.float32)
            mix = sh * p[primary[u]]
            mix += (1.0 - sh) * p[secondary[u]]
            t = rng.standard_exponential((len(u), size), dtype=np.float32)
            with np.errstate(divide="ignore"):  # an item of mass 0 in float32: never drawn
                t /= mix
            kmax = int(k.max())
            if kmax < size:
                part = np.argpartition(t, kmax - 1, axis=1)[:, :kmax]
            else:
                part = np.broadcast_to(np.arange(size), (len(u), size))
            order = np.take_along_axis(part, np.argsort(np.take_along_axis(t, part, axis=1),
                                                        axis=1), axis=1)
            take = np.arange(kmax)[None, :] < k[:, None]
            items = order[take] + lo
            out.append(np.repeat(u, k) * np.int64(n_items) + items)
    keys = np.concatenate(out) if out else np.zeros(0, np.int64)
    keys.sort()
    return keys


@dataclass
class Groups:
    """The planted groups: each user's (``users``) and item's (``items``, contiguous blocks),
    and where each group's items start and how many there are."""

    users: np.ndarray
    items: np.ndarray
    start: np.ndarray
    size: np.ndarray

    @property
    def n(self) -> int:
        return len(self.size)


def block_cdf(groups: Groups, weights: np.ndarray):
    """``(cdf, item_at)``: one CDF per (group, weight column) block, laid end to end (block
    ``b = g * n_cols + c`` spans [b, b + 1)); ``item_at`` maps a position back to its item."""
    n_items, n_cols = weights.shape
    item_groups, group_start, group_size = groups.items, groups.start, groups.size
    cols = np.arange(n_cols)
    flat = ((n_cols * group_start[item_groups] + np.arange(n_items) - group_start[item_groups])
            [:, None] + cols[None, :] * group_size[item_groups][:, None])
    w_flat = np.empty(n_items * n_cols)
    w_flat[flat] = weights
    item_at = np.empty(n_items * n_cols, dtype=np.int64)
    item_at[flat] = np.arange(n_items)[:, None]
    block_size = np.repeat(group_size, n_cols)
    block_of = np.repeat(np.arange(groups.n * n_cols), block_size)
    del flat
    block_tot = np.bincount(block_of, weights=w_flat, minlength=groups.n * n_cols)
    cdf = np.cumsum(w_flat) - np.repeat(np.cumsum(block_tot) - block_tot, block_size)
    cdf /= block_tot[block_of]
    cdf += block_of
    cdf[np.cumsum(block_size) - 1] = np.arange(groups.n * n_cols) + 1.0  # exact upper ends
    return cdf, item_at


class Sampler:
    """Draws one item per segment entry from the segment's distribution: a user's taste mixture
    inside its group, or (noise) global popularity among the other groups."""

    def __init__(self, groups: Groups, weights: np.ndarray, share: np.ndarray,
                 primary: np.ndarray, secondary: np.ndarray, rng):
        self.groups, self.share, self.rng = groups, share, rng
        self.n_tastes = weights.shape[1] - 1
        self.n_cols = weights.shape[1]
        self.cdf, self.item_at = block_cdf(groups, weights)
        # the other groups by popularity mass (= global popularity outside the user's group)
        mass = np.bincount(groups.items, weights=weights[:, self.n_tastes], minlength=groups.n)
        self.mass_cdf = np.cumsum(mass) / mass.sum()
        self.taste_block = [groups.users * self.n_cols + primary,
                            groups.users * self.n_cols + secondary]

    def _other_groups(self, own: np.ndarray) -> np.ndarray:
        """A group other than ``own`` per entry, by popularity mass."""
        rng, n_groups = self.rng, self.groups.n
        other = np.minimum(np.searchsorted(self.mass_cdf, rng.random(len(own)), side="right"),
                           n_groups - 1)
        for _ in range(20):
            again = np.flatnonzero(other == own)
            if not len(again):
                break
            other[again] = np.minimum(
                np.searchsorted(self.mass_cdf, rng.random(len(again)), side="right"), n_groups - 1)
        stuck = np.flatnonzero(other == own)
        other[stuck] = (own[stuck] + rng.integers(1, n_groups, len(stuck))) % n_groups
        return other

    def draw(self, segs: np.ndarray) -> np.ndarray:
        """One item per entry of ``segs`` (segment ids), from the segment's distribution."""
        users = segs >> 1
        block = np.where(self.rng.random(len(segs)) < self.share[users],
                         self.taste_block[0][users], self.taste_block[1][users])
        out = np.flatnonzero(segs & 1)
        if len(out):
            other = self._other_groups(self.groups.users[users[out]])
            block[out] = other * self.n_cols + self.n_tastes
        return self.item_at[search_blocks(self.cdf, block, self.groups.n * self.n_cols,
                                           self.rng)]


def draw_distinct(sampler: Sampler, need: np.ndarray, n_users: int, n_items: int,
                   kept: list) -> np.ndarray:
    """Sorted keys ``user * n_items + item`` of every kept item: ``kept`` (sorted keys already
    drawn) and, without replacement, what each segment still ``need``-s: draw it, keep the
    first draw of each new item, top up the segments that drew a repeat (more generously each
    round, :data:`FACTORS`). A user's in-group and noise items never coincide."""
    key_bits = bits(n_users) + bits(n_items)
    active = np.flatnonzero(need > 0)
    for factor in FACTORS:
        if not len(active):
            break
        n_draw = np.ceil(need[active] * factor).astype(np.int64)
        segs = np.repeat(active, n_draw)
        keys = (segs >> 1) * np.int64(n_items) + sampler.draw(segs)
        del segs
        keys, order = sorted_with_order(keys, key_bits)
        new = np.ones(len(keys), dtype=bool)  # first draw of its key in this round ...
        new[1:] = keys[1:] != keys[:-1]
        for prev in kept:  # ... and not kept in an earlier round
            at = np.minimum(np.searchsorted(prev, keys), len(prev) - 1)
            new &= prev[at] != keys
        fresh = np.zeros(len(keys), dtype=bool)
        fresh[order[new]] = True
        # rank of each fresh draw among its segment's fresh draws, in draw order
        rank = np.cumsum(fresh)
        begin = np.concatenate([[0], np.cumsum(n_draw)[:-1]])
        rank -= np.repeat(np.where(begin > 0, rank[begin - 1], 0), n_draw)
        take = fresh & (rank <= np.repeat(need[active], n_draw))
        del fresh, rank
        need[active] -= np.add.reduceat(take, begin, dtype=np.int64)
        if take.any():
            kept.append(keys[take[order]])  # keys is sorted: so are the kept ones
        active = active[need[active] > 0]
        del keys, order, new, take
    keys = np.concatenate(kept) if len(kept) > 1 else kept[0] if kept else np.zeros(0, np.int64)
    keys.sort()  # (user, item) order: from_coo then has nothing to sort
    return keys


def sorted_with_order(keys: np.ndarray, key_bits: int):
    """``(sorted keys, order)``: a stable sort of ``keys`` (values below ``2**key_bits``) and
    the positions it took them from (one value sort of key and position where they fit)."""
    n = len(keys)
    idx_bits = bits(n)
    if key_bits + idx_bits <= 63:
        keys <<= idx_bits
        keys |= np.arange(n, dtype=np.int64)
        keys.sort()
        order = keys & ((np.int64(1) << idx_bits) - 1)
        keys >>= idx_bits
        return keys, order
    order = np.argsort(keys, kind="stable")
    return keys[order], order
