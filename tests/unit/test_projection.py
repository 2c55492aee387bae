"""PCA and t-SNE maps: reproducible, faithful to neighbourhoods, stable across snapshots, clear errors."""
from __future__ import annotations

import re

import numpy as np
import pytest
from sklearn.datasets import load_digits
from sklearn.preprocessing import StandardScaler

from backend.analysis.projection.core import TSNEResult, add_points, pca, sample_indices, tsne_continue, tsne_fit
from backend.analysis.projection.compare import knn_agreement, mean_displacement, procrustes_align


@pytest.fixture(scope="module")
def digits() -> np.ndarray:
    """scikit-learn's digits, 1797 x 64, standardised (constant pixels stay 0)."""
    return StandardScaler().fit_transform(load_digits().data)


@pytest.fixture(scope="module")
def digits_fit(digits) -> TSNEResult:
    return tsne_fit(digits, seed=0)  # cosine, perplexity 30, 500 iterations: ~5 s on 2 cores


def test_same_seed_same_layout_other_seed_another(digits):
    x = digits[:300]
    a, b = tsne_fit(x, seed=3, n_iter=100), tsne_fit(x, seed=3, n_iter=100)
    c = tsne_fit(x, seed=4, n_iter=100)
    assert a.coords.dtype == np.float32 and a.coords.shape == (300, 2)
    assert np.array_equal(a.coords, b.coords)
    assert not np.array_equal(a.coords, c.coords)
    assert mean_displacement(c.coords, a.coords) > 1e-3
    assert a.params["negative_gradient_method"] == "fft" and a.params["early_exaggeration_iter"] == 50


def test_tsne_keeps_neighbourhoods_pca_does_not(digits, digits_fit):
    tsne = knn_agreement(digits, digits_fit.coords, k=10, metric="cosine")
    flat = knn_agreement(digits, pca(digits, 2)[0], k=10, metric="cosine")
    assert tsne >= 0.53      # measured 0.586
    assert flat <= 0.16      # measured 0.119
    assert tsne > 3 * flat
    assert np.isfinite(digits_fit.kl_divergence) and digits_fit.seconds > 0


def test_warm_start_moves_the_map_far_less_than_a_fresh_fit(digits, digits_fit):
    rng = np.random.default_rng(7)
    x1 = digits + 0.05 * digits.std(axis=0) * rng.normal(size=digits.shape)
    warm = tsne_continue(x1, digits_fit)
    fresh = tsne_fit(x1, seed=1)
    moved_warm = mean_displacement(warm.coords, digits_fit.coords)
    moved_fresh = mean_displacement(fresh.coords, digits_fit.coords)
    assert moved_fresh / moved_warm >= 5        # measured 0.079 / 0.0061 = 13
    assert warm.params["warm_start"] and warm.params["early_exaggeration_iter"] == 0
    assert knn_agreement(x1, warm.coords, k=10, metric="cosine") >= 0.53   # as good a map as a fresh one
    # aligned onto the previous map: already in its frame (Procrustes would barely move it)
    assert np.abs(procrustes_align(warm.coords, digits_fit.coords) - warm.coords).max() < 0.05 * np.abs(warm.coords).max()

    # a later process: the saved arrays alone give the same warm start
    saved = TSNEResult.from_arrays(dict(digits_fit.to_arrays()))
    assert not saved.live and saved.params == digits_fit.params
    again = tsne_continue(x1, saved)
    assert np.array_equal(again.coords, warm.coords)
    bare = tsne_continue(x1, np.asarray(digits_fit.coords))          # coordinates only, default params
    assert np.array_equal(bare.coords, warm.coords)


def test_to_arrays_round_trips_through_npz_without_pickle(tmp_path, digits):
    r = tsne_fit(digits[:200], perplexity=10, n_iter=60, seed=2)
    np.savez(tmp_path / "map.npz", **r.to_arrays())
    with np.load(tmp_path / "map.npz", allow_pickle=False) as f:
        back = TSNEResult.from_arrays(f)
    assert np.array_equal(back.coords, r.coords)
    assert back.params == r.params and back.kl_divergence == r.kl_divergence


