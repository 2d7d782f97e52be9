"""The diamond-search benchmark's world reading: the distance and the view test it reports are exact."""

import jax.numpy as jnp

from benchmarks.diamond_search import DIAMOND, diamond_distance


def test_nearest_diamond_distance_and_the_seven_by_nine_view():
    world = jnp.zeros((10, 12), jnp.int32).at[2, 7].set(DIAMOND).at[9, 0].set(DIAMOND)
    cases = {  # position -> (L1 distance to the nearest diamond, inside the view)
        (5, 5): (5, True),     # 3 along axis 0, 2 along axis 1
        (5, 11): (7, True),    # 3 and 4: the view's corner
        (6, 10): (7, False),   # 4 along axis 0 is one past the view's half height
        (6, 7): (4, False),    # nearer, and still out of view: the axes are not interchangeable
        (1, 0): (8, False),    # both diamonds 8 away
    }
    for pos, (want_dist, want_seen) in cases.items():
        dist, seen = diamond_distance(world, jnp.array(pos))
        assert (int(dist), bool(seen)) == (want_dist, want_seen), pos
    dist, seen = diamond_distance(jnp.zeros((4, 4), jnp.int32), jnp.array([1, 1]))
    assert int(dist) == 10**6 and not bool(seen)
