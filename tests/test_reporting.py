"""Learning-curve statistics: IQM by hand, bootstrap bands, gap filling, bad shapes; the
plot and the atomic JSON on disk."""

import json

import numpy as np
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import to_rgba

from jrl import reporting, stats
from jrl.reporting import (
    bootstrap_ci,
    curve_stats,
    fill_gaps,
    final_summary,
    interval_label,
    iqm,
    mean_and_ci,
    plot_learning_curves,
    smooth,
    write_json,
)


def test_iqm_matches_hand_computed_example():
    # 8 values; sorted: -50, 1 | 2, 3, 4, 100 | 200, 300. floor(8 / 4) = 2 are cut at each
    # end, so the IQM is (2 + 3 + 4 + 100) / 4 = 27.25 (the mean, 70, follows the tails).
    values = np.array([3.0, 300.0, -50.0, 2.0, 100.0, 1.0, 200.0, 4.0])
    assert iqm(values) == pytest.approx(27.25)
    assert np.mean(values) == pytest.approx(70.0)


def test_iqm_is_per_step_along_the_seed_axis():
    curves = np.stack([np.arange(8.0), 10 * np.arange(8.0)], axis=1)  # [8 seeds, 2 steps]
    np.testing.assert_allclose(iqm(curves, axis=0), [3.5, 35.0])


def test_curve_stats_bands_contain_their_estimates_and_narrow_with_more_seeds():
    rng = np.random.default_rng(0)
    few = rng.normal(size=(5, 30)) + np.linspace(0, 10, 30)
    many = rng.normal(size=(200, 30)) + np.linspace(0, 10, 30)
    for values in (few, many):
        stats = curve_stats(values, num_resamples=500)
        assert stats.num_seeds == values.shape[0]
        for est, low, high in [
            (stats.mean, stats.mean_low, stats.mean_high),
            (stats.iqm, stats.iqm_low, stats.iqm_high),
        ]:
            assert est.shape == low.shape == high.shape == (30,)
            assert np.all(low <= est + 1e-12) and np.all(est <= high + 1e-12)
        np.testing.assert_allclose(stats.mean, values.mean(axis=0))
    width = lambda s: np.mean(s.mean_high - s.mean_low)  # noqa: E731
    assert width(curve_stats(many, num_resamples=500)) < width(curve_stats(few, num_resamples=500))
    # Nearly the normal interval for many seeds: 2 * 1.96 / sqrt(200) = 0.28.
    assert width(curve_stats(many, num_resamples=2000)) == pytest.approx(0.277, rel=0.15)


def test_the_iqm_band_is_the_iqms_not_the_means():
    """19 seeds at 1.0 and one at 1000 (20 seeds): a resample's IQM cuts 5 seeds at each
    end, so it stays 1 unless the outlier is drawn 6 or more times of 20 (Binomial(20,
    1/20): P = 0.00033, far under 2.5%): the IQM band is exactly [1, 1]. A resample's
    mean is 1 + 999 X / 20 for X draws of the outlier, whose 97.5% quantile is 3 (P(X <=
    2) = 0.925): the mean band reaches 1 + 999 * 3 / 20 = 150.85. A second step, every
    seed at 5, has zero-width bands at 5."""
    outlier = np.array([1.0] * 19 + [1000.0])
    values = np.stack([outlier, np.full(20, 5.0)], axis=1)  # [20 seeds, 2 steps]
    stats = curve_stats(values, num_resamples=500)
    np.testing.assert_allclose(stats.iqm, [1.0, 5.0])
    np.testing.assert_allclose(stats.mean, [50.95, 5.0])
    np.testing.assert_array_equal(stats.iqm_low, [1.0, 5.0])
    np.testing.assert_array_equal(stats.iqm_high, [1.0, 5.0])
    assert stats.mean_low[0] == 1.0 and stats.mean_high[0] > 100.0  # X = 2 gives 100.9


def test_bootstrap_is_reproducible_and_a_constant_has_a_zero_band():
    values = np.random.default_rng(1).normal(size=(6, 4))
    a = bootstrap_ci(values, lambda x: x.mean(axis=1), num_resamples=300, seed=3)
    b = bootstrap_ci(values, lambda x: x.mean(axis=1), num_resamples=300, seed=3)
    np.testing.assert_array_equal(a, b)
    stats = curve_stats(np.full((5, 3), 7.0), num_resamples=100)
    for field in ("mean_low", "mean_high", "iqm_low", "iqm_high"):
        np.testing.assert_allclose(getattr(stats, field), 7.0)


def test_bootstrap_memory_is_bounded_and_its_blocks_change_no_band():
    """The resampled values of 300 seeds x 400 steps, 250 resamples at a time, are 240 MB
    of float64 in one piece; in blocks of at most ``max_elements`` the peak stays near
    that bound, and the bands are the same (up to float64 rounding of the sums)."""
    import tracemalloc

    values = np.random.default_rng(2).normal(size=(300, 400))
    whole = [bootstrap_ci(values, f, num_resamples=300, seed=1, max_elements=2**30)
             for f in (lambda x: x.mean(axis=1), lambda x: iqm(x, axis=1))]  # fmt: skip
    tracemalloc.start()
    try:
        blocked = [
            bootstrap_ci(values, f, num_resamples=300, seed=1, max_elements=2**17)
            for f in (lambda x: x.mean(axis=1), lambda x: iqm(x, axis=1))
        ]
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 16 * 2**20  # 2**17 values are 1 MB; their copies while sorting, a few
    for (low, high), (low_b, high_b) in zip(whole, blocked, strict=True):
        np.testing.assert_allclose(low_b, low, rtol=1e-12)
        np.testing.assert_allclose(high_b, high, rtol=1e-12)


