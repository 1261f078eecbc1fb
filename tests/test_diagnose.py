"""The plain-words verdicts, on hand-made histories with known shapes."""

from __future__ import annotations

from nnlab.diagnose import diagnose


def epochs(train, val):
    return [{"train_loss": t, "val_loss": v} for t, v in zip(train, val)]


def verdicts(history, best_epoch, max_epochs=None, **kwargs):
    options = dict(monitor="val_loss", status="completed", message=None, stop_reason=None,
                   val={"loss": min(h["val_loss"] for h in history)}, baseline_val=None)
    options.update(kwargs)
    return diagnose(history, best_epoch=best_epoch, max_epochs=max_epochs or len(history), **options)


def test_overfitting_names_the_epoch_and_both_losses():
    history = epochs([0.6, 0.4, 0.3, 0.2, 0.1, 0.05], [0.6, 0.45, 0.4, 0.45, 0.5, 0.6])
    (note,) = verdicts(history, best_epoch=3, max_epochs=50)
    assert note == ("overfitting: after epoch 3 train loss fell from 0.3 to 0.05 while validation loss rose from "
                    "0.4 to 0.6; try dropout, weight decay, a smaller network or more data.")


def test_still_improving_at_the_last_epoch():
    history = epochs([0.6, 0.5, 0.4, 0.3], [0.6, 0.5, 0.4, 0.35])
    assert verdicts(history, best_epoch=4) == [
        "still improving: the best val_loss came at the last epoch (4); more epochs may help."]


def test_unstable_validation_loss():
    history = epochs([0.6, 0.5, 0.4, 0.4, 0.3], [0.5, 0.4, 1.2, 0.38, 0.37])
    notes = verdicts(history, best_epoch=5, max_epochs=20)
    assert notes == ["unstable: validation loss jumped to 1.2 at epoch 3 (best so far 0.4); try a lower learning "
                     "rate or train.grad_clip."]


def test_underfitting_and_no_better_than_the_baseline():
    history = epochs([0.7, 0.69, 0.69, 0.69], [0.7, 0.7, 0.69, 0.69])
    notes = verdicts(history, best_epoch=3, max_epochs=20, baseline_val={"loss": 0.5}, baseline_train_loss=0.45)
    assert notes[0].startswith("underfitting: the lowest train loss, 0.69, is no lower than the linear baseline's 0.45")
    assert notes[1].startswith("no better than the baseline: validation loss 0.69 vs the baseline's 0.5")


def test_a_healthy_run_gets_no_warnings():
    history = epochs([0.6, 0.4, 0.3, 0.25, 0.24], [0.55, 0.4, 0.33, 0.3, 0.31])
    assert verdicts(history, best_epoch=4, max_epochs=30, baseline_val={"loss": 0.45},
                    baseline_train_loss=0.44) == []


def test_divergence_message_comes_first():
    history = epochs([0.6, float("nan")], [0.5, float("nan")])
    notes = verdicts(history, best_epoch=1, status="diverged", message="loss became NaN at epoch 2, step 3: ...",
                     val={"loss": 0.5})
    assert notes[0] == "loss became NaN at epoch 2, step 3: ..."
