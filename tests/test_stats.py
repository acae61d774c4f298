"""Aggregate statistics across runs and tasks (jrl.stats, through rliable)."""

import json

import numpy as np
import pytest

from jrl import reporting, stats

REPS = 200  # enough for the properties below, and the file runs in seconds


def _scores(num_runs, seed=0, tasks=3, mean=1.0):
    return np.random.default_rng(seed).normal(mean, 0.3, (num_runs, tasks))


def _point(result, algorithm, metric):
    return result.point[algorithm][result.metrics.index(metric)]


def _interval(result, algorithm, metric):
    return result.interval[algorithm][:, result.metrics.index(metric)]


def test_aggregates_on_hand_examples():
    # 8 runs of one task, 1..8: the IQM drops the lowest and highest quarter (1, 2 and
    # 7, 8) and averages the rest: (3 + 4 + 5 + 6) / 4.
    one_task = np.arange(1.0, 9.0)[:, None]
    result = stats.aggregate({"a": one_task}, reps=REPS)
    assert _point(result, "a", "IQM") == pytest.approx(4.5)
    assert _point(result, "a", "Mean") == pytest.approx(4.5)
    # Skewed runs, where the IQM and the mean part: sorted 0, 0 | 0, 1, 2, 3 | 50, 100,
    # so the IQM is (0 + 1 + 2 + 3) / 4 = 1.5 and the mean 156 / 8 = 19.5.
    skewed = np.array([100.0, 0.0, 3.0, 0.0, 50.0, 1.0, 0.0, 2.0])[:, None]
    result = stats.aggregate({"s": skewed}, reps=REPS)
    assert _point(result, "s", "IQM") == pytest.approx(1.5)
    assert _point(result, "s", "Mean") == pytest.approx(19.5)
    # One task (a single run directory's seeds): the median of its runs, (1 + 2) / 2.
    # rliable's median over tasks of their means was the mean again (a column that
    # repeated the one before it in every `jrl eval` table).
    assert _point(result, "s", "Median") == pytest.approx(1.5)
    low, high = _interval(result, "s", "Median")
    assert low <= 1.5 <= high
    # Two tasks: mean and median are over the per-task means (2 and 10 here, and 20 for
    # a third), the IQM over all run x task scores; optimality gap with target 5:
    # 5 - mean(min(score, 5)) = 5 - (1 + 2 + 3 + 5 + 5 + 5) / 6 = 1.5.
    two_tasks = np.array([[1.0, 9.0], [2.0, 10.0], [3.0, 11.0]])
    result = stats.aggregate({"b": two_tasks}, reps=REPS, gamma=5.0)
    assert _point(result, "b", "Mean") == pytest.approx(6.0)
    assert _point(result, "b", "Median") == pytest.approx(6.0)
    assert _point(result, "b", "Optimality gap") == pytest.approx(1.5)
    three_tasks = np.array([[1.0, 9.0, 19.0], [2.0, 10.0, 20.0], [3.0, 11.0, 21.0]])
    assert _point(stats.aggregate({"c": three_tasks}, reps=REPS), "c", "Median") == 10.0
    # Every run equal: nothing to resample, the interval is the point.
    constant = stats.aggregate({"d": np.full((5, 2), 3.0)}, reps=REPS)
    np.testing.assert_allclose(constant.interval["d"], np.full((2, 4), [3.0, 3.0, 3.0, 0.0]))
    # Raw returns have no target: gamma=None leaves the gap out, the rest unchanged.
    no_gap = stats.aggregate({"b": two_tasks}, reps=REPS, gamma=None)
    assert no_gap.metrics == ("IQM", "Mean", "Median")
    np.testing.assert_array_equal(no_gap.point["b"], result.point["b"][:3])
    assert "Optimality gap" not in stats.format_table(no_gap)


def test_intervals_contain_the_point_and_shrink_with_more_runs():
    result = stats.aggregate({"few": _scores(10), "many": _scores(200, seed=1)}, reps=REPS)
    for algorithm in ("few", "many"):
        low, high = result.interval[algorithm]
        assert np.all(low <= result.point[algorithm]) and np.all(result.point[algorithm] <= high)
    width = {a: np.diff(_interval(result, a, "IQM"))[0] for a in ("few", "many")}
    assert width["many"] < width["few"] / 2  # about sqrt(20) narrower
    assert result.num_runs == {"few": 10, "many": 200} and result.num_tasks == 3
    # A wider confidence level gives a wider interval.
    wide = stats.aggregate({"few": _scores(10)}, reps=REPS, confidence=0.99)
    assert np.diff(_interval(wide, "few", "IQM"))[0] > width["few"]