def test_one_seed_has_no_interval_and_a_summary_writes_null():
    stats = curve_stats([[1.0, 2.0, 3.0]], num_resamples=50)
    np.testing.assert_array_equal(stats.mean, [1.0, 2.0, 3.0])
    for field in ("mean_low", "mean_high", "iqm_low", "iqm_high"):
        assert np.isnan(getattr(stats, field)).all()
    summary = final_summary([4.0], num_resamples=50)
    assert summary["mean"] == 4.0 and np.isnan(summary["mean_ci"]).all()
    # Five seeds do get an interval.
    assert np.isfinite(final_summary([4.0, 6.0, 5, 3, 7], num_resamples=50)["mean_ci"]).all()


def test_too_few_seeds_for_a_95_percent_interval_have_none():
    """A "95%" percentile-bootstrap interval of 2 to 4 seeds is about their range: of the
    mean of normal values it held the true mean 50% of the time at 2 seeds, 75% at 3
    (a researcher's count over 1000 draws). Below 5 seeds there is none, and figures,
    tables and jrl eval say so."""
    for num_seeds in (2, 3, 4):
        curves = np.arange(3.0 * num_seeds).reshape(num_seeds, 3)
        low, high = bootstrap_ci(curves, lambda x: x.mean(axis=1), num_resamples=50)
        assert np.isnan(low).all() and np.isnan(high).all()
        summary = final_summary(np.arange(num_seeds, dtype=float), num_resamples=50)
        assert np.isnan(summary["mean_ci"]).all() and np.isnan(summary["iqm_ci"]).all()
    assert interval_label(0.95, [3]) == "no interval (3 seeds; needs 5)"
    assert interval_label(0.95, [1]) == "no interval (1 seed; needs 5)"
    assert interval_label(0.95, [3, 8]) == "95% bootstrap CI (none below 5 seeds)"
    assert interval_label(0.95, [8]) == "95% bootstrap CI"
    # One task's runs in the aggregate tables: the same rule; pooled tasks keep theirs.
    from jrl import stats

    few = stats.aggregate({"a": np.arange(4.0)[:, None]}, reps=50, gamma=None)
    assert np.isnan(few.interval["a"]).all()
    assert "[4 runs: no interval]" in stats.format_table(few)
    # The table's caption and aggregates.json say why, not only the cells.
    assert "nor from fewer than 5 runs of a single task" in stats.format_table(few)
    assert "fewer than 5 runs" in stats.to_dict(few)["no_interval"]
    assert interval_label(0.95, []) == "95% bootstrap CI"  # no curves: nothing to explain
    pooled = stats.aggregate({"a": np.arange(8.0).reshape(4, 2)}, reps=50, gamma=None)
    assert np.isfinite(pooled.interval["a"]).all()


@pytest.mark.parametrize("num_resamples", [0, -3, 2.5, True])
def test_bootstrap_rejects_a_bad_resample_count(num_resamples):
    with pytest.raises(ValueError, match="num_resamples must be a positive int"):
        bootstrap_ci(np.ones((3, 2)), lambda x: x.mean(axis=1), num_resamples=num_resamples)


@pytest.mark.parametrize("seed", [-1, 1.5, 2**32])
def test_bootstrap_refuses_a_seed_as_jrl_seeds_do(seed):
    """-1 and 1.5 failed inside NumPy's SeedSequence; 2**32 is refused as every jrl
    seed is (jrl.seeds.check_seed), here and through curve_stats and final_summary."""
    with pytest.raises(ValueError, match=r"seed must be an int in \[0, 2\*\*32\)"):
        bootstrap_ci(np.ones((5, 2)), lambda x: x.mean(axis=1), seed=seed)
    with pytest.raises(ValueError, match=r"seed must be an int in \[0, 2\*\*32\)"):
        final_summary(np.ones(5), seed=seed)


@pytest.mark.parametrize(
    "values",
    [np.zeros(5), np.zeros((2, 3, 4)), np.zeros((0, 4)), np.zeros((3, 0)), [[1.0, np.nan]]],
)
def test_bad_shapes_and_nans_are_rejected(values):
    with pytest.raises(ValueError, match="curves"):
        curve_stats(values)


def test_bad_confidence_is_rejected():
    with pytest.raises(ValueError, match="confidence"):
        curve_stats(np.zeros((3, 2)), confidence=95)


