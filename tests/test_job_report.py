"""summary.json's collapse warning (tfcontrast/jobs/report.py): the CollapseAlarm replayed over the run's whole
history, written into ``warnings`` and printed again by the headline. Hand-made histories, no training (the live
alarm on real collapsing and healthy runs is tested in tests/test_callbacks.py)."""

from tfcontrast.jobs import report

from .tiny_configs import tiny_config

# projection_dim 16: the projection std's ceiling is 1/sqrt(16) = 0.25; feature width 32
HEALTHY = {"loss": [0.9, 0.7, 0.6], "proj_std": [0.2, 0.19, 0.2], "erank": [20.0, 15.0, 14.0]}
COLLAPSING = {"loss": [0.9, 0.2, 0.01], "proj_std": [0.2, 0.04, 0.01], "erank": [20.0, 9.0, 3.0]}


def test_a_collapsing_history_gives_one_warning_in_words_and_a_healthy_one_none():
    config = tiny_config("directpred", **{"model.projection_dim": 16})
    assert report.collapse_warnings(config, {"history": HEALTHY}, feature_dim=32) == []
    (message,) = report.collapse_warnings(config, {"history": COLLAPSING}, feature_dim=32)
    # epoch 2: 0.04 < 25% of the first epoch's 0.2 (the std alarms first; the effective rank is still 45%)
    assert message.startswith(
        "collapse alarm at epoch 2: the projection std (spread of the normalised projections) fell to 0.04, "
        "below 25% of its first-epoch value 0.2: the projections are collapsing towards one point"
    )
    # the ceiling: 0.02 < 0.1 x 1/sqrt(16) = 0.025 from the first epoch on
    (floor,) = report.collapse_warnings(config, {"history": {"proj_std": [0.02], "erank": [20.0]}}, feature_dim=32)
    assert "at epoch 1" in floor and "below 0.1 x its ceiling 1/sqrt(16) = 0.25" in floor
    # a supervised run logs neither indicator; a run stopped before its first epoch has no history
    assert report.collapse_warnings(tiny_config("embedding"), {"history": {"loss": [1.0, 0.5]}}, feature_dim=32) == []
    assert report.collapse_warnings(config, {}, feature_dim=None) == []


def test_the_headline_repeats_the_warnings_at_the_end():
    summary = {
        "method": "directpred",
        "train": {"steps_done": 4, "steps": 4, "wall_time_s": 1.0, "images_per_second": 100},
        "warnings": ["collapse alarm at epoch 2: ..."],
    }
    assert report.headline(summary).splitlines()[-1] == "warning: collapse alarm at epoch 2: ..."
    assert "warning" not in report.headline({**summary, "warnings": []})