def test_the_seed_fixes_the_numbers_and_algorithms_do_not_disturb_each_other():
    scores = {"a": _scores(12), "b": _scores(7, seed=1)}
    first = stats.aggregate(scores, reps=REPS, seed=3)
    again = stats.aggregate(scores, reps=REPS, seed=3)
    for algorithm in scores:
        np.testing.assert_array_equal(first.interval[algorithm], again.interval[algorithm])
    other = stats.aggregate(scores, reps=REPS, seed=4)
    assert not np.array_equal(first.interval["a"], other.interval["a"])
    # Each algorithm has its own seeded bootstrap: "b" alone gets the same interval.
    alone = stats.aggregate({"b": scores["b"]}, reps=REPS, seed=3)
    np.testing.assert_array_equal(alone.interval["b"], first.interval["b"])
    # rliable resamples with NumPy's global generator; its state is put back afterwards.
    np.random.seed(5)  # noqa: NPY002
    expected = np.random.rand()  # noqa: NPY002
    np.random.seed(5)  # noqa: NPY002
    stats.aggregate(scores, reps=REPS, seed=3)
    assert np.random.rand() == expected  # noqa: NPY002


def test_one_run_has_no_interval():
    """Every bootstrap resample of one run is that run: rliable's interval has zero
    width, a certainty one seed cannot give (jrl eval of a one-seed run printed it)."""
    scores = {"one": np.array([[3.0, 4.0]]), "three": np.array([[1.0, 2.0], [2, 3], [5, 6]])}
    aggregates = stats.aggregate(scores, reps=200, gamma=None)
    assert np.isnan(aggregates.interval["one"]).all()
    assert np.isfinite(aggregates.interval["three"]).all()
    assert np.all(aggregates.interval["three"][0] < aggregates.interval["three"][1])
    assert "3.5 [one run: no interval]" in stats.format_table(aggregates)
    pairs = [("one", "three"), ("three", "one")]  # too few runs on either side
    improvement = stats.probability_of_improvement(scores, pairs, reps=100)
    for pair in pairs:
        assert np.isnan(improvement.interval[pair]).all(), pair


def test_table_and_json_hold_every_algorithm():
    scores = {"ppo": _scores(10), "dqn": _scores(6, seed=1, mean=0.5), "q learning": _scores(4)}
    result = stats.aggregate(scores, reps=REPS)
    markdown = stats.format_table(result)
    plain = stats.format_table(result, "plain")
    lines = markdown.splitlines()
    assert lines[0] == "| algorithm | runs | IQM | Mean | Median | Optimality gap |"
    for algorithm, runs in (("ppo", 10), ("dqn", 6), ("q learning", 4)):
        assert any(line.startswith(f"| {algorithm} | {runs} | ") for line in lines)
        assert any(line.startswith(algorithm) for line in plain.splitlines())
    iqm = _point(result, "dqn", "IQM")
    low, high = _interval(result, "dqn", "IQM")
    assert f"{iqm:.4g} [{low:.4g}, {high:.4g}]" in markdown
    as_dict = json.loads(json.dumps(stats.to_dict(result)))
    assert list(as_dict["algorithms"]) == ["ppo", "dqn", "q learning"]
    assert as_dict["algorithms"]["dqn"]["IQM"] == {
        "point": pytest.approx(iqm),
        "low": pytest.approx(low),
        "high": pytest.approx(high),
    }
    assert as_dict["reps"] == REPS and as_dict["confidence"] == 0.95
    with pytest.raises(ValueError, match="unknown table format 'html'"):
        stats.format_table(result, "html")


@pytest.mark.parametrize("digits", [-1, 0, 2.5, "3", True])
def test_table_digits_must_be_a_count_of_significant_digits(digits):
    """digits=-1 (and True, 2.5) failed in Python's format spec ("Format specifier
    missing precision"); 0 printed one digit and "3" three, as if they were right."""
    result = stats.aggregate({"a": _scores(6)}, reps=REPS)
    with pytest.raises(ValueError, match=f"digits must be an int >= 1, got {digits!r}"):
        stats.format_table(result, digits=digits)
    with pytest.raises(TypeError, match="format_table takes the AggregateStats of aggregate"):
        stats.format_table(stats.to_dict(result))  # an AttributeError ('metrics') before