def test_fill_gaps_carries_the_last_value_forward_and_the_first_back():
    values = np.array([[np.nan, 2.0, np.nan, np.nan, 5.0], [1.0, np.nan, 3.0, np.nan, np.nan]])
    np.testing.assert_array_equal(
        fill_gaps(values), [[2.0, 2.0, 2.0, 2.0, 5.0], [1.0, 1.0, 3.0, 3.0, 3.0]]
    )
    assert np.all(np.isnan(fill_gaps(np.full((1, 3), np.nan))))
    # An infinity is not a gap: kept (and carried), so curve checks refuse it.
    np.testing.assert_array_equal(
        fill_gaps([2.0, np.inf, np.nan, 5.0, -np.inf]), [2.0, np.inf, np.inf, 5.0, -np.inf]
    )


def test_smooth_averages_the_entries_in_its_window_from_the_first():
    # Window 4: the first three entries average the 1, 2 and 3 there are (not copies of
    # the first value); a NaN spoils only the windows that hold it.
    np.testing.assert_allclose(smooth([0.0, 10, 10, 10, 10], 4), [0, 5, 20 / 3, 7.5, 10])
    rows = smooth(np.array([[0.0, 0, 0, 9, 9, 9], [1, np.nan, 1, 1, 1, 1]]), 3)
    np.testing.assert_allclose(rows[0], [0, 0, 0, 3, 6, 9])
    np.testing.assert_array_equal(np.isnan(rows[1]), [False, True, True, True, False, False])
    np.testing.assert_array_equal(smooth([1.0, 5.0], 1), [1.0, 5.0])


def test_mean_and_ci_is_a_student_t_interval():
    values = np.array([[1.0, 10.0], [2.0, 10.0], [3.0, 10.0], [4.0, 10.0], [5.0, 10.0]])
    mean, half = mean_and_ci(values)
    np.testing.assert_allclose(mean, [3.0, 10.0])
    # t_{0.975, 4} = 2.776 (1.96 would cover ~88% with 5 seeds); std 1.581, sqrt(5).
    np.testing.assert_allclose(half, [2.7764451 * np.sqrt(2.5) / np.sqrt(5), 0.0], rtol=1e-6)
    assert mean_and_ci(values[:1])[1].tolist() == [0.0, 0.0]


def test_final_summary_is_json_ready():
    summary = final_summary([1.0, 2.0, 2.5, 3.0, 400.0], num_resamples=200)
    assert summary["mean"] == pytest.approx(81.7)
    assert summary["iqm"] == pytest.approx(2.5)
    assert summary["iqm_ci"][0] <= 2.5 <= summary["iqm_ci"][1]
    json.dumps(summary)
    # One outlier of 20 seeds moves the mean and its band, not the IQM's (see
    # test_the_iqm_band_is_the_iqms_not_the_means for the numbers).
    summary = final_summary([1.0] * 19 + [1000.0], num_resamples=200)
    assert summary["iqm"] == 1.0 and summary["iqm_ci"] == [1.0, 1.0]
    assert summary["mean"] == pytest.approx(50.95) and summary["mean_ci"][1] > 100.0


def test_plot_learning_curves_writes_a_png_and_checks_x(tmp_path):
    rng = np.random.default_rng(2)
    curves = {"a": rng.normal(size=(4, 10)), "b": rng.normal(size=(4, 5))}
    x = {"a": np.arange(10) * 100, "b": np.arange(5) * 200}
    path, stats = plot_learning_curves(
        tmp_path / "c.png",
        curves,
        x=x,
        xlabel="steps",
        ylabel="return",
        title="t",
        hlines={"random": 0.0},
        num_resamples=50,
    )
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert set(stats) == {"a", "b"} and stats["b"].mean.shape == (5,)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.png"]  # no temporary file left
    (tmp_path / "plain").write_text("")
    assert path.stat().st_mode == (tmp_path / "plain").stat().st_mode  # as open() makes it
    (tmp_path / "plain").unlink()
    with pytest.raises(ValueError, match="x for 'a'"):
        plot_learning_curves(
            tmp_path / "d.png", curves, x=np.arange(7), xlabel="", ylabel="", title=""
        )


def _overlaps(a, b) -> bool:
    return a.x0 < b.x1 and b.x0 < a.x1 and a.y0 < b.y1 and b.y0 < a.y1


@pytest.mark.parametrize("num_curves", [12, 30])
def test_more_curves_than_a_palette_get_their_own_colours_and_a_legend_outside(
    tmp_path, saved_figures, num_curves
):
    """matplotlib's cycle repeats after 10 colours: a 4 x 3 grid had pairs of curves in one
    colour, and a 125-point grid's legend covered the left panel, cut off at ~21."""
    figures = saved_figures(reporting, "save_figure")
    rng = np.random.default_rng(0)
    curves = {f"grid point {i}": rng.normal(size=(3, 6)) for i in range(num_curves)}
    plot_learning_curves(
        tmp_path / "c.png", curves, xlabel="steps", ylabel="return", title="t", num_resamples=20
    )
    (fig,) = figures
    for ax in fig.axes:
        colors = [tuple(np.round(to_rgba(line.get_color()), 6)) for line in ax.get_lines()]
        assert len(colors) == num_curves and len(set(colors)) == num_curves
    (legend,) = fig.legends
    assert len(legend.get_texts()) == num_curves
    renderer = FigureCanvasAgg(fig).get_renderer()  # the saved figure is closed
    box = legend.get_window_extent(renderer)
    assert not any(_overlaps(box, ax.get_window_extent(renderer)) for ax in fig.axes)


