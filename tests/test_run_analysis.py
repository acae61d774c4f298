"""What jrl eval and jrl plot compute from a run directory (jrl.run_analysis) and from
runs pooled as tasks (jrl.task_aggregates): kept seeds, eval.json against its report,
learning-curve alignment, normalisation by references, refusals."""

import json
import shutil

import numpy as np
import pytest
import yaml


@pytest.fixture(scope="module")
def small_tabular_run(tmp_path_factory):
    from jrl.training import RunSpec, train

    spec = RunSpec(
        agent="tabular",
        env="CliffWalking-v0",
        config={"num_episodes": 30},
        hparams=({"alpha": 0.5}, {"alpha": 0.1}),
        num_seeds=6,  # one left out still leaves the five an interval needs
        chunk_size=10,
    )
    run_dir = tmp_path_factory.mktemp("runs") / "run"
    assert train(spec, run_dir, progress=False)["status"] == "complete"
    return run_dir


def test_a_grid_point_with_one_diverged_seed_keeps_its_other_seeds(small_tabular_run, monkeypatch):
    from jrl import training
    from jrl.run_analysis import evaluate_run

    one_diverged = np.ones((2, 6), bool)
    one_diverged[0, 1] = False
    monkeypatch.setattr(training, "finite_runs", lambda state: one_diverged)
    result = evaluate_run(small_tabular_run, episodes=3, seed=0, max_steps=100)
    assert result["diverged"] == [{"grid_point": 0, "seed": 1}]
    returns = np.asarray(result["returns"], float)  # [grid point, seed, episode]
    assert returns.shape == (2, 6, 3) and np.isnan(returns[0, 1]).all()
    point = result["grid"][0]
    assert point["num_seeds"] == 5
    assert point["mean"] == pytest.approx(returns[0, [0, 2, 3, 4, 5]].mean())
    assert point["iqm"] is not None and point["iqm_ci"][0] <= point["iqm"] <= point["iqm_ci"][1]


def test_eval_json_iqm_and_its_interval_are_the_reports(small_tabular_run):
    from jrl.run_analysis import evaluate_run

    result = evaluate_run(
        small_tabular_run, episodes=3, seed=7, max_steps=100, sampled=True, epsilon=0.3
    )
    report = json.loads((small_tabular_run / "eval" / "aggregates.json").read_text())
    for g, point in enumerate(result["grid"]):
        # Rows named by what tells the points apart (they were grid_point_0, ...).
        assert point["label"] == f"grid point {g} (alpha={(0.5, 0.1)[g]})"
        iqm = report["algorithms"][point["label"]]["IQM"]
        assert point["iqm"] == pytest.approx(iqm["point"])
        assert point["iqm_ci"] == pytest.approx([iqm["low"], iqm["high"]])
        per_seed = np.asarray(result["returns"])[g].mean(axis=-1)
        assert point["mean"] == pytest.approx(per_seed.mean())


def test_eval_bootstraps_its_aggregates_once(small_tabular_run, monkeypatch):
    """rliable's bootstrap is ~1 s per grid point: eval.json and the report share one
    (a 125-point grid took two minutes, half of it the same bootstrap again)."""
    from jrl import stats
    from jrl.run_analysis import evaluate_run

    calls = []
    aggregate = stats.aggregate
    monkeypatch.setattr(stats, "aggregate", lambda *a, **k: calls.append(1) or aggregate(*a, **k))
    evaluate_run(small_tabular_run, episodes=3, seed=7, max_steps=100)
    assert len(calls) == 1
    assert (small_tabular_run / "eval" / "aggregates.json").exists()


def test_eval_counts_and_names_episodes_cut_by_max_steps(small_tabular_run, capsys):
    """Episodes still running at --max-steps (Freeway-MinAtar's 2500 steps cut at 1000)
    were reported as whole episodes' returns, without a word unless the run evaluated
    during training."""
    from jrl.run_analysis import evaluate_run

    result = evaluate_run(small_tabular_run, episodes=3, seed=0, max_steps=3)
    # No path from CliffWalking's start to its goal is 3 steps long: all 2 x 6 x 3 cut.
    assert result["cut_at_max_steps"] == 36
    said = capsys.readouterr().err
    assert f"{small_tabular_run}: 36 of 36 episodes were still running at --max-steps 3" in said
    assert result["policy"] == "greedy"