def test_profiles_and_iqm_curves():
    scores = {"a": np.arange(1.0, 9.0)[:, None], "b": np.arange(1.0, 9.0)[:, None] + 2}
    profiles = stats.performance_profiles(scores, taus=[0.0, 4.0, 4.5, 100.0], reps=REPS)
    # The fraction strictly above tau: at tau 4.0, 5..8 of 1..8 (a score equal to tau
    # is not above it; counting it would give 5 / 8).
    np.testing.assert_allclose(profiles.point["a"], [1.0, 0.5, 0.5, 0.0])
    np.testing.assert_allclose(profiles.point["b"], [1.0, 0.75, 0.75, 0.0])
    low, high = profiles.interval["a"]
    assert profiles.interval["a"].shape == (2, 4)
    # Every resample of 1..8 is above 0 and below 100: those bands have no width.
    assert low[0] == high[0] == 1.0 and low[3] == high[3] == 0.0
    # At tau 4.0 and 4.5 a resample's fraction is Binomial(8, 1/2) / 8, whose 2.5% and
    # 97.5% quantiles are 1/8 and 7/8 (P(X <= 0) = 1/256, P(X <= 1) = 9/256); 200
    # resamples land within 1/8 of them: a band around the point, not on it.
    for i in (1, 2):
        assert 0.125 <= low[i] <= 0.25 and 0.75 <= high[i] <= 0.875
        assert low[i] < profiles.point["a"][i] < high[i]
    # A curve whose step t holds 1, ..., 7, 100 (plus t): the IQM at step t cuts 1, 2 and
    # 7, 100, leaving (3 + 4 + 5 + 6) / 4 + t = 4.5 + t (the mean is 128 / 8 + t = 16 + t).
    runs = np.array([1.0, 2, 3, 4, 5, 6, 7, 100])
    curve = runs[:, None, None] + np.arange(5.0)
    curves = stats.iqm_curves({"a": curve}, steps=np.arange(5) * 100, reps=REPS)
    np.testing.assert_allclose(curves.point["a"], 4.5 + np.arange(5))
    low, high = curves.interval["a"]
    assert np.all(low <= curves.point["a"]) and np.all(curves.point["a"] <= high)
    with pytest.raises(ValueError, match=r"steps must be shaped \(5,\)"):
        stats.iqm_curves({"a": curve}, steps=[0, 1], reps=REPS)


def test_report_writes_table_json_and_pngs(tmp_path):
    scores = {"ppo": _scores(8), "dqn": _scores(5, seed=1, mean=0.6)}
    rng = np.random.default_rng(2)
    curves = {name: rng.normal(size=(n, 3, 6)).cumsum(-1) for name, n in (("ppo", 8), ("dqn", 5))}
    paths = stats.write_report(tmp_path / "eval", scores, curves, reps=REPS)
    assert set(paths) == {"json", "table", "aggregates", "profiles", "curves"}
    for name in ("aggregates", "profiles", "curves"):
        data = paths[name].read_bytes()
        assert len(data) > 1000 and data.startswith(b"\x89PNG\r\n\x1a\n")
    assert "| dqn | 5 |" in paths["table"].read_text()
    assert set(json.loads(paths["json"].read_text())["algorithms"]) == {"ppo", "dqn"}
    assert sorted(p.name for p in (tmp_path / "eval").iterdir()) == [
        "aggregates.json",
        "aggregates.md",
        "aggregates.png",
        "iqm_curves.png",
        "performance_profiles.png",
    ]  # no temporary files left behind
    plain = tmp_path / "plain.txt"
    plain.write_text("")  # the mode open() gives: the report is as readable as that
    assert {p.stat().st_mode for p in paths.values()} == {plain.stat().st_mode}