def test_write_json_is_atomic_and_takes_arrays(tmp_path):
    path = write_json(tmp_path / "r" / "results.json", {"a": np.arange(3), "b": np.float32(1.5)})
    assert json.loads(path.read_text()) == {"a": [0, 1, 2], "b": 1.5}
    assert [p.name for p in path.parent.iterdir()] == ["results.json"]
    # Keys JSON has no form for (numpy scalars, tuples) are written as their str.
    path = write_json(tmp_path / "keys.json", {np.float32(0.5): 1, ("a", 1): 2, 3: 4})
    assert json.loads(path.read_text()) == {"0.5": 1, "('a', 1)": 2, "3": 4}
    # Strict JSON: NaN and infinities (a mean over no episodes) are written as null.
    path = write_json(
        tmp_path / "nan.json", {"x": float("nan"), "y": np.array([1.0, np.inf]), "z": [-np.inf]}
    )
    assert json.loads(path.read_text(), parse_constant=pytest.fail) == {
        "x": None,
        "y": [1.0, None],
        "z": [None],
    }


def test_experiment_summaries_leave_out_a_seed_that_ended_no_episode(capsys):
    from experiments.seed_runs import SeedRuns, learning_curves, summarize

    returns = np.array([[np.nan, 3.0, np.nan, 5.0], [np.nan] * 4, [1.0, np.nan, 2.0, 2.0]])
    runs = SeedRuns(
        timesteps=np.arange(1, 5) * 100,
        returns=returns,
        greedy_returns=np.ones((3, 2)),
        greedy_lengths=np.ones((3, 2), np.int32),
        final_params=None,
        compile_s=1.0,
        compile_cpu_s=1.0,
        run_s=1.0,
        steps_per_s=1.0,
    )
    summary = summarize(runs, num_seeds=3, final_fraction=0.25)
    assert summary["seeds_without_episodes"] == [1]
    assert summary["final_return"]["per_seed"] == [5.0, 2.0]
    curves, timesteps, window = learning_curves(runs, points=4)
    # From row 1, the first by which both kept seeds had ended an episode: row 0 of
    # seed 0 would otherwise show the return of its episode that ends in row 1.
    np.testing.assert_array_equal(curves, [[3.0, 3.0, 5.0], [1.0, 2.0, 2.0]])
    np.testing.assert_array_equal(timesteps, [200, 300, 400])
    assert "seeds [1] ended no episode" in capsys.readouterr().err
    with pytest.raises(ValueError, match="no seed ended an episode"):
        summarize(runs._replace(returns=np.full((3, 4), np.nan)), num_seeds=3)
    # Its greedy episodes still count: only a diverged seed's are left out.
    greedy = summarize(runs._replace(greedy_returns=np.arange(6.0).reshape(3, 2)), num_seeds=3)
    assert greedy["greedy_return"]["per_seed"] == [0.5, 2.5, 4.5]


def test_the_final_return_window_rounds_and_skips_rows_without_an_episode():
    """5% of PureJaxRL PPO's 976 rows is 48.8: 49 rows, not 48; a row where no episode
    ended is no return of 0."""
    from experiments.seed_runs import final_returns, final_rows, return_label

    assert (final_rows(976, 0.05), final_rows(30, 0.05), final_rows(10, 0.05)) == (49, 2, 1)
    assert final_returns(np.array([[1.0, np.nan, 3.0, 5.0]]), 0.75).tolist() == [4.0]
    # The curves' label names the smoothed ones only (a window of one row is none).
    assert return_label({"PPO": 1, "DQN": 3}) == "episode return (trailing mean over rows: DQN 3)"


def test_experiment_summaries_leave_out_a_seed_whose_learning_diverged(capsys):
    """A diverged run plays its NaN policy (action 0) and logs returns like a poor
    seed's: the experiment scripts counted it in their final and greedy returns without
    a word, where jrl train, eval and plot leave it out."""
    from experiments.seed_runs import SeedRuns, learning_curves, summarize

    runs = SeedRuns(
        timesteps=np.arange(1, 5) * 100,
        returns=np.array([[1.0, 2.0, 3.0, 4.0], [9.0, 9.0, 9.0, 9.0], [2.0, 3.0, 4.0, 6.0]]),
        greedy_returns=np.array([[10.0, 20.0], [9.0, 9.0], [30.0, 40.0]]),
        greedy_lengths=np.ones((3, 2), np.int32),
        final_params=None, compile_s=1.0, compile_cpu_s=1.0, run_s=1.0, steps_per_s=1.0,
        finite=np.array([True, False, True]),
    )  # fmt: skip
    summary = summarize(runs, num_seeds=3, final_fraction=0.25)
    assert summary["diverged_seeds"] == [1] and summary["seeds_without_episodes"] == []
    assert summary["final_return"]["per_seed"] == [4.0, 6.0]
    assert summary["greedy_return"]["per_seed"] == [15.0, 35.0]
    curves, _, _ = learning_curves(runs, points=4)
    np.testing.assert_array_equal(curves, [[1.0, 2.0, 3.0, 4.0], [2.0, 3.0, 4.0, 6.0]])
    assert "seeds [1] diverged" in capsys.readouterr().err
    with pytest.raises(ValueError, match="learning diverged"):
        summarize(runs._replace(finite=np.zeros(3, bool)), num_seeds=3)


