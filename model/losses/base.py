"""What every loss is: built as ``Loss(embedding_size, n_classes, margin=0, scale=0,
center_weight=0)`` and called as ``loss(embedding, logits, targets) -> (loss, class_scores)``.

A loss names the settings it uses in ``SETTINGS``: ``{name: (default, low, high)}``, the value
given (0 = the default) must be ``low < value <= high``. A setting it does not use must be left
at 0. Every loss checks its own settings when it is built (``resolve_settings``), so
``build_loss`` and train.py need no case for any loss.
"""
import torch
import torch.nn as nn

from configure import SetupError

SETTING_NAMES = ('margin', 'scale', 'center_weight')


class Loss(nn.Module):
    USES_LOGITS = True   # trained on the model's `last` logits (False: DDP's unused parameters)
    NEEDS_PAIRS = False  # train.py draws batches of same-class pairs (SR_Dataset)
    SETTINGS: dict = {}  # {name: (default, low, high)} of the settings this loss uses

    @classmethod
    def resolve_settings(cls, margin: float = 0.0, scale: float = 0.0,
                         center_weight: float = 0.0) -> dict:
        """{margin, scale, center_weight} with this loss's defaults in place of 0; SetupError
        naming a setting out of its range, or given to a loss that has none."""
        given = {'margin': margin, 'scale': scale, 'center_weight': center_weight}
        values = {}
        for name, value in given.items():
            if name not in cls.SETTINGS:
                if value:
                    raise SetupError(f'{name}={value:g}: loss_type={cls.NAME!r} has no {name} '
                                     '(leave it at 0)')
                values[name] = 0.0
                continue
            default, low, high = cls.SETTINGS[name]
            value = float(value or default)
            if (value or default) and not low < value <= high:
                # a default of 0 means 'not used' (A-softmax's scale: the feature norm)
                raise SetupError(f'{name}={value:g} is out of range for loss_type={cls.NAME!r}: '
                                 f'expected {low:g} < {name} <= {high:g} (0 = default)')
            values[name] = value
        return values

    def __init__(self, margin: float = 0.0, scale: float = 0.0, center_weight: float = 0.0):
        super().__init__()
        settings = self.resolve_settings(margin, scale, center_weight)
        self.margin, self.scale = settings['margin'], settings['scale']
        self.center_weight = settings['center_weight']

    def start_from_class_means(self, means: torch.Tensor) -> None:
        """Fine-tuning (train.py's init_from): a loss with class weights of its own starts them
        at the (n_classes, E) mean d-vectors of the training classes, so that a pretrained
        embedding is not first pulled towards random weights. The softmax losses have none
        (the model's ``last`` layer is its classifier)."""