@pytest.mark.parametrize(
    "scores, message",
    [
        ({}, r"non-empty dict \{algorithm: array \(num_runs, num_tasks\)\}"),
        ([np.ones((3, 2))], "non-empty dict"),
        (
            {"a": np.ones(5)},
            r"scores\['a'\] must be shaped \(num_runs, num_tasks\), got shape "
            r"\(5,\); for one task add an axis",
        ),  # fmt: skip
        ({"a": np.ones((2, 3, 4))}, r"scores\['a'\] must be shaped \(num_runs, num_tasks\)"),
        ({"a": np.ones((0, 3))}, "no empty axis"),
        ({"a": np.array([[1.0, np.nan]])}, r"scores\['a'\] has 1 non-finite"),
        ({"a": np.ones((3, 2)), "b": np.ones((3, 4))}, "same num_tasks.*'a': \\(2,\\)"),
    ],
)
def test_bad_scores_are_rejected_with_a_clear_message(scores, message):
    with pytest.raises(ValueError, match=message):
        stats.aggregate(scores, reps=REPS)


def test_bad_curves_and_settings_are_rejected():
    with pytest.raises(ValueError, match=r"curves\['a'\] must be shaped \(num_runs, num_tasks, "):
        stats.iqm_curves({"a": np.ones((3, 2))})
    with pytest.raises(ValueError, match=r"same \(num_tasks, num_steps\)"):
        stats.iqm_curves({"a": np.ones((3, 2, 5)), "b": np.ones((3, 2, 6))})
    with pytest.raises(ValueError, match="reps must be a positive int"):
        stats.aggregate({"a": np.ones((3, 2))}, reps=0)
    with pytest.raises(ValueError, match=r"confidence must be in \(0, 1\)"):
        stats.aggregate({"a": np.ones((3, 2))}, confidence=95)


def test_probability_of_improvement_on_a_hand_example_and_against_mann_whitney():
    # One task. x = 1, 2, 3 against y = 2, 2, 0: x wins 1 + (0.5 + 0.5 + 1) + 3 of the
    # 9 pairs (ties count a half) = 6 / 9.
    x, y = np.array([[1.0], [2.0], [3.0]]), np.array([[2.0], [2.0], [0.0]])
    result = stats.probability_of_improvement({"x": x, "y": y}, [("x", "y"), ("y", "x")], REPS)
    assert result.point[("x", "y")] == pytest.approx(2 / 3)
    assert result.point[("y", "x")] == pytest.approx(1 / 3)
    # Three tasks, 10 runs against 7: the mean over tasks of U / (n_a n_b).
    from scipy.stats import mannwhitneyu

    a, b = _scores(10, seed=1, mean=1.2), _scores(7, seed=2)
    expected = np.mean([mannwhitneyu(a[:, t], b[:, t]).statistic / 70 for t in range(3)])
    result = stats.probability_of_improvement({"a": a, "b": b}, [("a", "b")], REPS, seed=3)
    assert result.point[("a", "b")] == pytest.approx(expected)
    low, high = result.interval[("a", "b")]
    assert 0 <= low < expected < high <= 1
    again = stats.probability_of_improvement({"a": a, "b": b}, [("a", "b")], REPS, seed=3)
    np.testing.assert_array_equal(again.interval[("a", "b")], result.interval[("a", "b")])
    with pytest.raises(ValueError, match="two algorithms of scores"):
        stats.probability_of_improvement({"a": a, "b": b}, [("a", "c")])


def test_iqm_curves_pool_runs_and_tasks_as_aggregate_does():
    # 4 runs x 2 tasks: 0,1,2,3 and 10,20,30,40. The IQM over all 8 run x task scores
    # cuts 0, 1 and 30, 40: (2 + 3 + 10 + 20) / 4 = 8.75 (per-task IQMs averaged: 13.25;
    # a 20% trim: 11).
    scores = np.array([[0.0, 10], [1, 20], [2, 30], [3, 40]])
    curves = stats.iqm_curves({"a": np.stack([scores, scores + 1], axis=-1)}, reps=50)
    np.testing.assert_allclose(curves.point["a"], [8.75, 9.75])
    aggregate = stats.aggregate({"a": scores}, reps=50, gamma=None)
    assert aggregate.point["a"][aggregate.metrics.index("IQM")] == pytest.approx(8.75)