def test_experiment_final_return_says_its_window_and_which_seeds_fell_back():
    from experiments.seed_runs import SeedRuns, summarize

    # 8 rows, last 25% = 2 rows (steps 600-800); seed 1 ended no episode in them.
    returns = np.array([[1.0] * 6 + [4.0, 6.0], [2.0, 3.0] + [np.nan] * 6])
    runs = SeedRuns(np.arange(1, 9) * 100, returns, np.ones((2, 1)), np.ones((2, 1)), None,
                    1.0, 1.0, 1.0, 1.0)  # fmt: skip
    final = summarize(runs, num_seeds=2, final_fraction=0.25)["final_return"]
    assert final["per_seed"] == [5.0, 3.0]
    assert final["seeds_before_window"] == [1]
    assert final["definition"].startswith("mean over the last 2 of 8 logged rows")
    assert "steps 600-800" in final["definition"]


def test_plot_learning_curves_bands_are_at_the_confidence_asked(tmp_path):
    from jrl.reporting import curve_stats, plot_learning_curves

    values = np.random.default_rng(0).normal(size=(10, 3))
    _, returned = plot_learning_curves(
        tmp_path / "c.png",
        {"a": values},
        xlabel="",
        ylabel="",
        title="",
        confidence=0.5,
        num_resamples=200,
    )
    expected = curve_stats(values, 200, 0.5)
    for field in ("mean_low", "mean_high", "iqm_low", "iqm_high"):
        np.testing.assert_array_equal(getattr(returned["a"], field), getattr(expected, field))


def test_final_summary_min_and_max_are_over_all_seeds():
    from jrl.reporting import final_summary

    summary = final_summary([9.0, 1.0, 5.0], num_resamples=20)
    assert (summary["min"], summary["max"]) == (1.0, 9.0)
    assert summary["per_seed"] == [9.0, 1.0, 5.0] and summary["confidence"] == 0.95


def test_experiment_greedy_return_is_per_seed_over_its_episodes():
    from experiments.seed_runs import SeedRuns, summarize

    greedy = np.array([[1.0, 3.0], [10.0, 10.0], [5.0, 7.0]])  # [3 seeds, 2 episodes]
    runs = SeedRuns(
        np.arange(1, 5) * 100,
        np.ones((3, 4)),
        greedy,
        np.ones((3, 2), np.int32),
        None,
        1.0,
        1.0,
        1.0,
        1.0,
    )
    summary = summarize(runs, num_seeds=3)["greedy_return"]
    assert summary["per_seed"] == [2.0, 10.0, 6.0]
    assert summary["mean"] == pytest.approx(6.0) and summary["iqm"] == pytest.approx(6.0)
    assert summary["definition"].endswith("mean of 2 episodes per seed")


def test_experiment_final_return_is_over_the_last_5_percent_by_default():
    from experiments.seed_runs import SeedRuns, summarize

    returns = np.arange(100.0)[None].repeat(2, axis=0)  # 100 rows, row r returned r
    runs = SeedRuns(
        np.arange(1, 101) * 10, returns, np.ones((2, 1)), np.ones((2, 1)), None, 1.0, 1.0, 1.0, 1.0
    )
    final = summarize(runs, num_seeds=2)["final_return"]
    assert final["per_seed"] == [97.0, 97.0]  # rows 95..99
    assert final["definition"].startswith("mean over the last 5 of 100 logged rows (the last 5%")


def test_episodes_by_step_counts_an_episode_from_the_step_it_ends():
    from jrl.reporting import episodes_by_step

    # Episodes of 3 and 2 steps end at steps 3 and 5; the zero is no episode.
    np.testing.assert_array_equal(episodes_by_step([3, 2, 0], 6), [0, 0, 1, 1, 2, 2])
    np.testing.assert_array_equal(
        episodes_by_step([[1, 1, 0], [2, 0, 0]], 3), [[1, 2, 2], [0, 1, 1]]
    )


def test_plots_leave_the_backend_and_pyplots_figures_as_they_were(tmp_path):
    """A notebook's inline plots: jrl's plots had switched the whole process to Agg
    (``matplotlib.use``), and a call refused half way, or a save in an unknown format,
    left its figure open in pyplot."""
    import matplotlib
    import matplotlib.pyplot as plt

    from jrl import stats
    from jrl.reporting import plot_curves

    before = matplotlib.get_backend()
    open_before = plt.get_fignums()
    matplotlib.use("svg")  # stands for a notebook's backend
    try:
        rng = np.random.default_rng(0)
        curves = {"a": rng.normal(size=(3, 6)), "b": rng.normal(size=(3, 6))}
        plot_learning_curves(tmp_path / "c.png", curves, xlabel="x", ylabel="y", title="t",
                             num_resamples=20)  # fmt: skip
        plot_curves(tmp_path / "d.png", curves, xlabel="x", ylabel="y", title="t")
        scores = {name: values[:, :1] for name, values in curves.items()}
        paths = stats.write_report(tmp_path / "report", scores, curves=dict(
            (name, values[:, None, :]) for name, values in curves.items()), reps=20)  # fmt: skip
        assert all(path.stat().st_size > 0 for path in paths.values())
        assert matplotlib.get_backend() == "svg"
        with pytest.raises(ValueError, match="x for 'a' has shape"):
            plot_learning_curves(tmp_path / "e.png", curves, x=np.arange(5), xlabel="x",
                                 ylabel="y", title="t", num_resamples=20)  # fmt: skip
        with pytest.raises(ValueError, match="xyz"):
            plot_curves(tmp_path / "f.xyz", curves, xlabel="x", ylabel="y", title="t")
        assert plt.get_fignums() == open_before
        assert not (tmp_path / "f.xyz").exists()
    finally:
        matplotlib.use(before)


