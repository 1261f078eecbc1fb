"""The plain-words verdicts, on hand-made histories with known shapes."""

from __future__ import annotations

from nnlab.run.diagnosis import diagnose


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


# Real histories: an MLP 57-64-32-1 on Spambase with Adam (bench/bench_train.py's split), 10 epochs.
LR_1 = epochs([95.112, 0.794, 0.604, 0.669, 0.653, 0.607, 1.094, 0.629, 0.617, 1.677],
              [0.619, 0.593, 0.588, 0.594, 0.775, 1.65, 0.618, 0.609, 0.569, 0.741])


def test_a_jumping_loss_never_gets_told_to_raise_the_learning_rate():
    notes = verdicts(LR_1, best_epoch=9, max_epochs=10, baseline_train_loss=0.21)
    (underfit,) = [n for n in notes if n.startswith("underfitting")]
    assert underfit == ("underfitting: the lowest train loss, 0.604, is no lower than the linear baseline's 0.21; "
                        "the train loss reached 95.11 at epoch 1, so the steps are too large: try a lower learning "
                        "rate or train.grad_clip.")
    assert not any("higher learning rate" in n for n in notes)


def test_after_a_blow_up_only_the_divergence_speaks_about_the_learning_rate():
    # lr 100: epoch 1's train loss was 7.9e7 (val 36.7); the loop stops there and calls it diverged.
    message = ("loss blew up at epoch 1: train loss 7.904e+07 is over 1000x the 0.6715 of predicting the prior; "
               "try a lower learning rate (train.optimizer.lr is 100) or set train.grad_clip")
    notes = verdicts(epochs([79044776.0], [36.697]), best_epoch=0, max_epochs=40, status="diverged",
                     message=message, val={}, baseline_train_loss=0.21)
    assert notes == [message]
    assert not any("higher learning rate" in n for n in notes)


def test_an_ordinary_descent_is_not_a_jump():
    # Three epochs of a healthy descent that has not yet caught up with the baseline: more epochs, not a
    # lower learning rate (the first epoch's average is high because it starts untrained).
    history = epochs([0.5538, 0.30, 0.2073], [0.31, 0.23, 0.2])
    (underfit,) = [n for n in verdicts(history, best_epoch=3, max_epochs=3, baseline_train_loss=0.2038)
                   if n.startswith("underfitting")]
    assert underfit.endswith("try more epochs, a higher learning rate or a larger network.")


def test_no_more_epochs_advised_at_the_floor_or_ceiling():
    from nnlab.run.diagnosis import AT_LIMIT

    falling = epochs([0.6, 0.1, 0.01, 0.001], [0.5, 0.05, 0.002, 0.0003])
    assert verdicts(falling, best_epoch=4) == []  # val loss 0.0003: nothing left to gain
    rising = epochs([0.6, 0.5, 0.4, 0.3], [0.6, 0.5, 0.4, 0.35])
    at_one = verdicts(rising, best_epoch=4, monitor="val_accuracy", val={"accuracy": 1.0})
    assert at_one == []
    short = verdicts(rising, best_epoch=4, monitor="val_accuracy", val={"accuracy": 1 - 2 * AT_LIMIT})
    assert short and short[0].startswith("still improving:")


def test_an_interrupted_model_gets_no_fit_verdict():
    history = epochs([0.7, 0.69, 0.69], [0.7, 0.7, 0.69])
    notes = verdicts(history, best_epoch=3, max_epochs=40, status="interrupted", message="interrupted at epoch 3",
                     baseline_val={"loss": 0.5}, baseline_train_loss=0.45)
    assert notes == ["interrupted at epoch 3", "cut off at epoch 3 of 40: no verdict on its fit"]


def test_repeats_quote_the_mean_and_name_the_member_of_the_curve():
    history = epochs([0.6, 0.4, 0.3, 0.2, 0.1, 0.05], [0.6, 0.45, 0.4, 0.45, 0.5, 0.6])
    notes = verdicts(history, best_epoch=3, max_epochs=50, val={"loss": 0.5668}, baseline_val={"loss": 0.5},
                     repeats=5, member=2)
    assert notes[0].startswith("overfitting: after epoch 3") and notes[0].endswith("or more data (member 2's curve).")
    assert notes[1].startswith("no better than the baseline: validation loss 0.5668 (mean of 5 members) vs the "
                               "baseline's 0.5")