def test_iqm_and_its_intervals_are_rliables_to_the_bit():
    """jrl's IQM skips scipy's checks (the bootstrap's cost); its numbers are rliable's
    aggregate_iqm (scipy.stats.trim_mean) exactly, at every count of runs x tasks (each
    cut floor(n / 4)), in the point and in every resample's interval."""
    import scipy.stats
    from rliable import library, metrics

    rng = np.random.default_rng(0)
    for runs, tasks in [(1, 1), (2, 1), (3, 1), (4, 1), (5, 1), (7, 1), (3, 2), (5, 3), (9, 4)]:
        scores = rng.normal(size=(runs, tasks)) * 10.0 ** rng.integers(-3, 4, size=(runs, tasks))
        ours = stats.aggregate({"a": scores}, reps=REPS, seed=3, gamma=None)
        column = ours.metrics.index("IQM")
        assert ours.point["a"][column] == metrics.aggregate_iqm(scores), (runs, tasks)
        if runs > 1 and (tasks > 1 or runs >= reporting.MIN_SEEDS_FOR_INTERVAL):
            # rliable resamples from NumPy's global generator, as jrl.stats seeds it
            state = np.random.get_state()  # noqa: NPY002
            np.random.seed(3)  # noqa: NPY002
            _, theirs = library.get_interval_estimates(
                {"a": scores}, lambda v: np.array([metrics.aggregate_iqm(v)]), reps=REPS
            )
            np.random.set_state(state)  # noqa: NPY002
            np.testing.assert_array_equal(ours.interval["a"][:, column], theirs["a"][:, 0])
        curves = np.stack([scores, -scores, scores**2], axis=-1)
        # every step's IQM in one call along the first axis, as trim_mean(x, 0.25) does
        expected = scipy.stats.trim_mean(curves.reshape(-1, 3), 0.25)
        np.testing.assert_allclose(expected, [metrics.aggregate_iqm(c) for c in curves.T])
        np.testing.assert_array_equal(stats.iqm_curves({"a": curves}, reps=2).point["a"], expected)


def test_default_taus_span_every_algorithms_scores():
    scores = {"a": np.array([[2.0], [3.0]]), "b": np.array([[-1.0], [5.0]])}
    profiles = stats.performance_profiles(scores, reps=20)
    assert profiles.taus.shape == (101,)
    assert (profiles.taus[0], profiles.taus[-1]) == (-1.0, 5.0)
    # At the lowest tau, b's lower run (-1) is not above it: half b's runs are.
    assert profiles.point["b"][0] == 0.5 and profiles.point["a"][0] == 1.0


def test_report_json_is_the_aggregate_at_the_seed_given(tmp_path):
    rng = np.random.default_rng(0)
    scores = {"a": rng.normal(size=(6, 2)), "b": rng.normal(size=(4, 2))}
    paths = stats.write_report(tmp_path, scores, reps=100, seed=5, confidence=0.9, gamma=None)
    written = json.loads(paths["json"].read_text())
    assert (written["seed"], written["reps"], written["confidence"]) == (5, 100, 0.9)
    expected = stats.to_dict(stats.aggregate(scores, reps=100, seed=5, confidence=0.9, gamma=None))
    assert written == json.loads(json.dumps(expected))