def test_curve_stats_and_final_summary_bands_are_at_the_confidence_asked():
    values = np.random.default_rng(0).normal(size=(10, 3))
    got = reporting.curve_stats(values, 200, 0.5, seed=1)
    low, high = reporting.bootstrap_ci(values, lambda x: reporting.iqm(x, axis=1), 200, 0.5, 1)
    np.testing.assert_array_equal(got.iqm_low, low)
    np.testing.assert_array_equal(got.iqm_high, high)
    summary = reporting.final_summary(values[:, 0], 200, confidence=0.5, seed=1)
    half = reporting.curve_stats(values[:, :1], 200, 0.5, seed=1)
    assert summary["mean_ci"] == [half.mean_low[0], half.mean_high[0]]
    assert summary["iqm_ci"] == [half.iqm_low[0], half.iqm_high[0]]


def test_a_single_step_error_bar_spans_its_interval(tmp_path, saved_figures):
    """A curve of one point is an error bar: from its interval's low to its high, not
    mirrored about the point (skewed values give an asymmetric interval)."""
    figures = saved_figures(stats, "_save_figure")
    values = np.array([0.0, 0, 0, 0, 1, 1, 2, 3, 9, 20])[:, None, None]  # skewed: asymmetric
    curves = stats.iqm_curves({"a": values}, steps=[7], reps=200)
    stats.plot_iqm_curves(curves, tmp_path / "c.png")
    (ax,) = figures[0].axes
    (bars,) = [c for c in ax.collections if c.__class__.__name__ == "LineCollection"]
    (segment,) = bars.get_segments()
    low, high = curves.interval["a"][:, 0]
    assert low < curves.point["a"][0] < high and not np.isclose(
        high - curves.point["a"][0], curves.point["a"][0] - low
    )
    np.testing.assert_allclose(sorted(segment[:, 1]), [low, high])
    # plot_learning_curves: the same for a curve of one point
    rfigs = saved_figures(reporting, "save_figure")
    _, got = reporting.plot_learning_curves(
        tmp_path / "l.png", {"a": values[:, 0]}, xlabel="", ylabel="", title="", num_resamples=200
    )
    axes = rfigs[0].axes
    for ax, (low, high) in zip(
        axes,
        [(got["a"].mean_low, got["a"].mean_high), (got["a"].iqm_low, got["a"].iqm_high)],
        strict=True,
    ):
        (bars,) = [c for c in ax.collections if c.__class__.__name__ == "LineCollection"]
        (segment,) = bars.get_segments()
        np.testing.assert_allclose(sorted(segment[:, 1]), [low[0], high[0]])


def test_learning_curve_figure_axes_titles_and_legend(tmp_path, saved_figures):
    """Steps 1..T by default, each panel the statistic its title names at the confidence
    asked, and n the number of seeds."""
    figures = saved_figures(reporting, "save_figure")
    values = np.random.default_rng(0).normal(size=(6, 4))
    reporting.plot_learning_curves(
        tmp_path / "c.png",
        {"a": values},
        xlabel="",
        ylabel="",
        title="",
        confidence=0.8,
        num_resamples=20,
    )
    left, right = figures[0].axes
    assert left.get_title().startswith("mean over seeds, 80% bootstrap CI")
    assert right.get_title().startswith("IQM over seeds")
    np.testing.assert_array_equal(left.get_lines()[0].get_xdata(), [1, 2, 3, 4])
    assert [t.get_text() for t in left.get_legend().get_texts()] == ["a (n=6)"]
    reporting.plot_curves(tmp_path / "d.png", {"a": values}, xlabel="", ylabel="", title="")
    (ax,) = figures[1].axes
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["a (n=6)"]


@pytest.mark.parametrize(
    "call, said",
    [
        (lambda: reporting.mean_and_ci(np.ones((5, 3)), confidence=95), r"\(0.95, not 95\)"),
        (lambda: reporting.mean_and_ci(np.ones((5, 3)), confidence=0), "confidence must be"),
        (lambda: reporting.interval_label(95, [10]), r"\(0.95, not 95\)"),
        (lambda: reporting.smooth(np.ones(5), -3), "window must be an int >= 1, got -3"),
        (lambda: reporting.smooth(np.ones(5), 2.5), "window must be an int >= 1, got 2.5"),
        (lambda: reporting.episodes_by_step([[3, -1]], 5), "episode lengths must be >= 0"),
        (lambda: reporting.episodes_by_step([[3, 1]], -1), "num_steps must be an int >= 0"),
        (lambda: reporting.distinct_colors(-1), "n must be an int >= 0, got -1"),
    ],
)
def test_reporting_helpers_refuse_values_they_would_misread(call, said):
    """Each ran: a confidence of 95 gave NaN bands ("9500% bootstrap CI"), 0 bands of
    width 0; a negative window returned the values unsmoothed; negative lengths and
    steps miscounted; distinct_colors(-1) gave 9 colours."""
    with pytest.raises(ValueError, match=said):
        call()