def _write_rows(run_dir, returns, metric="episode_return"):
    """metrics.jsonl of grid point 0 with returns[seed][update] (None: no episode)."""
    rows = [
        {"grid_point": 0, "seed": s, "update": u, "timesteps": 10 * (u + 1), metric: value}
        for s, by_update in enumerate(returns)
        for u, value in enumerate(by_update)
    ]
    (run_dir / "metrics.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))


def test_learning_curves_start_when_every_seed_has_a_value(small_tabular_run, tmp_path):
    from jrl.run_analysis import learning_curves

    run_dir = shutil.copytree(small_tabular_run, tmp_path / "run")
    _write_rows(run_dir, [[1.0, 2.0, 3.0, 4.0], [None, None, 5.0, 6.0], [None, 7.0, None, 8.0]])
    ((label, values),) = learning_curves([run_dir])[0].items()
    # Seed 1's first episode ends in update 2: from there (before it, seed 1 would show
    # the return of its later episode); seed 2's gap in update 2 holds its value of update 1.
    np.testing.assert_array_equal(values, [[3.0, 4.0], [5.0, 6.0], [7.0, 8.0]])
    np.testing.assert_array_equal(learning_curves([run_dir])[1][label], [30, 40])


def test_learning_curves_label_every_grid_point_apart(small_tabular_run, tmp_path):
    """Labels showed numbers with 6 significant digits: points alpha=0.5 and 0.5000001
    (distinct as float32, as runs hold them) were one label, and one curve was dropped."""
    import yaml

    from jrl.run_analysis import learning_curves

    run_dir = shutil.copytree(small_tabular_run, tmp_path / "run")
    config = yaml.safe_load((run_dir / "config.yaml").read_text())
    config["hparams"][0]["alpha"], config["hparams"][1]["alpha"] = 0.5, 0.5000001
    (run_dir / "config.yaml").write_text(yaml.safe_dump(config))
    rows = [
        {"grid_point": g, "seed": s, "update": 0, "timesteps": 10, "episode_return": 10.0 * g}
        for g in (0, 1)
        for s in range(3)
    ]
    (run_dir / "metrics.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    curves, _ = learning_curves([run_dir])
    assert {label: values.max() for label, values in curves.items()} == {
        "run alpha=0.5": 0.0,
        "run alpha=0.5000001": 10.0,
    }
    # Labels name the float32 value, as :g lays numbers out: a value given as float32 is
    # the same method as its decimal (jrl eval pools methods by label).
    from jrl.training import shown_number

    assert [shown_number(v) for v in (0.1, np.float32(0.1), 5.0, 1e6, 1e6 + 1, 1e-5)] == [
        "0.1", "0.1", "5", "1e+06", "1.000001e+06", "1e-05"
    ]  # fmt: skip
    # Points alike even as float32 (a spec made in Python may repeat one) keep both curves.
    config["hparams"][1]["alpha"] = 0.5
    (run_dir / "config.yaml").write_text(yaml.safe_dump(config))
    assert list(learning_curves([run_dir])[0]) == ["run", "run (grid point 1)"]


@pytest.fixture(scope="module")
def two_tasks(tmp_path_factory):
    from jrl.training import RunSpec, train

    root = tmp_path_factory.mktemp("tasks")
    runs = []
    for env in ("CatRoom-v0", "CliffWalking-v0"):
        spec = RunSpec(
            agent="tabular",
            env=env,
            config={"num_episodes": 30},
            hparams=({"q_init": 0.0}, {"q_init": 5.0}),
            num_seeds=3,
            chunk_size=10,
        )
        assert train(spec, root / env, progress=False)["status"] == "complete"
        runs.append(root / env)
    return runs


def test_pooled_scores_normalised_by_references_keep_the_optimality_gap(two_tasks, tmp_path):
    from jrl.task_aggregates import evaluate_tasks

    given = {"CatRoom-v0": (0.0, 10.0), "CliffWalking-v0": (-100.0, -13.0)}
    result = evaluate_tasks(
        two_tasks,
        tmp_path / "out",
        episodes=2,
        max_steps=100,
        normalize="none",
        references=given,
        reps=50,
    )
    report = json.loads((tmp_path / "out" / "aggregates.json").read_text())
    assert report["optimality_gap_target"] == 1.0  # normalised scores: target 1
    for method in ("tabular q_init=0", "tabular q_init=5"):
        assert "Optimality gap" in report["algorithms"][method]
    assert "Optimality gap" in result["table"]


def test_a_task_no_run_beats_random_on_is_refused(two_tasks, tmp_path, monkeypatch):
    from jrl import task_aggregates

    # A random policy better than every run (as on a task nothing learned): normalising
    # by (random, best) would turn the scale upside down.
    monkeypatch.setattr(task_aggregates, "random_policy_returns", lambda *a, **k: np.full(2, 1e3))
    # Each run's earlier evaluation outlives the refused pool (it was overwritten first).
    runs = [shutil.copytree(run, tmp_path / run.name) for run in two_tasks]
    for run in runs:
        (run / "eval.json").write_text('{"earlier": true}')
        shutil.rmtree(run / "eval", ignore_errors=True)  # (an earlier test's evaluation)
    with pytest.raises(ValueError, match="beats the random policy's"):
        task_aggregates.evaluate_tasks(runs, tmp_path / "out", episodes=2, max_steps=100, reps=50)
    assert not (tmp_path / "out").exists()
    for run in runs:
        assert json.loads((run / "eval.json").read_text()) == {"earlier": True}
        assert not (run / "eval").exists()


def test_a_pool_with_a_diverged_run_is_refused_before_anything_is_evaluated(
    two_tasks, tmp_path, monkeypatch
):
    """summary.json lists the diverged runs: the pool refuses them before evaluating
    any run (it had evaluated every run before the diverged one first)."""
    from jrl import run_analysis, task_aggregates

    runs = [shutil.copytree(run, tmp_path / run.name) for run in two_tasks]
    summary = json.loads((runs[1] / "summary.json").read_text())
    summary["diverged"] = [{"grid_point": 1, "seed": 2, "by_update": 10}]
    (runs[1] / "summary.json").write_text(json.dumps(summary))
    evaluated = []
    evaluation = run_analysis.evaluation
    monkeypatch.setattr(
        run_analysis, "evaluation", lambda run, *a: evaluated.append(run) or evaluation(run, *a)
    )
    with pytest.raises(
        ValueError, match=r"CliffWalking-v0: runs \(grid point, seed\) \[\(1, 2\)\] diverged"
    ):
        task_aggregates.evaluate_tasks(runs, tmp_path / "out", episodes=2, max_steps=100, reps=50)
    assert evaluated == []


def test_eval_names_a_swept_tabular_algorithm_as_summary_json_does(tmp_path):
    """--config.algorithm sarsa q_learning --grid algorithm=0,1: summary.json named the
    points' methods, eval.json held 0.0 and 1.0 and its report grid_point_0, _1."""
    from jrl.run_analysis import evaluate_run
    from jrl.training import RunSpec, train

    spec = RunSpec(
        agent="tabular",
        env="CliffWalking-v0",
        config={"num_episodes": 20, "algorithm": ["sarsa", "q_learning"]},
        hparams=({"algorithm": 0}, {"algorithm": 1}),
        num_seeds=2,
    )
    summary = train(spec, tmp_path / "run", progress=False)
    named = [point["hparams"] for point in summary["grid"]]
    assert named == [{"algorithm": "sarsa"}, {"algorithm": "q_learning"}]
    result = evaluate_run(tmp_path / "run", episodes=1, seed=0, max_steps=50)
    assert [point["hparams"]["algorithm"] for point in result["grid"]] == ["sarsa", "q_learning"]
    report = json.loads((tmp_path / "run" / "eval" / "aggregates.json").read_text())
    assert set(report["algorithms"]) == {
        "grid point 0 (algorithm=sarsa)",
        "grid point 1 (algorithm=q_learning)",
    }


def test_plot_of_runs_made_with_other_code_says_so(small_tabular_run, tmp_path, capsys):
    """jrl plot A B drew runs of another commit or jax beside each other without a word;
    a resume in other settings is named, a comparison now is too."""
    from jrl.run_analysis import learning_curves

    other = tmp_path / "other"
    shutil.copytree(small_tabular_run, other)
    meta = json.loads((other / "meta.json").read_text())
    versions = {**meta["versions"], "jax": "0.9.0"}
    (other / "meta.json").write_text(json.dumps({**meta, "versions": versions}))
    capsys.readouterr()
    learning_curves([small_tabular_run, small_tabular_run])
    assert "other settings" not in capsys.readouterr().err
    learning_curves([small_tabular_run, other])
    said = capsys.readouterr().err
    assert f"jrl plot: {other} was trained with other settings than {small_tabular_run}" in said
    assert "versions: {'jax':" in said and "'0.9.0'}" in said


def test_sampled_evaluations_in_one_process_are_kept_per_epsilon(small_tabular_run, monkeypatch):
    """A notebook's compiled evaluations are kept per run and setting: one with another
    epsilon is another program, not the first one's episodes again."""
    from jrl import run_analysis
    from jrl.recent import Recent

    def returns(epsilon):
        result, _ = run_analysis.evaluation(small_tabular_run, 3, 0, 100, True, epsilon)
        return np.asarray(result["returns"], float)

    greedy_ish, uniform = returns(0.0), returns(1.0)
    monkeypatch.setattr(run_analysis, "_EPISODES", Recent(keep=4))  # nothing compiled yet
    np.testing.assert_array_equal(returns(1.0), uniform)
    assert not np.array_equal(greedy_ish, uniform)


def test_a_pool_plays_the_policy_asked_for(two_tasks, tmp_path):
    """`jrl eval A B --out D --sampled --epsilon E` pools sampled returns, not greedy
    ones."""
    from jrl.run_analysis import evaluation
    from jrl.task_aggregates import evaluate_tasks

    runs = [shutil.copytree(run, tmp_path / run.name) for run in two_tasks]
    result = evaluate_tasks(
        runs, tmp_path / "out", episodes=2, max_steps=100, sampled=True, epsilon=1.0,
        normalize="none", reps=50,
    )  # fmt: skip
    for run in runs:
        sampled, _ = evaluation(run, 2, 12345, 100, True, 1.0)
        greedy, _ = evaluation(run, 2, 12345, 100)
        scores = result["tasks"][run.name]["scores"]
        for g, method in enumerate(("tabular q_init=0", "tabular q_init=5")):
            np.testing.assert_allclose(scores[method], np.mean(sampled["returns"][g], axis=-1))
        assert not np.allclose(np.mean(greedy["returns"], -1), np.mean(sampled["returns"], -1))


def test_a_task_whose_best_run_only_ties_random_is_refused(two_tasks, tmp_path, monkeypatch):
    """(random, best) of no width would divide by zero: refused as one no run beats."""
    from jrl import task_aggregates
    from jrl.run_analysis import evaluation

    run = shutil.copytree(two_tasks[0], tmp_path / two_tasks[0].name)
    result, _ = evaluation(run, 2, 12345, 100)
    best = float(np.mean(result["returns"], axis=-1).max())
    monkeypatch.setattr(task_aggregates, "random_policy_returns", lambda *a: np.full(2, best))
    with pytest.raises(ValueError, match=f"no run's return .{best:g}. beats the random"):
        task_aggregates.evaluate_tasks([run], tmp_path / "out", episodes=2, max_steps=100)


def test_a_pool_refuses_a_run_found_diverged_that_its_summary_does_not_list(
    two_tasks, tmp_path, monkeypatch
):
    """summary.json is checked first; a run whose checkpoint holds NaN is found as it is
    evaluated (its summary written before, or by an older jrl) and refused too."""
    from jrl import task_aggregates, training

    runs = [shutil.copytree(run, tmp_path / run.name) for run in two_tasks]
    one_diverged = np.ones((2, 3), bool)
    one_diverged[1, 0] = False
    monkeypatch.setattr(training, "finite_runs", lambda state: one_diverged)
    with pytest.raises(ValueError, match=r"runs \(grid point, seed\) \[\(1, 0\)\] diverged"):
        task_aggregates.evaluate_tasks(runs, tmp_path / "out", episodes=2, max_steps=100, reps=50)


def test_a_task_is_named_by_its_overrides_in_any_order():
    """config.yaml keeps the order the overrides were given in: one task either way."""
    from jrl.task_aggregates import task_label
    from jrl.training import RunSpec

    labels = {
        task_label(RunSpec(agent="tabular", env="CatRoom-v0", env_overrides=overrides))
        for overrides in ({"slip_prob": 0.1, "max_steps_in_episode": 50},
                          {"max_steps_in_episode": 50, "slip_prob": 0.1})
    }  # fmt: skip
    assert labels == {"CatRoom-v0 max_steps_in_episode=50 slip_prob=0.1"}


def test_episodes_at_the_environments_own_limit_are_not_counted_as_cut(capsys):
    from types import SimpleNamespace

    from jrl.run_analysis import _episodes_cut

    built = SimpleNamespace(env_params=SimpleNamespace(max_steps_in_episode=5))
    finite, ended = np.ones((1, 2), bool), np.zeros((1, 2, 3), bool)
    assert _episodes_cut("run", built, 5, np.full((1, 2, 3), 5), ended, finite) == 0
    assert capsys.readouterr().err == ""
    assert _episodes_cut("run", built, 4, np.full((1, 2, 3), 4), ended, finite) == 6
    assert "6 of 6 episodes were still running at --max-steps 4" in capsys.readouterr().err


def test_a_runs_own_evaluation_and_random_render_take_its_environment_overrides(
    tmp_path, monkeypatch
):
    """`jrl render RUN --random` plays RUN's environment as it was trained (overrides and
    all), and a run's own evaluation cut is its environment's time limit as overridden."""
    import yaml

    from jrl.cli import parse_run
    from jrl.envs import render_gymnax
    from jrl.run_analysis import own_evaluation, render_run

    argv = ["--env", "CatRoom-v0", "--env-overrides", "max_steps_in_episode", "7"]
    _, spec = parse_run("ppo", [*argv, "--config.eval-every", "1"])
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.yaml").write_text(yaml.safe_dump(spec.to_dict()))
    assert own_evaluation(run)["max_steps"] == 7
    played = []

    class Played(Exception):
        """Nothing to draw: what was played is all the test needs."""

    def episode_frames(name, env, env_params, *rest):
        played.append((name, int(env_params.max_steps_in_episode)))
        raise Played

    monkeypatch.setattr(render_gymnax, "episode_frames", episode_frames)
    with pytest.raises(Played):
        render_run(run, tmp_path / "x.gif", "", True, seed=0, max_steps=10)
    assert played == [("CatRoom-v0", 7)]


def config_only(
    path,
    env="CatRoom-v0",
    q_inits=(0.0, 5.0),
    num_seeds=3,
    overrides=None,
    agent="tabular",
    config=None,
):
    """A run directory holding only its config.yaml (what plan_pool reads)."""
    from jrl.training import RunSpec

    spec = RunSpec(
        agent=agent,
        env=env,
        env_overrides=dict(overrides or {}),
        config=dict(config or ({"num_episodes": 30} if agent == "tabular" else {})),
        hparams=tuple({"q_init": q} for q in q_inits) if agent == "tabular" else ({},),
        num_seeds=num_seeds,
    )
    path.mkdir(parents=True)
    (path / "config.yaml").write_text(yaml.safe_dump(spec.to_dict()))
    return path


def test_a_pool_refuses_a_method_only_a_middle_task_holds(tmp_path):
    """A method held by a middle task only must be refused, not silently dropped."""
    from jrl.task_aggregates import plan_pool

    runs = [
        config_only(tmp_path / "a", "CatRoom-v0"),
        config_only(tmp_path / "b", "CliffWalking-v0", q_inits=(0.0, 5.0, 9.0)),
        config_only(tmp_path / "c", "CatRoom-v0", overrides={"max_steps_in_episode": 50}),
    ]
    with pytest.raises(ValueError, match=r"lacks method\(s\) \['tabular q_init=9'\]"):
        plan_pool(runs)
    # and methods are in the first task's order
    plan = plan_pool([runs[0], config_only(tmp_path / "d", "CliffWalking-v0", q_inits=(5.0, 0.0))])
    assert plan.methods == ["tabular q_init=0", "tabular q_init=5"]


def test_a_reference_with_either_bound_infinite_is_refused():
    """0,inf was taken: every score on that task normalised to 0."""
    from jrl.task_aggregates import parse_references

    with pytest.raises(ValueError, match="LOW and HIGH must be finite"):
        parse_references(["CatRoom-v0=0,inf"], ["CatRoom-v0"])
    with pytest.raises(ValueError, match="LOW and HIGH must be finite"):
        parse_references(["CatRoom-v0=-inf,0"], ["CatRoom-v0"])


def test_evaluate_tasks_refuses_a_reference_for_no_task(tmp_path):
    """evaluate_tasks called from Python: a reference for no task is refused (before
    anything is evaluated: these runs have no checkpoint)."""
    from jrl.task_aggregates import evaluate_tasks

    runs = [
        config_only(tmp_path / "a", "CatRoom-v0"),
        config_only(tmp_path / "b", "CliffWalking-v0"),
    ]
    with pytest.raises(ValueError, match=r"references name unknown task\(s\) \['Nope'\]"):
        evaluate_tasks(runs, tmp_path / "out", references={"Nope": (0.0, 1.0)})


def test_random_best_normalisation_takes_references_for_some_tasks(tmp_path):
    """'random,best' with references for some tasks (documented: they replace the
    random/best bounds of the tasks named) is not refused; it gets as far as the missing
    checkpoints."""
    from jrl.task_aggregates import evaluate_tasks

    runs = [
        config_only(tmp_path / "a", "CatRoom-v0"),
        config_only(tmp_path / "b", "CliffWalking-v0"),
    ]
    with pytest.raises(ValueError, match="has no checkpoint yet"):
        evaluate_tasks(runs, tmp_path / "out", references={"CatRoom-v0": (0.0, 10.0)})


def test_evaluate_tasks_refuses_an_unknown_normalisation(tmp_path):
    from jrl.task_aggregates import evaluate_tasks

    runs = [
        config_only(tmp_path / "a", "CatRoom-v0"),
        config_only(tmp_path / "b", "CliffWalking-v0"),
    ]
    with pytest.raises(ValueError, match="normalize must be one of"):
        evaluate_tasks(runs, tmp_path / "out", normalize="random")


@pytest.fixture
def fake_pool(tmp_path, monkeypatch):
    """evaluate_tasks on config-only runs with evaluation, checkpoints and the random
    policy faked: (runs, random-policy calls)."""
    from jrl import checkpoint, run_analysis, task_aggregates

    runs = [
        config_only(
            tmp_path / "a",
            "CatRoom-v0",
            overrides={"max_steps_in_episode": 7},
            config={"num_episodes": 30},
        ),
        config_only(tmp_path / "b", "CliffWalking-v0", config={"num_episodes": 40}),
    ]
    monkeypatch.setattr(checkpoint, "latest", lambda path: 1)
    monkeypatch.setattr(task_aggregates, "note_setting_differences", lambda *a: {})

    def evaluation(run_dir, episodes, seed, max_steps, sampled, epsilon):
        rng = np.random.default_rng(len(str(run_dir)))
        returns = 1.0 + rng.random((2, 3, episodes))
        return {"returns": returns.tolist(), "diverged": [], "checkpoint": {}}, lambda: None

    monkeypatch.setattr(run_analysis, "evaluation", evaluation)
    calls = []

    def random_policy_returns(env, env_params, episodes, seed, max_steps):
        calls.append((int(env_params.max_steps_in_episode), seed))
        return np.zeros(episodes)

    monkeypatch.setattr(task_aggregates, "random_policy_returns", random_policy_returns)
    return runs, calls


def test_a_pool_plays_each_tasks_random_baseline_and_records_its_seed_and_differences(
    fake_pool, tmp_path
):
    """The random baseline of 'CatRoom-v0 max_steps_in_episode=7' plays that task (it
    played plain CatRoom) on the evaluation's seed; tasks.json records that seed (it
    said 12345) and the config fields that differ between a method's tasks."""
    from jrl.task_aggregates import evaluate_tasks

    runs, calls = fake_pool
    result = evaluate_tasks(runs, tmp_path / "out", episodes=2, seed=7, reps=20)
    assert calls[0] == (7, 7)
    written = json.loads((tmp_path / "out" / "tasks.json").read_text())
    assert result["seed"] == written["seed"] == 7
    assert written["methods"]["tabular q_init=0"]["config_differences"]["num_episodes"] == {
        "CatRoom-v0 max_steps_in_episode=7": "30",
        "CliffWalking-v0": "40",
    }


def test_eval_seed_names_no_method(tmp_path):
    """eval_seed never names a method: two runs of one setting on each task, evaluated
    on other seeds during training, are the same method given twice (refused), not two
    methods 'ppo eval_seed=0' and 'ppo eval_seed=99'."""
    from jrl.task_aggregates import plan_pool

    runs = [
        config_only(tmp_path / f"{env}{seed}", env, agent="ppo", config={"eval_seed": seed})
        for env in ("CartPole-v1", "Acrobot-v1")
        for seed in (0, 99)
    ]
    with pytest.raises(ValueError, match="appears twice on task"):
        plan_pool(runs)


def test_episodes_cut_count_only_the_runs_kept(capsys):
    """Episodes of a diverged run (NaN returns, left out) were counted as cut at the
    step limit, and in the total."""
    from types import SimpleNamespace

    from jrl.run_analysis import _episodes_cut

    built = SimpleNamespace(env_params=SimpleNamespace())
    finite = np.array([[True, False]])
    not_ended = np.zeros((1, 2, 3), bool)
    assert _episodes_cut("run", built, 4, np.full((1, 2, 3), 4), not_ended, finite) == 3
    assert "3 of 3 episodes were still running" in capsys.readouterr().err
    _episodes_cut("run", built, 4, np.array([[[4, 1, 1], [1, 1, 1]]]), not_ended, finite)
    assert "1 of 3 episodes were still running" in capsys.readouterr().err


def test_a_checkpoint_older_than_the_summary_is_of_a_run_still_running(tmp_path):
    """A checkpoint without run_status, older than the summary: the run moved on."""
    from jrl.run_analysis import _old_status

    (tmp_path / "summary.json").write_text(json.dumps({"status": "complete", "updates_done": 10}))
    assert _old_status(tmp_path, {"updates_done": 10}) == "complete"
    assert _old_status(tmp_path, {"updates_done": 5}) == "running"


def test_a_run_that_never_evaluated_gives_jrl_eval_no_settings(tmp_path):
    """A PPO run with eval_every 0 made no evaluation of its own: jrl eval keeps its defaults."""
    from jrl.run_analysis import own_evaluation

    run = config_only(tmp_path / "r", "CartPole-v1", agent="ppo", config={"eval_every": 0})
    assert own_evaluation(run) == {}


def _rows_run(tmp_path, rows, num_seeds=3, summary=None):
    run = config_only(tmp_path / "run", "CliffWalking-v0", q_inits=(0.0, 5.0), num_seeds=num_seeds)
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    if summary is not None:
        (run / "summary.json").write_text(json.dumps(summary))
    return run


def _row(g, s, u, value):
    return {
        "grid_point": g,
        "seed": s,
        "update": u,
        "timesteps": 10 * (u + 1),
        "episode_return": value,
    }


def test_a_seed_with_no_value_yet_is_left_out_of_its_curve(tmp_path):
    """A seed that logged no value yet is left out, not drawn as NaN."""
    from jrl.run_analysis import learning_curves

    rows = [_row(0, s, u, None if s == 2 else float(s + u)) for s in range(3) for u in range(3)]
    rows += [_row(1, s, u, 1.0) for s in range(3) for u in range(3)]
    curves, _ = learning_curves([_rows_run(tmp_path, rows)])
    first = next(iter(curves.values()))
    assert first.shape == (2, 3) and np.isfinite(first).all()


def test_a_report_of_runs_that_all_diverged_since_is_removed(
    small_tabular_run, tmp_path, monkeypatch
):
    """Every run diverged since the last evaluation: its eval/ report (which would
    disagree with the new eval.json) was kept."""
    from jrl import training
    from jrl.run_analysis import evaluate_run

    run = shutil.copytree(small_tabular_run, tmp_path / "run")
    evaluate_run(run, episodes=1, seed=0, max_steps=20)
    assert (run / "eval").is_dir()
    monkeypatch.setattr(training, "finite_runs", lambda state: np.zeros((2, 6), bool))
    evaluate_run(run, episodes=1, seed=0, max_steps=20)
    assert not (run / "eval").exists()