def test_a_report_of_many_algorithms_gives_each_its_colour_and_its_legend_room(
    tmp_path, saved_figures
):
    """seaborn's colorblind palette has 10 colours and cycles: a 12-point grid's eval
    report drew points 0 and 10 alike, in a legend inside the axes over the profiles."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.colors import to_rgba

    figures = saved_figures(stats, "_save_figure")
    rng = np.random.default_rng(0)
    scores = {f"grid_point_{g}": rng.normal(g, 1.0, size=(3, 1)) for g in range(12)}
    profiles = stats.performance_profiles(scores, reps=20)
    stats.plot_performance_profiles(profiles, tmp_path / "profiles.png")
    (fig,) = figures
    (ax,) = fig.axes
    legend = ax.get_legend()
    colors = {tuple(np.round(to_rgba(h.get_color()), 6)) for h in legend.legend_handles}
    assert len(legend.get_texts()) == 12 and len(colors) == 12
    renderer = FigureCanvasAgg(fig).get_renderer()
    box, inside = legend.get_window_extent(renderer), ax.get_window_extent(renderer)
    assert box.x0 >= inside.x1  # beside the axes, not over the curves


def test_the_aggregates_figure_names_an_algorithm_without_an_interval(tmp_path, saved_figures):
    """Three runs of one task give no interval: rliable's figure drew that algorithm's
    point as a bare tick, read as an interval of no width (a certain result)."""
    figures = saved_figures(stats, "_save_figure")
    scores = {"ppo": np.array([[1.0], [2.0], [3.0]]), "dqn": np.arange(8.0).reshape(8, 1)}
    aggregates = stats.aggregate(scores, reps=50)
    stats.plot_aggregates(aggregates, tmp_path / "aggregates.png")
    (fig,) = figures
    labels = {text.get_text() for text in fig.axes[0].get_yticklabels()}
    assert labels == {"ppo (3 runs: no interval)", "dqn"}
    assert "[3 runs: no interval]" in stats.format_table(aggregates)


def test_json_holds_each_metrics_own_interval_and_the_runs():
    """aggregates.json: each metric its own interval (not the IQM's), each algorithm its
    own number of runs, the optimality gap the target it was computed at."""
    rng = np.random.default_rng(0)
    scores = {"a": rng.normal(size=(6, 2)), "b": rng.normal(1.0, 1.0, size=(4, 2))}
    result = stats.aggregate(scores, reps=50, gamma=2.0)
    as_dict = stats.to_dict(result)
    assert as_dict["optimality_gap_target"] == 2.0 and as_dict["num_tasks"] == 2
    for algorithm in scores:
        entry = as_dict["algorithms"][algorithm]
        assert entry["num_runs"] == scores[algorithm].shape[0]
        for m, metric in enumerate(result.metrics):
            assert entry[metric] == {
                "point": result.point[algorithm][m],
                "low": result.interval[algorithm][0, m],
                "high": result.interval[algorithm][1, m],
            }


def test_five_runs_of_one_task_get_an_interval_as_five_seeds_do():
    """MIN_SEEDS_FOR_INTERVAL runs are enough, in jrl eval's aggregates as in curves."""
    result = stats.aggregate({"a": np.arange(5.0)[:, None]}, reps=50, gamma=None)
    assert np.isfinite(result.interval["a"]).all()
    assert np.isfinite(reporting.final_summary(np.arange(5.0), num_resamples=50)["mean_ci"]).all()


def test_iqm_curves_default_steps_count_from_zero():
    """As iqm_curves' docstring says: 0 .. T-1 where no steps are given."""
    curves = stats.iqm_curves({"a": np.ones((3, 2, 4))}, reps=20)
    np.testing.assert_array_equal(curves.steps, [0, 1, 2, 3])


def test_write_report_passes_steps_and_confidence_on(tmp_path, monkeypatch):
    """The figures of a report are drawn at its steps and confidence, not the defaults."""
    seen = {}
    plot_profiles, plot_curves = stats.plot_performance_profiles, stats.plot_iqm_curves
    monkeypatch.setattr(
        stats,
        "plot_performance_profiles",
        lambda p, *a: seen.__setitem__("profiles", p) or plot_profiles(p, *a),
    )
    monkeypatch.setattr(
        stats,
        "plot_iqm_curves",
        lambda c, *a, **k: seen.__setitem__("curves", c) or plot_curves(c, *a, **k),
    )
    rng = np.random.default_rng(0)
    scores = {"a": rng.normal(size=(6, 2))}
    curves = {"a": rng.normal(size=(6, 2, 3))}
    steps = np.array([100, 200, 300])
    stats.write_report(tmp_path, scores, curves, steps=steps, reps=50, confidence=0.5, seed=2)
    np.testing.assert_array_equal(seen["curves"].steps, steps)
    expected = stats.iqm_curves(curves, steps, reps=50, confidence=0.5, seed=2)
    np.testing.assert_array_equal(seen["curves"].interval["a"], expected.interval["a"])
    expected = stats.performance_profiles(scores, reps=50, confidence=0.5, seed=2)
    np.testing.assert_array_equal(seen["profiles"].interval["a"], expected.interval["a"])


def test_table_caption_states_the_confidence():
    result = stats.aggregate({"a": np.arange(10.0).reshape(5, 2)}, reps=20, confidence=0.9)
    assert "90% stratified-bootstrap intervals, 20 resamples, 2 task(s)" in stats.format_table(
        result
    )


def test_aggregates_figure_has_the_xlabel_asked(tmp_path, saved_figures):
    figures = saved_figures(stats, "_save_figure")
    stats.write_report(tmp_path, {"a": np.arange(10.0).reshape(5, 2)}, reps=20, xlabel="Return")
    texts = {t.get_text() for fig in figures[:1] for t in fig.texts}
    texts |= {ax.get_xlabel() for ax in figures[0].axes}
    assert "Return" in texts


def test_write_report_refuses_aggregates_of_other_scores(tmp_path):
    """The table of aggregates= was written beside profiles of scores= whatever either
    held (another algorithm, other tasks); steps= with no curves, ignored."""
    scores = {"a": np.arange(10.0).reshape(5, 2), "b": np.arange(10.0).reshape(5, 2) + 1}
    other = stats.aggregate({"c": np.arange(15.0).reshape(5, 3)}, reps=20)
    with pytest.raises(ValueError, match=r"algorithms \['c'\] against \['a', 'b'\]; .*tasks 3"):
        stats.write_report(tmp_path, scores, reps=20, aggregates=other)
    other = stats.aggregate(scores, reps=20, confidence=0.9)
    with pytest.raises(ValueError, match="confidence 0.9 against 0.95"):
        stats.write_report(tmp_path, scores, reps=20, aggregates=other)
    with pytest.raises(ValueError, match="steps= gives the x of curves="):
        stats.write_report(tmp_path, scores, reps=20, steps=[1, 2])
    assert not list(tmp_path.iterdir())
    same = stats.aggregate(scores, reps=20)
    assert set(stats.write_report(tmp_path, scores, reps=20, aggregates=same)) >= {"json", "table"}


@pytest.mark.parametrize(
    "call, said",
    [
        (
            lambda s: stats.aggregate(s, reps=20, gamma="1"),
            "gamma .* must be a finite number or None",
        ),
        (lambda s: stats.aggregate(s, reps=20, gamma=float("nan")), "must be a finite number"),
        (lambda s: stats.aggregate(s, reps=20, seed=1.5), r"seed must be an int in \[0, 2\*\*32\)"),
        (lambda s: stats.performance_profiles(s, taus=[0.1, float("nan")], reps=20), "finite"),
    ],
)
def test_aggregates_refuse_a_target_seed_or_taus_they_cannot_use(call, said):
    """A string gamma was a numpy UFuncTypeError, a NaN one a NaN optimality gap, a
    fractional seed numpy's cast error, a NaN tau a profile point of 0."""
    with pytest.raises(ValueError, match=said):
        call({"a": np.arange(10.0).reshape(5, 2)})


def test_the_median_of_two_tasks_is_over_their_means_not_over_all_runs():
    """With two tasks the median is that of the two per-task means (rliable's
    aggregate_median: their average), not the median of the pooled run x task scores.
    Task means here are 1 and 10, so 5.5; the pooled scores 0, 0, 3, 10, 10, 10 have
    median 6.5."""
    scores = np.array([[0.0, 10.0], [0.0, 10.0], [3.0, 10.0]])
    result = stats.aggregate({"a": scores}, reps=20, gamma=None)
    assert _point(result, "a", "Median") == pytest.approx(5.5)


def test_the_caption_explains_a_missing_interval_when_any_algorithm_lacks_one():
    """One algorithm of one run among others with intervals: its cell says no interval
    and the caption says why (not only when every algorithm lacks one)."""
    scores = {"one": np.array([[3.0, 4.0]]), "six": np.arange(12.0).reshape(6, 2)}
    table = stats.format_table(stats.aggregate(scores, reps=20, gamma=None))
    assert "[one run: no interval]" in table
    assert stats.NO_INTERVAL in table


@pytest.mark.parametrize(
    "confidence, label", [(0.57, "57%"), (0.58, "58%"), (0.9, "90%"), (0.999, "99.9%")]
)
def test_table_caption_rounds_the_confidence_to_a_whole_percent(confidence, label):
    """100 * 0.57 is 56.99999999999999 in floating point: the caption says 57%, not 56%;
    0.999 is 99.9%, not a whole percent rounded up to 100%."""
    result = stats.aggregate({"a": np.arange(10.0).reshape(5, 2)}, reps=20, confidence=confidence)
    assert f"{label} stratified-bootstrap intervals" in stats.format_table(result)