@pytest.mark.parametrize("warm", [False, True])
@pytest.mark.parametrize("live", [True, False])
def test_add_points_lands_new_rows_next_to_their_twins(digits, digits_fit, warm, live):
    x = digits
    base = tsne_continue(x, digits_fit, n_iter=20) if warm else digits_fit   # warm: a rotated/scaled frame
    if not live:
        base = TSNEResult.from_arrays(base.to_arrays())
    rows = np.arange(0, 1797, 90)
    extra = x[rows] + 0.01 * np.random.default_rng(0).normal(size=(len(rows), x.shape[1]))
    placed = add_points(base, x, extra)
    assert placed.shape == (len(rows), 2) and placed.dtype == np.float32
    radius = np.sqrt(((base.coords - base.coords.mean(0)) ** 2).sum(1).mean())
    assert np.median(np.linalg.norm(placed - base.coords[rows], axis=1)) < 0.1 * radius
    assert add_points(base, x, np.zeros((0, 64))).shape == (0, 2)


def test_three_dimensional_maps_use_barnes_hut(digits):
    r = tsne_fit(digits[:200], dims=3, perplexity=10, n_iter=60)
    assert r.coords.shape == (200, 3) and r.params["negative_gradient_method"] == "bh"
    nxt = tsne_continue(digits[:200], r, n_iter=10)
    assert nxt.coords.shape == (200, 3)


def test_procrustes_recovers_a_rotated_scaled_shifted_copy():
    rng = np.random.default_rng(0)
    for dims in (2, 3):
        ref = rng.normal(size=(60, dims))
        q = np.linalg.qr(rng.normal(size=(dims, dims)))[0]
        q[:, 0] *= -1                                           # a reflection too
        moved = 3.7 * ref @ q + rng.normal(size=dims) * 10
        np.testing.assert_allclose(procrustes_align(moved, ref), ref, atol=1e-10)
        assert mean_displacement(moved, ref) < 1e-10
    a, b = rng.normal(size=(50, 2)), rng.normal(size=(50, 2))
    assert mean_displacement(a, b) == pytest.approx(mean_displacement(a * 0.01, b * 1e3 + 5))  # scale-free
    assert 0.5 < mean_displacement(a, b) < 1.5                                                # unrelated maps


def test_pca_signs_do_not_depend_on_row_order(digits):
    coords, ratio = pca(digits, 2)
    perm = np.random.default_rng(1).permutation(len(digits))
    coords_p, ratio_p = pca(digits[perm], 2)
    np.testing.assert_allclose(coords_p, coords[perm], atol=1e-4)
    np.testing.assert_allclose(ratio_p, ratio)
    c3, r3 = pca(digits, 3)
    np.testing.assert_allclose(c3[:, :2], coords, atol=1e-4)
    assert coords.dtype == np.float32 and 0 < r3[2] <= r3[1] <= r3[0] < 1
    np.testing.assert_allclose(pca(-digits, 2)[0], -coords, atol=1e-4)   # sign fixed by loadings, not by data


def test_sample_indices_are_reproducible_and_keep_forced_rows():
    a = sample_indices(100_000, 1000, seed=5)
    assert np.array_equal(a, sample_indices(100_000, 1000, seed=5))
    assert len(a) == 1000 and np.all(np.diff(a) > 0)
    assert not np.array_equal(a, sample_indices(100_000, 1000, seed=6))
    grown = sample_indices(101_000, 1000, seed=5)                  # a source that grew by 1%
    assert len(np.intersect1d(a, grown)) >= 970
    k = sample_indices(100_000, 1000, seed=5, keep=np.array([7, a[0]]))
    assert 7 in k and np.isin(a, k).all() and len(k) == 1001
    assert np.array_equal(sample_indices(50, 100, seed=0), np.arange(50))
    with pytest.raises(ValueError, match="keep must hold row indices"):
        sample_indices(10, 5, seed=0, keep=np.array([10]))


def test_knn_agreement_bounds():
    rng = np.random.default_rng(0)
    pts = rng.normal(size=(300, 2))
    assert knn_agreement(pts, pts, k=10) == 1.0
    assert knn_agreement(pts, rng.normal(size=(300, 2)), k=10) < 0.15     # random: ~k/n
    with pytest.raises(ValueError, match="k must be between 1 and 299"):
        knn_agreement(pts, pts, k=300)


