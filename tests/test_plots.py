"""dvector/plots.py: the slides' loss plot, whose range grows only to keep both curves in view."""
import math

import matplotlib.image

from dvector.plots import loss_axis_top, plot_losses


def test_the_loss_axis_is_the_slides_0_to_3_5_unless_a_curve_leaves_it():
    assert loss_axis_top([2.1, 1.0], [3.2, 0.9]) == 3.5
    assert loss_axis_top([3.7, 2.0], [229.8, 91.7]) == 4.0  # early spikes: off the scale
    assert loss_axis_top([2.0, 1.0], [302.2, 5.0]) == 5.5   # the rest of the curve shows
    assert loss_axis_top([5.5], [math.nan]) >= 5.5             # a NaN does not hide the rest
    assert loss_axis_top([math.inf], [math.nan]) == 3.5


def test_plot_losses_writes_the_figure_for_a_one_epoch_run(tmp_path):
    path = plot_losses([1], [3.9], [229.8], 1, str(tmp_path / 'loss_plot.png'))
    image = matplotlib.image.imread(path)
    assert image.shape[0] > 400 and image.shape[1] > 400
    red = (image[..., 0] > 0.8) & (image[..., 1] < 0.3) & (image[..., 2] < 0.3)
    assert red.sum() > 100  # the red dashed line of the lowest validation loss


def test_a_validation_spike_off_the_scale_is_written_at_the_top(tmp_path, monkeypatch):
    from dvector import plots
    written = []
    monkeypatch.setattr(plots.plt, 'annotate', lambda text, xy, **kw: written.append((text, xy)))
    plots.plot_losses([1, 2, 3], [3.7, 2.0, 1.5], [302.2, 2.5, 1.9], 3,
                      str(tmp_path / 'loss_plot.png'))
    assert written == [('302.2 \u2191', (1, 4.0))]