@pytest.mark.parametrize(
    "call, said",
    [
        (lambda: reporting.fill_gaps(3.0), r"fill_gaps fills float\[..., T\] .* got shape \(\)"),
        (lambda: reporting.fill_gaps(np.zeros((2, 0))), r"along its last axis, got shape \(2, 0\)"),
        (lambda: reporting.final_summary(5.0), r"one number per seed, float\[S\] .* shape \(\)"),
        (lambda: reporting.final_summary([]), r"with S >= 1, got shape \(0,\)"),
        (lambda: reporting.final_summary(np.ones((5, 3))), r"their last step: curves\[:, -1\]"),
        (lambda: reporting.final_summary([1.0, np.nan]), "final holds NaN or inf: leave diverged"),
        (
            lambda: reporting.mean_and_ci(np.ones((5, 3)), axis=5),
            r"axis must be an int in \[-2, 2\)",
        ),
        (
            lambda: reporting.mean_and_ci(np.ones((5, 3)), axis=1.0),
            "for values of shape .* got 1.0",
        ),
        (lambda: reporting.mean_and_ci(3.0), "an axis to reduce .* got the scalar 3.0"),
        (lambda: reporting.mean_and_ci([]), "no entries along axis 0: nothing to average"),
        (lambda: reporting.iqm(np.ones((5, 3)), axis=-3), r"axis must be an int in \[-2, 2\)"),
        (lambda: reporting.iqm(np.ones((0, 3))), "no entries along axis 0"),
        (lambda: reporting.smooth(3.0, 2), "smooth averages along the last axis: .* scalar 3.0"),
    ],
)
def test_reporting_helpers_refuse_shapes_and_axes_they_cannot_read(call, said):
    """Each failed inside NumPy (an IndexError "tuple index out of range", an argmax of
    an empty sequence), or returned NaN for no values; now a ValueError saying what is
    wrong with the input."""
    with pytest.raises(ValueError, match=said):
        call()


def test_interval_labels_name_the_confidence_to_its_last_digit():
    """A 99.9% band is labelled 99.9%, not rounded to a whole "100%"; 0.57 is 57%."""
    assert reporting.interval_label(0.999, [10]) == "99.9% bootstrap CI"
    assert reporting.interval_label(0.57, [10]) == "57% bootstrap CI"
    assert reporting.interval_label(0.95, [10, 3]) == "95% bootstrap CI (none below 5 seeds)"


@pytest.mark.parametrize(
    "call, said",
    [
        (lambda: reporting.episodes_by_step([1.5, 2], 5), "episode lengths must be whole numbers"),
        (
            lambda: reporting.episodes_by_step(3, 5),
            r"got the scalar 3: for one episode, \[length\]",
        ),
        (lambda: reporting.interval_label(0.95, [0]), "each seed count must be an int >= 1, got 0"),
        (lambda: reporting.interval_label(0.95, 5), "seed_counts must be a list of each curve's"),
    ],
)
def test_episode_lengths_and_seed_counts_must_be_counts(call, said):
    """Lengths 1.5 and 2 counted an episode ending at step 3.5; a scalar length was
    taken as one episode; a curve of 0 seeds was labelled "no interval (0 seed...)",
    and a bare count failed with "'int' object is not iterable"."""
    with pytest.raises(ValueError, match=said):
        call()


def test_an_empty_curve_is_smoothed_to_an_empty_curve():
    assert reporting.smooth(np.zeros((2, 0)), 3).shape == (2, 0)  # a broadcast error before


@pytest.mark.parametrize(
    "plot, curves, x, said",
    [
        ("plot_curves", {}, None, "needs at least one curve"),
        ("plot_curves", {"a": [[1.0, np.nan]]}, None, r"\(1, 2\) holding NaN or inf .fill_gaps"),
        ("plot_curves", {"a": [1.0, 2.0]}, None, r"finite float\[seeds, T\], got shape \(2,\)"),
        ("plot_curves", {"a": [[1.0, 2.0]]}, [1, 2, 3], r"x has shape \(3,\)"),
        ("plot_learning_curves", {}, None, "needs at least one curve"),
        ("plot_learning_curves", {"a": [[1.0, 2.0]]}, {"b": [1, 2]}, r"curves \['a'\], x"),
    ],
)
def test_plots_refuse_curves_they_would_draw_wrongly(plot, curves, x, said, tmp_path):
    """plot_curves drew NaN curves (a nearly empty PNG) and no curves (an empty one),
    as did plot_learning_curves with none; its x mapping lacking a label fell back to
    1..T."""
    with pytest.raises(ValueError, match=said):
        getattr(reporting, plot)(tmp_path / "f.png", curves, x=x, xlabel="x", ylabel="y", title="t")
    assert not (tmp_path / "f.png").exists()