@pytest.mark.parametrize("call, message", [
    (lambda x: tsne_fit(x[:40]),
     "t-SNE with perplexity 30 needs at least 91 points; this source has 40: lower the perplexity to at most 13"),
    (lambda x: tsne_fit(x[:3], perplexity=5),
     "t-SNE with perplexity 5 needs at least 16 points; this source has 3: t-SNE needs at least 4 points"),
    (lambda x: tsne_fit(x[:100], dims=4), "a map has 2 or 3 dimensions, not 4"),
    (lambda x: pca(x, dims=1), "a map has 2 or 3 dimensions, not 1"),
    (lambda x: tsne_fit(x[:100], metric="manhattan"), "unknown metric 'manhattan': use one of 'cosine', 'euclidean'"),
    (lambda x: tsne_fit(np.where(np.arange(100)[:, None] % 50 == 3, np.nan, x[:100])),
     "x has 2 row(s) with NaN or inf values (first: row 3): drop or fill them before projecting"),
    (lambda x: pca(np.vstack([x[:10], np.full((1, 64), np.inf)])), "x has 1 row(s) with NaN or inf values (first: row 10)"),
    (lambda x: tsne_fit(np.where(np.arange(100)[:, None] >= 95, 0.0, x[:100])),
     "x has 5 all-zero row(s) (first: row 95), which have no direction for the cosine metric: drop them or "
     "use metric='euclidean'"),
    (lambda x: tsne_continue(x[:100], np.zeros((99, 2))), "a warm start needs the same rows: x_new has 100, the previous layout 99"),
])
def test_errors_a_page_can_show(digits, call, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        call(digits)


def test_the_largest_perplexity_the_message_offers_works(digits):
    assert tsne_fit(digits[:40], perplexity=13, n_iter=20).coords.shape == (40, 2)   # 40 > 3 x 13
    with pytest.raises(ValueError, match="perplexity 13.5 needs at least 41 points; this source has 40"):
        tsne_fit(digits[:40], perplexity=13.5)


def test_neighbourhood_overlap_tells_a_small_step_from_replaced_vectors():
    from backend.analysis.projection.compare import neighbourhood_overlap

    rng = np.random.default_rng(0)
    old = rng.normal(size=(400, 16))
    assert neighbourhood_overlap(old, old + 0.05 * rng.normal(size=old.shape)) > 0.8
    assert neighbourhood_overlap(old, rng.normal(size=old.shape)) < 0.1


def test_restructure_lets_new_structure_form_from_a_random_start():
    """Vectors leaving their random initialisation: a short continuation of the blob keeps the blob,
    the full schedule from the previous map finds the clusters."""
    rng = np.random.default_rng(1)
    random_start = rng.normal(size=(600, 16))
    centres = rng.normal(scale=6.0, size=(6, 16))
    clustered = centres[np.arange(600) % 6] + rng.normal(size=(600, 16))
    blob = tsne_fit(random_start, perplexity=20, seed=0)
    short = tsne_continue(clustered, blob)
    full = tsne_continue(clustered, blob, restructure=True)
    assert full.params["restructure"] and full.params["early_exaggeration_iter"] > 0
    good, poor = knn_agreement(clustered, full.coords, metric="cosine"), knn_agreement(clustered, short.coords,
                                                                                        metric="cosine")
    assert good > 0.3 and good > 2 * poor, (good, poor)  # measured 0.45 against 0.10


def test_names_split_off_projection_still_import_from_it():
    """The comparing functions and the checks moved to their own modules; the old imports keep working."""
    from backend.analysis.projection import core as projection
    from backend.analysis.projection import checks as projection_checks
    from backend.analysis.projection import compare as projection_compare
    for name in ("procrustes_align", "mean_displacement", "neighbourhood_overlap", "knn_agreement"):
        assert getattr(projection, name) is getattr(projection_compare, name)
    for name in ("check_perplexity", "METRICS", "DEFAULT_METRIC"):
        assert getattr(projection, name) is getattr(projection_checks, name)
    assert set(projection.__all__) <= set(dir(projection))
    with pytest.raises(ValueError, match="perplexity 30 needs at least 91 points; this source has 40"):
        projection.check_perplexity(40, 30)