def test_a_confidence_of_one_and_the_first_axis_by_its_negative_index():
    """A 100% interval has no finite t quantile (its half-width was inf); axis -ndim is
    as much an axis as 0."""
    with pytest.raises(ValueError, match=r"confidence must be in \(0, 1\)"):
        mean_and_ci(np.ones((5, 3)), confidence=1.0)
    values = np.arange(15.0).reshape(5, 3)
    for got, want in zip(mean_and_ci(values, axis=-2), mean_and_ci(values, axis=0), strict=True):
        np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(iqm(values, axis=-2), iqm(values, axis=0))


def test_curve_stats_draws_the_mean_band_with_the_seed_it_is_given():
    """Both bands are resampled with ``seed``: the IQM's was, the mean's used seed 0."""
    values = np.random.default_rng(3).normal(size=(8, 3))
    mean = lambda x: x.mean(axis=1)  # noqa: E731
    got = curve_stats(values, 200, 0.5, seed=1)
    low, high = bootstrap_ci(values, mean, 200, 0.5, seed=1)
    np.testing.assert_array_equal(got.mean_low, low)
    np.testing.assert_array_equal(got.mean_high, high)
    assert not np.array_equal(got.mean_low, curve_stats(values, 200, 0.5, seed=0).mean_low)


def test_interval_labels_name_every_digit_and_the_range_of_seed_counts():
    assert interval_label(0.9995, [10]) == "99.95% bootstrap CI"  # not "100%"
    # Curves of 1, 4 and 2 seeds: the range is 1-4, and its largest count is plural.
    assert interval_label(0.95, [1, 4, 2]) == "no interval (1-4 seeds; needs 5)"
    assert interval_label(0.95, [2, 2]) == "no interval (2 seeds; needs 5)"


def test_distinct_colors_take_tab10_up_to_10_and_tab20_up_to_20():
    import matplotlib

    tab10 = list(matplotlib.colormaps["tab10"].colors)
    tab20 = list(matplotlib.colormaps["tab20"].colors)
    assert reporting.distinct_colors(10) == tab10
    assert reporting.distinct_colors(11) == tab20[:11]
    assert reporting.distinct_colors(20) == tab20
    assert len(set(reporting.distinct_colors(21))) == 21


def test_ten_curves_keep_their_legend_inside_the_axes(tmp_path, saved_figures):
    figures = saved_figures(reporting, "save_figure")
    rng = np.random.default_rng(0)
    curves = {f"c{i}": rng.normal(size=(3, 4)) for i in range(reporting.LEGEND_INSIDE)}
    plot_learning_curves(
        tmp_path / "c.png", curves, xlabel="", ylabel="", title="", num_resamples=20
    )
    (fig,) = figures
    assert not fig.legends
    assert len(fig.axes[0].get_legend().get_texts()) == reporting.LEGEND_INSIDE


def test_learning_curve_figure_labels_limits_and_reference_lines(tmp_path, saved_figures):
    """The y label on the left panel (the panels share it), the title over both, ylim
    and each reference line with its label on both panels."""
    figures = saved_figures(reporting, "save_figure")
    values = np.random.default_rng(0).normal(size=(6, 4))
    reporting.plot_learning_curves(
        tmp_path / "c.png",
        {"a": values},
        xlabel="steps",
        ylabel="return",
        title="the run",
        hlines={"random": 0.25},
        ylim=(-3.0, 4.0),
        num_resamples=20,
    )
    (fig,) = figures
    left, right = fig.axes
    assert left.get_ylabel() == "return" and fig.get_suptitle() == "the run"
    for ax in (left, right):
        assert ax.get_xlabel() == "steps"
        assert ax.get_ylim() == (-3.0, 4.0)
        assert [list(line.get_ydata()) for line in ax.get_lines()][-1] == [0.25, 0.25]
        assert [text.get_text() for text in ax.texts] == ["random"]


def test_plot_curves_draws_the_mean_and_its_student_t_band(tmp_path, saved_figures):
    """Steps 1..T by default, the mean over seeds and a band of mean -+ the half-width
    of mean_and_ci; ylim and the labels as asked."""
    figures = saved_figures(reporting, "save_figure")
    values = np.random.default_rng(1).normal(size=(5, 4))
    reporting.plot_curves(
        tmp_path / "c.png", {"a": values}, xlabel="x", ylabel="y", title="t", ylim=(-5.0, 5.0)
    )
    (ax,) = figures[0].axes
    mean, half = mean_and_ci(values)
    (line,) = ax.get_lines()
    np.testing.assert_array_equal(line.get_xdata(), [1, 2, 3, 4])
    np.testing.assert_allclose(line.get_ydata(), mean)
    (band,) = ax.collections
    vertices = band.get_paths()[0].vertices
    for step, (low, high) in enumerate(zip(mean - half, mean + half, strict=True), start=1):
        at = vertices[np.isclose(vertices[:, 0], step), 1]
        np.testing.assert_allclose([at.min(), at.max()], [low, high])
    assert ax.get_ylim() == (-5.0, 5.0)
    assert (ax.get_xlabel(), ax.get_ylabel(), ax.get_title()) == ("x", "y", "t")
